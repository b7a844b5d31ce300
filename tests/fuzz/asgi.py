"""`POST /mutate` straight into the ASGI application, without a server or a socket.

Owns: `exchange(app, body, ...)`, which plays uvicorn's part (the body in the given chunks, then
nothing until the response is complete, as uvicorn's `receive` does) and bounds the whole
exchange twice: `asyncio.wait_for` for an app that waits on something that never comes, and a
SIGALRM watchdog for one stuck in a computation (the event loop cannot interrupt that).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from starlette.types import ASGIApp, Message

TIMEOUT = 10.0  # seconds; an admission takes milliseconds, the kube-apiserver waits 3 s


class Hung(Exception):
    """The application did not answer in time."""


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def exchange(
    app: ASGIApp,
    chunks: Sequence[bytes],
    *,
    headers: Sequence[tuple[bytes, bytes]],
    timeout: float = TIMEOUT,
) -> Answer:
    """The app's answer to a POST /mutate of `chunks` (one ASGI message each) with `headers`."""
    with _watchdog(timeout + 1):
        return asyncio.run(asyncio.wait_for(_exchange(app, chunks, headers), timeout))


async def _exchange(
    app: ASGIApp, chunks: Sequence[bytes], headers: Sequence[tuple[bytes, bytes]]
) -> Answer:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/mutate",
        "raw_path": b"/mutate",
        "query_string": b"timeout=3s",
        "root_path": "",
        "headers": list(headers),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8443),
        "state": {},
    }
    pending = list(chunks) or [b""]
    complete = asyncio.Event()
    start: dict[str, Any] = {}
    parts: list[bytes] = []

    async def receive() -> Message:
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        await complete.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        assert not complete.is_set(), f"sent after the response was complete: {message}"
        if message["type"] == "http.response.start":
            assert not start, "a second http.response.start"
            start.update(message)
            return
        assert message["type"] == "http.response.body", message
        assert start, "a body before http.response.start"
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            complete.set()

    await app(scope, receive, send)
    assert complete.is_set(), "the app returned without completing its response"
    response_headers = {name.lower(): value for name, value in start.get("headers", [])}
    body = b"".join(parts)
    if b"content-length" in response_headers:
        assert int(response_headers[b"content-length"]) == len(body)
    content_type = response_headers.get(b"content-type", b"").decode("latin-1")
    return Answer(status=start["status"], content_type=content_type, body=body)


@contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        raise Hung(f"no answer within {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
