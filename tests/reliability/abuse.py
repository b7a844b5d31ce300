"""Hostile clients for tests/reliability: raw TLS records, a connection's state as the client
sees it, and a well-behaved client that measures the latency the server gives it meanwhile."""

from __future__ import annotations

import os
import selectors
import socket
import ssl
import statistics
import time
from dataclasses import dataclass, field

from tests.builders import REVIEW
from tests.serving import Connection, ServedWebhook, call

# A request whose headers and body are sent a byte at a time by the slow clients.
SLOW_REQUEST = (
    b"POST /mutate HTTP/1.1\r\nHost: shm-webhook\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(REVIEW), REVIEW)
)


def client_hello(version: bytes) -> bytes:
    """A minimal TLS ClientHello record offering `version` (b"\\x03\\x02" is TLS 1.1) with
    three RSA cipher suites and no extensions: what an old client sends first."""
    suites = b"\x00\x2f\x00\x35\x00\x0a"
    body = (
        version + os.urandom(32) + b"\x00" + len(suites).to_bytes(2, "big") + suites + b"\x01\x00"
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake


def first_answer(sock: socket.socket, *, wait: float = 0.5) -> tuple[bytes, bool]:
    """What the server sent until it closed the connection or fell silent for `wait` (at most
    64 reads), and whether it closed it (EOF, a reset or a TLS alert)."""
    sock.settimeout(wait)
    received = b""
    for _ in range(64):
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ssl.SSLWantReadError):
            return received, False
        except OSError:  # ssl.SSLError included: a reset or a TLS alert
            return received, True
        if not chunk:
            return received, True
        received += chunk
    return received, False


def closed_by_peer(sock: socket.socket, *, wait: float = 0.05) -> bool:
    """Whether the server has closed the connection; False while it is open and silent.
    Anything the server sent before closing is read and ignored."""
    return first_answer(sock, wait=wait)[1]


def closed_by_peers(socks: list[socket.socket], *, wait: float = 0.2) -> list[bool]:
    """`closed_by_peer` for many sockets at once: a socket nothing arrives on within `wait`
    is open (one wait for all of them, not one each)."""
    ready = {i for i, s in enumerate(socks) if isinstance(s, ssl.SSLSocket) and s.pending()}
    deadline = time.monotonic() + wait
    with selectors.DefaultSelector() as selector:
        for index, sock in enumerate(socks):
            if index not in ready:
                selector.register(sock, selectors.EVENT_READ, index)
        while selector.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(timeout=left):
                ready.add(key.data)
                selector.unregister(key.fileobj)
    return [i in ready and closed_by_peer(sock, wait=0.01) for i, sock in enumerate(socks)]


def send_quietly(sock: socket.socket, data: bytes) -> bool:
    """Send; False when the server has closed the connection already."""
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


@dataclass
class WellBehavedClient:
    """Admission requests over one keep-alive connection, each timed."""

    server: ServedWebhook
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    connection: Connection | None = None

    def request(self) -> None:
        if self.connection is None:
            self.connection = self.server.connection()
        started = time.monotonic()
        status, _ = call(self.connection, "POST /mutate?timeout=3s", body=REVIEW)
        self.latencies.append(time.monotonic() - started)
        self.statuses.append(status)

    def fresh_request(self) -> float:
        """One request on a new connection, TLS handshake included; its latency."""
        connection = self.server.connection()
        try:
            started = time.monotonic()
            status, _ = call(connection, "POST /mutate?timeout=3s", body=REVIEW)
            elapsed = time.monotonic() - started
        finally:
            connection.close()
        self.statuses.append(status)
        return elapsed

    def p90(self) -> float:
        return statistics.quantiles(self.latencies, n=10)[-1]

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
