"""In-process cost of each step of an admission, per bench payload (for bench/attribution.py).

Owns: `python_steps(bodies)` (the project's own functions timed one by one: the endpoint's body
read, `orjson.loads`, the envelope checks, `mutation.plan`, `review.patched`, the metrics,
the log line, then the whole endpoint, the whole app and the Python floor's app) and
`go_steps(bodies)` (`go test -bench` of bench/goref: decode, mutate, answer, the whole review,
and a typed-struct decode for comparison).

Every figure is CPU time (the thread's, the process's for Go), the best of several repeats
of many calls: on a shared machine wall time measures the other processes too, and the
slower repeats measure what they did to the caches (timeit's rule). The ASGI coroutines are
driven without an event loop: nothing they await suspends when the body is already there,
so this is their own cost, not uvloop's. The cyclic GC is left on after `gc.freeze()`, as in
the servers. Run it pinned to one CPU (`taskset -c 1`), as bench/attribution.py does.
"""

from __future__ import annotations

import functools
import gc
import logging
import math
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import orjson

from bench import floor, golang
from webhook import review as envelope
from webhook.app import ADMISSION_LOGGER, AdmissionEndpoint, State, create_app
from webhook.metrics import Metrics
from webhook.mutation import plan
from webhook.policy import Policy
from webhook.server import AdmissionLines
from webhook.settings import Settings

REPEATS = 7
TARGET_SECONDS = 0.05  # per repeat


def per_call_us(
    call: Callable[[], object], *, repeats: int = REPEATS, seconds: float = TARGET_SECONDS
) -> float:
    """Best over `repeats` of the mean µs of `call()` over enough calls to last `seconds`."""
    started = time.thread_time_ns()
    call()
    once = max(time.thread_time_ns() - started, 100)
    number = max(1, min(100_000, round(seconds * 1e9 / once)))
    best = math.inf
    for _ in range(repeats):
        started = time.thread_time_ns()
        for _ in range(number):
            call()
        best = min(best, (time.thread_time_ns() - started) / number)
    return round(best / 1000, 2)


def drive(coroutine: Coroutine[Any, Any, object]) -> None:
    """Run a coroutine that never suspends to its end, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("the coroutine suspended: it needs an event loop")


def _asgi(body: bytes) -> tuple[dict[str, Any], Callable[[], Any], Callable[[Any], Any]]:
    """A POST /mutate scope, and receive/send callables as uvicorn gives a whole body."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mutate",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(_: Any) -> None:
        return None

    return scope, receive, send


def python_steps(
    bodies: Mapping[str, bytes], *, repeats: int = REPEATS, seconds: float = TARGET_SECONDS
) -> dict[str, dict[str, float]]:
    """{payload: {step: µs per admission}} of the project's functions."""
    timed = functools.partial(per_call_us, repeats=repeats, seconds=seconds)
    with (
        tempfile.TemporaryDirectory(prefix="shm-attribution-") as scratch,
        (Path(scratch) / "admissions.log").open("wb") as log_file,
    ):
        lines = AdmissionLines(log_file)  # to a file, as the bench's webhook logs
        endpoint = AdmissionEndpoint(
            policy=Policy(), max_body_bytes=8 << 20, metrics=Metrics(), log=lines
        )
        app = create_app(Settings(), state=State(), admission_log=lines)
        gc.collect()
        gc.freeze()  # as the servers do after start-up
        return {
            name: _steps(body, endpoint=endpoint, app=app, timed=timed)
            for name, body in bodies.items()
        }


def _steps(
    body: bytes, *, endpoint: AdmissionEndpoint, app: Any, timed: Callable[..., float]
) -> dict[str, float]:
    admission_log = logging.getLogger(ADMISSION_LOGGER)
    policy = Policy()
    scope, receive, send = _asgi(body)
    document = orjson.loads(body)
    review = envelope.parse_review(body)
    pod = envelope.planned_pod(review)
    assert pod is not None
    result = plan(pod, policy)
    response = envelope.respond(result)
    metrics = Metrics()

    def finish() -> None:
        endpoint._finish(review, response, started=time.perf_counter())

    steps = {
        "body read": timed(lambda: drive(endpoint._read(scope, receive))),
        "parse": timed(lambda: orjson.loads(body)),
        "envelope checks": timed(lambda: envelope.planned_pod(envelope.check_review(document))),
        "plan": timed(lambda: plan(pod, policy)),
        "answer": timed(
            lambda: envelope.encode(
                review, envelope.patched(result.reason, result.ops, warnings=result.warnings)
            )
        ),
        "metrics": timed(
            lambda: metrics.record(
                outcome="mutated", reason="injected", seconds=2e-4, injected=1 << 30
            )
        ),
    }
    admission_log.setLevel(logging.WARNING)
    without_line = timed(finish)
    steps["endpoint, no log line"] = timed(lambda: drive(endpoint(scope, receive, send)))
    admission_log.setLevel(logging.INFO)
    steps["log line"] = round(timed(finish) - without_line, 2)
    steps["endpoint"] = timed(lambda: drive(endpoint(scope, receive, send)))
    steps["app"] = timed(lambda: drive(app(scope, receive, send)))
    steps["floor app"] = timed(lambda: drive(floor.app(scope, receive, send)))
    return steps


_BENCH_LINE = re.compile(r"^Benchmark(\w+)/(\w+)\s.*?([0-9.]+) cpu-ns/op", re.M)
GO_STEPS = {
    "Decode": "decode",
    "Mutate": "mutate",
    "Answer": "answer",
    "Review": "review",
    "DecodeTyped": "typed decode",
}


def go_steps(
    bodies: Mapping[str, bytes], *, cpu: int, calls: int = 2000, repeats: int = REPEATS
) -> dict[str, dict[str, float]]:
    """{payload: {step: µs}} of bench/goref's benchmarks (`calls` a run, the best of
    `repeats` runs) on CPU `cpu`."""
    go = golang.find_go()
    if go is None:
        raise golang.GoError(f"no Go toolchain; {golang.INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="shm-attribution-") as scratch:
        for name, body in bodies.items():
            (Path(scratch) / f"{name}.json").write_bytes(body)
        command = ["taskset", "-c", str(cpu), str(go), "test", "-run", "^$", "-bench", "."]
        command += ["-benchtime", f"{calls}x", "-count", str(repeats)]
        env = {**golang.go_env(go), "GOMAXPROCS": "1", "GOREF_PAYLOADS": scratch}
        completed = subprocess.run(
            command, cwd=golang.SOURCE, env=env, capture_output=True, text=True, check=False
        )
    if completed.returncode != 0:
        raise golang.GoError(f"go test -bench failed:\n{completed.stdout}{completed.stderr}")
    found: dict[str, dict[str, float]] = {}
    for benchmark, payload, ns in _BENCH_LINE.findall(completed.stdout):
        step = GO_STEPS[benchmark]
        steps = found.setdefault(payload, {})
        steps[step] = round(min(steps.get(step, math.inf), float(ns) / 1000), 2)
    return found
