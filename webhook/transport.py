"""HTTP/1.1 framing limits that uvicorn's httptools protocol lacks, and the drain of SIGTERM
(docs/http.md#limits, docs/http.md#shutdown, docs/reliability.md).

Owns: `GuardedHttpToolsProtocol`, the protocol class `webhook/server.py` hands to uvicorn, its
limits, and `ServerState`, uvicorn's per-server state with the `draining` flag it reads.
uvicorn arms its keep-alive timeout only after a response and keeps every header byte in
memory, so a client could hold a connection open forever by never finishing a request
(slow-loris) or grow the process without bound with endless headers. Here:

- a connection with no request under way is closed after `IDLE_TIMEOUT`, before its first
  request as between two; longer than the kube-apiserver's own idle timeout, so that it is
  always the client that closes an idle connection: a server closing one can race a request
  the client is writing, and the client does not retry a POST;
- a request must arrive whole, headers and body, within `READ_TIMEOUT` of its first byte,
  else 408 and the connection is closed (Go's `http.Server.ReadTimeout`);
- the request line and headers may take `MAX_HEADER_BYTES`, else 431 and close;
- at most `MAX_CONNECTIONS` are open at once: past it, a new one is closed after its TLS
  handshake (the handshake itself has uvloop's 60 s timeout);
- once `ServerState.draining`, every response that starts carries `Connection: close` and the
  connection is closed after it; idle connections are left open for the client to close.

Everything else is uvicorn's. Knows nothing of admission.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn.server
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

# The kube-apiserver's webhook client closes a connection it has left idle for 90 s (Go's
# http.Transport.IdleConnTimeout, set by client-go); ours must be longer for it to close first.
IDLE_TIMEOUT = 120
# The kube-apiserver writes a whole AdmissionReview at once and gives up on the webhook after
# timeoutSeconds (30 s at most): a request still arriving after 10 s is nobody's.
READ_TIMEOUT = 10.0
# Its headers are a dozen short lines (< 1 KiB); Node.js stops at 16 KiB, Go at 1 MiB. 32 KiB
# leaves room for an authenticating proxy while each connection stays below ~1 MiB of headers.
MAX_HEADER_BYTES = 32 * 1024
# An open TLS connection holds ~50 KiB: 1,000 of them take ~50 MiB of the chart's memory limit.
# A kube-apiserver opens one per admission in flight and keeps them for the next ones.
MAX_CONNECTIONS = 1000


class ServerState(uvicorn.server.ServerState):
    """uvicorn's state shared by a server's connections, plus `draining`: once set (by the
    server, on SIGTERM), each response that starts closes its connection."""

    def __init__(self) -> None:
        super().__init__()
        self.draining = False


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with an idle timeout from the start, a read deadline per
    request, a header size limit and the drain."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = IDLE_TIMEOUT  # uvicorn's, armed after each response
        self._read_deadline: asyncio.TimerHandle | None = None
        self._reading_headers = False  # between a message's first byte and its headers' end
        self._header_bytes = 0
        self._message_ended = False  # in the chunk being parsed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > MAX_CONNECTIONS:
            transport.close()
            return
        # uvicorn's own keep-alive timer: the first byte cancels it, a response re-arms it.
        self.timeout_keep_alive_task = self.loop.call_later(
            IDLE_TIMEOUT, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._message_ended = False
        super().data_received(data)
        # A chunk that leaves a request's headers unfinished counts whole: the parser holds
        # it all. One that also ended the request before (pipelining) is not counted, so the
        # bound is the limit plus one read (256 KiB), never more.
        if self._reading_headers and not self._message_ended and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(431, f"the request headers exceed {MAX_HEADER_BYTES} bytes\n")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        self._cancel_read_deadline()
        self._read_deadline = self.loop.call_later(READ_TIMEOUT, self._read_timed_out)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        super().on_headers_complete()  # the request's cycle: its response has not started
        if isinstance(self.server_state, ServerState) and self.server_state.draining:
            self.drain()

    def drain(self) -> None:
        """Close this connection after the response that starts next rather than keep it alive.

        The server calls it on each open connection when it starts draining; a request that
        arrives later is marked by `on_headers_complete`. The response says `Connection: close`
        (uvicorn adds it when `keep_alive` is off as it writes the status line), so the client
        sends nothing more on the connection. A response already started keeps its connection
        alive: closing after a response that did not announce it would race the client's next
        request. An idle connection is not closed either, for the same reason: its next
        request gets `Connection: close`, or the client closes it when idle."""
        cycles = [cycle for cycle, _ in self.pipeline]
        if self.cycle is not None:
            cycles.append(self.cycle)
        for cycle in cycles:
            if not cycle.response_started:
                cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self._cancel_read_deadline()
        self._message_ended = True
        super().on_message_complete()

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self.transport.is_closing():
            return
        if not self._reading_headers and self.cycle.response_started:
            self.transport.close()  # answered already (a 413 for a body still arriving)
        else:
            self._refuse(408, f"the request was not received within {READ_TIMEOUT:g} s\n")

    def _cancel_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with `message` and close, whatever the request's state."""
        body = message.encode()
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()
