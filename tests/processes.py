"""The processes tests and the bench start: a free loopback port for one, the wait until it is
ready, and its stop within bounded time.

Owns the start-up wait every served process shares (`shm-webhook serve` in tests/serving.py,
the image's serve under runc, the e2e tier's etcd and kube-apiserver, the bench's servers under
taskset): poll a readiness check, fail at once with the log's tail when the process exits,
fail at the deadline. Imports nothing of `webhook` or `certs` (the e2e control plane uses it),
nor pytest (the bench does).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


class NotReady(RuntimeError):
    """A process exited during start-up or was not ready in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(
    ready: Callable[[], bool],
    *,
    process: subprocess.Popen[bytes],
    output: Callable[[], str],
    what: str,
    timeout: float = READY_TIMEOUT_S,
    interval: float = 0.05,
    retry: tuple[type[Exception], ...] = (ConnectionError, TimeoutError),
) -> None:
    """Call `ready` every `interval` until it is true; a `retry` error counts as not yet (by
    default, not listening yet: a TLS error is a real failure). NotReady, with the tail of
    `output`, when the process exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            raise NotReady(f"{what} exited with {code} during start-up:\n{output()[-2000:]}")
        try:
            if ready():
                return
        except retry:
            pass
        if time.monotonic() > deadline:
            raise NotReady(f"{what} not ready within {timeout:g}s:\n{output()[-2000:]}")
        time.sleep(interval)


def stop(
    process: subprocess.Popen[bytes], *, timeout: float = STOP_TIMEOUT_S, group: bool = False
) -> None:
    """SIGTERM, and SIGKILL if it is still running `timeout` later; to the process group it
    leads with `group` (one started with `start_new_session`)."""
    if process.poll() is None:
        _signal(process, signal.SIGTERM, group=group)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill(process, group=group)


def kill(process: subprocess.Popen[bytes], *, group: bool = False) -> None:
    """SIGKILL, and wait for the exit."""
    if process.poll() is None:
        _signal(process, signal.SIGKILL, group=group)
    process.wait(timeout=STOP_TIMEOUT_S)


def _signal(process: subprocess.Popen[bytes], number: signal.Signals, *, group: bool) -> None:
    # Not yet waited for, so its pid (and the group it leads) cannot have been reused.
    if group:
        os.killpg(process.pid, number)
    else:
        process.send_signal(number)
