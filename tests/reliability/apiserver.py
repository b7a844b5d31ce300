"""A client that calls the webhook as the kube-apiserver does, for test_shutdown.py.

The kube-apiserver's webhook client (staging/src/k8s.io/apiserver/pkg/util/webhook/client.go)
is a client-go REST client on Go's `http.Transport`, HTTP/1.1 only; docs/reliability.md,
"Shutdown", has the code paths. What this client copies of it:

- **One pool of kept-alive connections** for the Service, shared by concurrent requests; an
  idle connection is reused most recently used first (Go's `queueForIdleConn` takes the end of
  the list), closed by the client once idle for `idle_timeout` (Go's `IdleConnTimeout`, 90 s
  there, shorter here), at most `max_idle` kept (`MaxIdleConnsPerHost`, 25).
- **A new connection goes to an endpoint of the moment** (`endpoints`), as kube-proxy's DNAT
  chooses at connect time, and stays with it: removing a pod from the endpoints does not move
  the connections already open to it.
- **A response with `Connection: close` retires its connection**; any other keeps it.
- **A POST that fails is never retried**, whatever the error (Go's `shouldRetryRequest` does
  not replay a POST whose bytes were written; client-go retries only GETs); it is a failed
  admission.

Stricter than Go in one way: a pooled connection that the server closed while the client held
it idle counts as a failure (`closed_idle`) whether or not a request was on its way. Go would
drop it silently if it noticed in time, or lose the request written on it (`Post ...: EOF`) if
not: a server that closes an idle connection has lost the race or was lucky.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import time
from dataclasses import dataclass, field

from tests.builders import REVIEW
from tests.serving import Connection, ServedWebhook

PATH = "/mutate?timeout=3s"


@dataclass
class Pooled:
    connection: Connection
    server: ServedWebhook
    idle_since: float


@dataclass
class Outcome:
    """One admission as the client saw it."""

    sent: float
    answered: float
    server: int  # port
    status: int  # -1: failed before an answer
    error: str = ""
    reused: bool = False
    closed: bool = False  # the response said Connection: close


@dataclass
class ApiServerClient:
    endpoints: list[ServedWebhook]
    idle_timeout: float
    max_idle: int = 25
    outcomes: list[Outcome] = field(default_factory=list)
    closed_idle: list[tuple[float, int]] = field(default_factory=list)  # (when, port)
    dialled: list[tuple[float, int]] = field(default_factory=list)
    expired: list[tuple[float, int]] = field(default_factory=list)  # closed by the idle timer
    _idle: list[Pooled] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0

    def admit(self, *, new: bool = False, keep: bool = True) -> Outcome:
        """One admission: a pooled connection, or a new one if there is none or `new`; the
        POST; the answer; the connection back to the pool if `keep` and the answer allows."""
        pooled = None if new else self._take()
        reused = pooled is not None
        if pooled is None:
            pooled = self._dial()
        sent = time.monotonic()
        port = pooled.server.port
        try:
            if pooled.connection.sock is None:
                pooled.connection.connect()
                sent = time.monotonic()  # the latency is the server's, not the handshake's
            pooled.connection.request("POST", PATH, REVIEW, {"content-type": "application/json"})
            response = pooled.connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as error:
            pooled.connection.close()
            outcome = Outcome(sent, time.monotonic(), port, -1, repr(error), reused)
        else:
            outcome = Outcome(
                sent, time.monotonic(), port, response.status, "", reused, response.will_close
            )
            if response.will_close or not keep:
                pooled.connection.close()
            else:
                self._give_back(pooled)
        with self._lock:
            self.outcomes.append(outcome)
        return outcome

    def route_to(self, endpoints: list[ServedWebhook]) -> None:
        """The endpoints change: new connections go to these."""
        with self._lock:
            self.endpoints = endpoints

    def held_to(self, port: int) -> int:
        """Idle connections to `port` in the pool."""
        with self._lock:
            return sum(1 for pooled in self._idle if pooled.server.port == port)

    def expire(self) -> None:
        """Close the connections idle for `idle_timeout` (Go's idle timer does it on its own)."""
        now = time.monotonic()
        with self._lock:
            expired = [p for p in self._idle if now - p.idle_since >= self.idle_timeout]
            self._idle = [p for p in self._idle if p not in expired]
        for pooled in expired:
            self._retire(pooled)
            with self._lock:
                self.expired.append((now, pooled.server.port))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for pooled in idle:
            self._retire(pooled)

    def _take(self) -> Pooled | None:
        self.expire()
        while True:
            with self._lock:
                if not self._idle:
                    return None
                pooled = self._idle.pop()  # the most recently used
            if not self._closed_by_server(pooled):
                return pooled

    def _give_back(self, pooled: Pooled) -> None:
        pooled.idle_since = time.monotonic()
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(pooled)
                return
        self._retire(pooled)

    def _dial(self) -> Pooled:
        with self._lock:
            server = self.endpoints[self._next % len(self.endpoints)]
            self._next += 1
            self.dialled.append((time.monotonic(), server.port))
        return Pooled(server.connection(), server, time.monotonic())

    def _retire(self, pooled: Pooled) -> None:
        self._closed_by_server(pooled)
        pooled.connection.close()

    def _closed_by_server(self, pooled: Pooled) -> bool:
        """Whether the server closed (or wrote to) the connection while it sat idle here;
        recorded in `closed_idle`."""
        sock = pooled.connection.sock
        if sock is None or not select.select([sock], [], [], 0)[0]:
            return False
        timeout = sock.gettimeout()
        sock.settimeout(0)
        try:
            sock.recv(1)  # EOF, close_notify or unasked bytes: the connection is gone
        except ssl.SSLWantReadError:
            return False  # a TLS 1.3 session ticket, nothing for the application
        except OSError:
            pass
        finally:
            sock.settimeout(timeout)
        with self._lock:
            self.closed_idle.append((time.monotonic(), pooled.server.port))
        pooled.connection.close()
        return True
