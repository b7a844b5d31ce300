"""Talking to the cluster under test as a user does: kubectl and helm, plus the Python client
for the calls a test makes many times a second (dry-run streams, metrics through the API).

Owns: `Tools` (the kubectl and helm binaries, with the environment's KUBECONFIG), `Result`,
the bounded `wait_for`, and the read helpers the tests share (pods of a selector, a pod's
logs, a container's state, events). Knows nothing of the chart or of what a test proves.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client, config

KUBECTL_TIMEOUT_S = 120
POLL_S = 0.5
T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    """A finished command: its argv, exit code, stdout and stderr."""

    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def ok(self) -> str:
        assert self.code == 0, f"{' '.join(self.argv)} exited {self.code}: {self.stderr.strip()}"
        return self.stdout

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.ok()))


@dataclass(frozen=True)
class Tools:
    """kubectl and helm against the cluster KUBECONFIG names (they read it from the
    environment, as they do for a user)."""

    kubectl_binary: str
    helm_binary: str
    kubeconfig: str

    def _run(self, argv: list[str], stdin: str | None, timeout: float) -> Result:
        done = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=_environment(self.kubeconfig),
        )
        return Result(tuple(argv), done.returncode, done.stdout, done.stderr)

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = KUBECTL_TIMEOUT_S
    ) -> Result:
        return self._run([self.kubectl_binary, *args], stdin, timeout)

    def helm(self, *args: str, timeout: float = 600) -> Result:
        return self._run([self.helm_binary, *args], None, timeout)

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        return self.kubectl("apply", "-f", "-", "-o", "json", stdin=json.dumps(obj)).json()

    def create(self, obj: Mapping[str, Any], *extra: str) -> Result:
        return self.kubectl("create", "-f", "-", "-o", "json", *extra, stdin=json.dumps(obj))

    def get(self, kind: str, name: str, *, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        scope = ("--namespace", namespace) if namespace else ()
        done = self.kubectl("get", kind, name, *scope, "-o", "json", "--ignore-not-found")
        return dict(json.loads(done.stdout)) if done.ok().strip() else None

    def items(self, kind: str, *selectors: str, namespace: str | None = None) -> list[Any]:
        scope = ("--namespace", namespace) if namespace else ()
        return list(self.kubectl("get", kind, *scope, *selectors, "-o", "json").json()["items"])

    def logs(self, pod: str, *, namespace: str, container: str | None = None) -> str:
        which = ("-c", container) if container else ()
        return self.kubectl("logs", "-n", namespace, pod, *which).ok()

    def api(self) -> client.ApiClient:
        """A Python client of its own (one per thread: ApiClient is not thread-safe)."""
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=self.kubeconfig
        )
        return api


def _environment(kubeconfig: str) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": kubeconfig}


def wait_for(
    check: Callable[[], T | None], *, what: str, timeout: float, interval: float = POLL_S
) -> T:
    """The first truthy result of `check`, polled; fails naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(interval)


def container_state(pod: Mapping[str, Any], name: str) -> tuple[dict[str, Any], int]:
    """The state (`running`/`terminated`/`waiting` with its fields) and restart count of one
    container of a pod as read from the API."""
    statuses = [
        *(pod["status"].get("initContainerStatuses") or []),
        *(pod["status"].get("containerStatuses") or []),
    ]
    (status,) = [s for s in statuses if s["name"] == name]
    return dict(status.get("state") or {}), int(status.get("restartCount", 0))


def finished(tools: Tools, pod: str, *, namespace: str, timeout: float = 300) -> dict[str, Any]:
    """The pod once it has run to its end (phase Succeeded or Failed)."""

    def done() -> dict[str, Any] | None:
        found = tools.get("pod", pod, namespace=namespace)
        phase = (found or {}).get("status", {}).get("phase")
        return found if phase in ("Succeeded", "Failed") else None

    return wait_for(done, what=f"pod {namespace}/{pod} running to its end", timeout=timeout)


def ready(pod: Mapping[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
