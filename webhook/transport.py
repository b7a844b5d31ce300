"""HTTP/1.1 framing limits that uvicorn's httptools protocol lacks (docs/http.md#limits,
docs/reliability.md).

Owns: `GuardedHttpToolsProtocol`, the protocol class `webhook/server.py` hands to uvicorn, and
its two limits. uvicorn arms its keep-alive timeout only after a response and keeps every
header byte in memory, so a client could hold a connection open forever by never finishing a
request (slow-loris) or grow the process without bound with endless headers. Here:

- a new connection must start its first request within `READ_TIMEOUT`, else it is closed
  (between requests, uvicorn's keep-alive timeout applies as before);
- a request must arrive whole, headers and body, within `READ_TIMEOUT` of its first byte,
  else 408 and the connection is closed (Go's `http.Server.ReadTimeout`, which also runs
  from the accept);
- the request line and headers may take `MAX_HEADER_BYTES`, else 431 and close;
- at most `MAX_CONNECTIONS` are open at once: past it, a new one is closed after its TLS
  handshake (the handshake itself has uvloop's 60 s timeout).

Everything else is uvicorn's. Knows nothing of admission.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

# The kube-apiserver writes a whole AdmissionReview at once and gives up on the webhook after
# timeoutSeconds (30 s at most): a request still arriving after 10 s is nobody's.
READ_TIMEOUT = 10.0
# Its headers are a dozen short lines (< 1 KiB); Node.js stops at 16 KiB, Go at 1 MiB. 32 KiB
# leaves room for an authenticating proxy while each connection stays below ~1 MiB of headers.
MAX_HEADER_BYTES = 32 * 1024
# An open TLS connection holds ~50 KiB: 1,000 of them take ~50 MiB of the chart's memory limit.
# A kube-apiserver opens one per admission in flight and keeps them for the next ones.
MAX_CONNECTIONS = 1000


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with an idle timeout from the start, a read deadline per
    request and a header size limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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
            READ_TIMEOUT, self.timeout_keep_alive_handler
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
        super().on_headers_complete()

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
