"""A stream of pod admissions through the API server, counted exactly, while something is
done to the webhook.

Each of `THREADS` threads, with a client of its own, sends the same annotated pod as a
server-side dry run (`POST .../pods?dryRun=All`, what `kubectl create --dry-run=server` sends)
one after the other: the API server runs the whole admission chain, calls the webhook and
answers with the pod it would store. An admission succeeds when that answer carries the
memory-backed /dev/shm volume; anything else fails: an API error (the webhook unreachable or
untrusted under `failurePolicy: Fail`, a timeout) or a pod admitted without the volume. Every
failure is kept with its time and message.

A fifth thread reads the webhook's pods every 0.25 s and notes, on the same clock, when each
appeared, turned Ready, started terminating and was gone: what a failure lines up with.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from tests.cluster import probes

THREADS = 4
REQUEST_TIMEOUT_S = 30
SIZE = "64Mi"
KEPT_FAILURES = 20


@dataclass(frozen=True)
class Failure:
    at: float  # seconds since the stream started
    message: str


@dataclass
class Tally:
    succeeded: int = 0
    failed: int = 0
    failures: list[Failure] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    timeline: list[tuple[float, str]] = field(default_factory=list)  # the webhook pods

    def summary(self) -> str:
        rate = (self.succeeded + self.failed) / self.seconds if self.seconds else 0.0
        text = (
            f"{self.succeeded} admitted, {self.failed} failed in {self.seconds:.1f} s "
            f"({rate:.0f}/s, {THREADS} threads)"
        )
        if self.failed:
            text += "; " + "; ".join(f"{n}x {kind}" for kind, n in self.kinds.most_common())
        return text


class AdmissionStream:
    """`with AdmissionStream(...) as stream:` runs the threads for the block's duration."""

    def __init__(
        self,
        new_client: Callable[[], client.ApiClient],
        *,
        namespace: str,
        image: str,
        webhook: tuple[str, str],  # the webhook pods' namespace and label selector
    ) -> None:
        self._new_client = new_client
        self._namespace = namespace
        self._webhook = webhook
        self._pod = probes.pod(
            "admission-stream",
            namespace=namespace,
            spec=probes.pod_spec([probes.container("c", image)]),
            annotations={"shm-size": SIZE},
        )
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self.tally = Tally()

    def __enter__(self) -> AdmissionStream:
        self._started = time.monotonic()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(THREADS)]
        self._threads.append(threading.Thread(target=self._watch, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_S + 5)
        self.tally.seconds = time.monotonic() - self._started

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def _run(self) -> None:
        api = self._new_client()
        core: Any = client.CoreV1Api(api)  # its stubs know no _preload_content=False
        try:
            while not self._stop.is_set():
                self._count(self._admit(core))
        finally:
            api.close()  # type: ignore[no-untyped-call]

    def _watch(self) -> None:
        api = self._new_client()
        core: Any = client.CoreV1Api(api)  # its stubs know no _preload_content=False
        namespace, selector = self._webhook
        known: dict[str, str] = {}
        try:
            while not self._stop.is_set():
                try:
                    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
                except Exception as error:  # the watch only informs; it never fails the stream
                    self._note(f"pods not read: {type(error).__name__}")
                    pods = None
                if pods is not None:
                    seen = {p.metadata.name: _phase(p) for p in pods}
                    for name, phase in seen.items():
                        if known.get(name) != phase:
                            self._note(f"{name} {phase}")
                    for name in set(known) - set(seen):
                        self._note(f"{name} gone")
                    known = seen
                time.sleep(0.25)
        finally:
            api.close()  # type: ignore[no-untyped-call]

    def _note(self, event: str) -> None:
        with self._lock:
            self.tally.timeline.append((round(self.elapsed(), 2), event))

    def _admit(self, core: Any) -> str | None:
        """None when admitted with the volume, else what went wrong (one line)."""
        try:
            answer = core.create_namespaced_pod(
                self._namespace,
                self._pod,
                dry_run="All",
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT_S,
            )
            stored: dict[str, Any] = json.loads(answer.data)
        except client.ApiException as error:
            return f"HTTP {error.status}: {_message(error)}"
        except Exception as error:  # every failure is counted, none stops the stream
            return f"{type(error).__name__}: {error}"
        volume = probes.shm_volume(stored)
        if volume is None or volume["emptyDir"].get("sizeLimit") != SIZE:
            return "admitted without its /dev/shm volume"
        return None

    def _count(self, failure: str | None) -> None:
        with self._lock:
            if failure is None:
                self.tally.succeeded += 1
                return
            self.tally.failed += 1
            self.tally.kinds[_kind(failure)] += 1
            if len(self.tally.failures) < KEPT_FAILURES:
                self.tally.failures.append(Failure(round(self.elapsed(), 2), failure))


def _message(error: client.ApiException) -> str:
    try:
        return str(json.loads(str(error.body))["message"])
    except (TypeError, ValueError, KeyError):
        return str(error.reason)


def _phase(pod: Any) -> str:
    if pod.metadata.deletion_timestamp is not None:
        return "terminating"
    conditions = pod.status.conditions or []
    if any(c.type == "Ready" and c.status == "True" for c in conditions):
        return "Ready"
    return "not ready"


def _kind(failure: str) -> str:
    """What went wrong, without what varies between occurrences, for counting: the Go error
    after the webhook's URL in the API server's message (`...?timeout=3s": EOF` is `EOF`)."""
    _, quote, cause = failure.rpartition('": ')
    return cause[:120] if quote else failure[:120]
