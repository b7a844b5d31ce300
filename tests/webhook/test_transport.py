"""webhook/transport.py in process, on a recording transport: the connection cap, the header
limit, the timers each connection state arms and the drain. tests/reliability/test_transport.py
runs the same limits against a served process over TLS, with real clocks, and
tests/reliability/test_shutdown.py the drain."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from webhook.transport import (
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_HEADER_BYTES,
    READ_TIMEOUT,
    GuardedHttpToolsProtocol,
    ServerState,
)


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        known = {"peername": ("10.0.0.1", 40000), "sockname": ("10.0.0.2", 8443)}
        return known.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    for task in asyncio.all_tasks(loop):  # requests that reached uvicorn: cancelled unrun
        task.cancel()
        loop.run_until_complete(asyncio.wait([task]))
    loop.close()


async def refuse(scope: Any, receive: Any, send: Any) -> None:  # noqa: ARG001
    raise AssertionError(f"no request should reach the app: {scope}")


def connect(
    loop: asyncio.AbstractEventLoop,
    *,
    already_open: int = 0,
    app: Any = refuse,
    state: ServerState | None = None,
) -> tuple[GuardedHttpToolsProtocol, RecordingTransport]:
    config = uvicorn.Config(
        app, http=GuardedHttpToolsProtocol, interface="asgi3", lifespan="off", log_config=None
    )
    state = state or ServerState()
    state.connections.update(object() for _ in range(already_open))  # type: ignore[misc]
    protocol = GuardedHttpToolsProtocol(config=config, server_state=state, app_state={}, _loop=loop)
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


def timers(protocol: GuardedHttpToolsProtocol) -> dict[str, float]:
    """The timeouts armed on the connection, in seconds from now."""
    now = protocol.loop.time()
    armed = {"idle": protocol.timeout_keep_alive_task, "read": protocol._read_deadline}
    return {name: round(timer.when() - now) for name, timer in armed.items() if timer is not None}


def test_a_new_connection_is_closed_if_idle_for_longer_than_the_kube_apiservers_idle_timeout(
    loop: asyncio.AbstractEventLoop,
) -> None:
    protocol, transport = connect(loop)
    assert timers(protocol) == {"idle": IDLE_TIMEOUT}
    assert IDLE_TIMEOUT > 90  # Go's http.Transport.IdleConnTimeout in the kube-apiserver
    assert not transport.closed


def test_a_request_started_must_end_within_the_read_timeout(
    loop: asyncio.AbstractEventLoop,
) -> None:
    protocol, transport = connect(loop)
    protocol.data_received(b"POST /mutate HTTP/1.1\r\nHost: shm-webhook\r\n")
    assert timers(protocol) == {"read": READ_TIMEOUT}
    protocol._read_timed_out()  # what the timer does when it fires
    assert transport.written.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert transport.written.endswith(
        b"\r\nconnection: close\r\n\r\nthe request was not received within %g s\n" % READ_TIMEOUT
    )
    assert transport.closed


def test_connections_past_the_cap_are_closed_at_once(loop: asyncio.AbstractEventLoop) -> None:
    protocol, transport = connect(loop, already_open=MAX_CONNECTIONS)
    assert transport.closed
    assert transport.written == b""
    assert timers(protocol) == {}


def test_the_last_connection_under_the_cap_is_served(loop: asyncio.AbstractEventLoop) -> None:
    _, transport = connect(loop, already_open=MAX_CONNECTIONS - 1)
    assert not transport.closed


@pytest.mark.parametrize("chunk", [1024, 64 * 1024], ids=["in 1 KiB reads", "in 64 KiB reads"])
def test_headers_past_the_limit_get_a_431_and_the_connection_closed(
    loop: asyncio.AbstractEventLoop, chunk: int
) -> None:
    protocol, transport = connect(loop)
    head = b"POST /mutate HTTP/1.1\r\nHost: shm-webhook\r\n" + b"X: 0\r\n" * MAX_HEADER_BYTES
    fed = 0
    while not transport.closed and fed < len(head):
        protocol.data_received(head[fed : fed + chunk])
        fed += chunk
    assert transport.written.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert transport.written.endswith(
        b"\r\n\r\nthe request headers exceed %d bytes\n" % MAX_HEADER_BYTES
    )
    assert MAX_HEADER_BYTES < fed <= MAX_HEADER_BYTES + chunk


def test_headers_up_to_the_limit_pass(loop: asyncio.AbstractEventLoop) -> None:
    protocol, transport = connect(loop)
    head = b"POST /mutate HTTP/1.1\r\nContent-Length: 10\r\nX: "
    protocol.data_received(head + b"x" * (MAX_HEADER_BYTES - len(head) - 2) + b"\r\n")
    protocol.data_received(b"\r\n")  # the headers end: their bytes are no longer counted
    assert not transport.closed
    assert timers(protocol) == {"read": READ_TIMEOUT}  # the body is awaited


NEXT_REQUEST = b"POST /mutate HTTP/1.1\r\nHost: shm-webhook\r\n"


@pytest.mark.parametrize(
    "split",
    [
        pytest.param(0, id="a whole request with a large body in one read is not counted"),
        pytest.param(14, id="nor one with the start of the next request"),
    ],
)
def test_only_header_bytes_count_against_the_limit(
    loop: asyncio.AbstractEventLoop, split: int
) -> None:
    protocol, transport = connect(loop)
    body = b"x" * (2 * MAX_HEADER_BYTES)
    head = b"POST /mutate HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body)
    protocol.data_received(head + body + NEXT_REQUEST[:split])
    protocol.data_received(NEXT_REQUEST[split:])
    assert not transport.closed
    assert timers(protocol) == {"read": READ_TIMEOUT}  # the next request is being read


GET = b"GET /healthz HTTP/1.1\r\nHost: shm-webhook\r\n\r\n"


class Answering:
    """An app that answers 200 "ok", each request once `release` is set (set from the start
    unless told otherwise)."""

    def __init__(self, *, hold: bool = False) -> None:
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:  # noqa: ARG002
        await receive()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def settle(loop: asyncio.AbstractEventLoop) -> None:
    """Run the request tasks as far as they go."""
    for _ in range(5):
        loop.run_until_complete(asyncio.sleep(0))


def test_an_answered_connection_stays_open_for_the_idle_timeout(
    loop: asyncio.AbstractEventLoop,
) -> None:
    protocol, transport = connect(loop, app=Answering())
    protocol.data_received(GET)
    settle(loop)
    assert transport.written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close" not in transport.written
    assert not transport.closed
    assert timers(protocol) == {"idle": IDLE_TIMEOUT}


def test_a_request_arriving_while_draining_is_answered_with_connection_close_then_closed(
    loop: asyncio.AbstractEventLoop,
) -> None:
    state = ServerState()
    protocol, transport = connect(loop, app=Answering(), state=state)
    state.draining = True
    protocol.data_received(GET)
    settle(loop)
    assert transport.written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nconnection: close\r\n" in transport.written
    assert transport.closed


@pytest.mark.parametrize(
    "arrived",
    [
        pytest.param(GET, id="a request being answered when the drain starts closes after"),
        pytest.param(GET[:20], id="so does one whose headers are still arriving"),
    ],
)
def test_a_request_under_way_when_the_drain_starts_gets_connection_close(
    loop: asyncio.AbstractEventLoop, arrived: bytes
) -> None:
    state = ServerState()
    app = Answering(hold=True)
    protocol, transport = connect(loop, app=app, state=state)
    protocol.data_received(arrived)
    settle(loop)
    state.draining = True
    protocol.drain()
    protocol.data_received(GET[len(arrived) :])
    app.release.set()
    settle(loop)
    assert b"\r\nconnection: close\r\n" in transport.written
    assert transport.closed


def test_an_idle_connection_is_left_open_by_the_drain_and_its_next_request_closes_it(
    loop: asyncio.AbstractEventLoop,
) -> None:
    state = ServerState()
    protocol, transport = connect(loop, app=Answering(), state=state)
    protocol.data_received(GET)
    settle(loop)
    answered = len(transport.written)
    state.draining = True
    protocol.drain()
    settle(loop)
    # The client may be writing a request on it this very moment: it stays open.
    assert not transport.closed
    assert len(transport.written) == answered
    protocol.data_received(GET)
    settle(loop)
    assert b"\r\nconnection: close\r\n" in transport.written[answered:]
    assert transport.closed


def test_a_response_started_before_the_drain_keeps_its_connection_alive(
    loop: asyncio.AbstractEventLoop,
) -> None:
    state = ServerState()
    protocol, transport = connect(loop, app=Answering(hold=True), state=state)
    protocol.data_received(GET)
    assert protocol.cycle is not None
    # The status line is written; closing after the body, unannounced, would race the
    # client's next request on the connection.
    loop.run_until_complete(
        protocol.cycle.send({"type": "http.response.start", "status": 200, "headers": []})
    )
    state.draining = True
    protocol.drain()
    loop.run_until_complete(protocol.cycle.send({"type": "http.response.body", "body": b"ok"}))
    assert b"connection: close" not in transport.written
    assert not transport.closed
