"""An open-loop load generator: latency at a fixed offered rate, free of coordinated omission.

Owns: `run(...)` and its command line (one JSON object on stdout). Request i is due at
`start + i / rate` whatever happened to the ones before; its latency runs from that due time
to the last byte of the answer, so a stalled server is charged for every request it delayed
(wrk2's rule; h2load's `--rps` measures from the actual send instead). HTTPS/1.1 keep-alive
over a pool of connections opened beforehand, on uvloop, with a small protocol class.

The event loop's timers have a 1 ms grain, so the last 2 ms before a due time are spent polling
(`sleep(0)`); without that, sends would leave up to a millisecond late and p50 would grow by a
quarter of a millisecond. The price is a busy client CPU (the bench gives it CPU 0 to itself);
its real work is about a quarter of a core at 1,000 req/s. Measured on the bench machine
against the Python floor: sends leave within 0.05 ms (p99) of their due time at 1,000
req/s, and within ~1 ms at 3,000 req/s, so it can offer three times the rates the bench uses.
`dispatch_lag` reports how late the generator itself was in every run (time spent waiting
for a free connection, the server's doing, is not counted). Requests still unanswered `drain`
seconds after the last one was due (or never sent, every connection being busy) count as
infinitely slow.

    python -m bench.openloop --port 8443 --ca ca.crt --body typical.json --rate 200 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

_TIMER_GRAIN = 0.002  # seconds left before a due time below which the dispatcher polls


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, answered by a future."""

    def __init__(self) -> None:
        self.transport: Any = None  # uvloop's SSL transport is no asyncio.Transport subclass
        self._buffer = bytearray()
        self._answer_end = -1  # index in _buffer after the answer's body, once headers are in
        self._status = 0
        self._waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def request(self, data: bytes) -> asyncio.Future[int]:
        """Send one request; the future holds the answer's status code."""
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._answer_end < 0:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self._buffer[:head_end]).decode("latin-1").lower().split("\r\n")
            self._status = int(head[0].split()[1])
            length = next(
                int(line.partition(":")[2]) for line in head if line.startswith("content-length:")
            )
            self._answer_end = head_end + 4 + length
        if len(self._buffer) >= self._answer_end:
            del self._buffer[: self._answer_end]
            self._answer_end = -1
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(self._status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc}"))


class _Load:
    """One run: the dispatcher, the pool of idle connections and what was measured."""

    def __init__(self, pool: list[_Connection], request: bytes) -> None:
        self.request = request
        self.idle = collections.deque(pool)
        self.freed: asyncio.Future[None] | None = None
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.errors = 0
        self.sent = 0

    async def offer(self, *, rate: float, total: int, drain: float) -> int:
        """Send `total` requests at `rate`; the number still unanswered at the deadline
        (`drain` seconds after the last due time), never sent ones included."""
        tasks = []
        start = time.perf_counter() + 0.05
        deadline = start + total / rate + drain
        unblocked = start  # when the dispatcher last got a connection it had to wait for
        for index in range(total):
            due = start + index / rate
            while (left := due - time.perf_counter()) > 0:
                await asyncio.sleep(left - _TIMER_GRAIN if left > _TIMER_GRAIN else 0)
            # The generator's own lateness: time spent waiting for the server is not its fault.
            self.lags.append(time.perf_counter() - max(due, unblocked))
            if not self.idle:
                if not await self._connection_free(deadline):
                    break
                unblocked = time.perf_counter()
            tasks.append(asyncio.create_task(self._one(self.idle.popleft(), due)))
        self.sent = len(tasks)
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0, deadline - time.perf_counter()))
        for task in pending:
            task.cancel()
        return total - self.sent + len(pending)

    async def _connection_free(self, deadline: float) -> bool:
        # Every connection busy: the server is behind. The clock of the requests still runs.
        while not self.idle:
            self.freed = asyncio.get_running_loop().create_future()
            await asyncio.wait([self.freed], timeout=deadline - time.perf_counter())
            if not self.freed.done():
                return False
        return True

    async def _one(self, connection: _Connection, due: float) -> None:
        try:
            status = await connection.request(self.request)
        except ConnectionError:
            self.errors += 1
            self.latencies.append(math.inf)
            return
        self.latencies.append(time.perf_counter() - due)
        self.errors += status != 200
        self.idle.append(connection)
        if self.freed is not None and not self.freed.done():
            self.freed.set_result(None)


async def _run(
    *,
    port: int,
    body: bytes,
    rate: float,
    duration: float,
    connections: int,
    drain: float,
    context: ssl.SSLContext,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    request = (
        f"POST /mutate HTTP/1.1\r\nHost: localhost:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    pool: list[_Connection] = []
    for _ in range(connections):
        _, connection = await loop.create_connection(
            _Connection, "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        await connection.request(request)  # warm the connection up
        pool.append(connection)
    load = _Load(pool, request)
    total = round(rate * duration)
    cpu_before = time.process_time()
    unfinished = await load.offer(rate=rate, total=total, drain=drain)
    cpu = time.process_time() - cpu_before
    for connection in pool:
        connection.transport.close()
    latencies = load.latencies + [math.inf] * unfinished
    return {
        "offered_rps": rate,
        "duration_s": duration,
        "due": total,
        "sent": load.sent,
        "completed": total - unfinished - load.errors,
        "errors": load.errors,
        "unfinished": unfinished,
        **{f"{name}_ms": _ms(percentile(latencies, p)) for name, p in _PERCENTILES},
        "max_ms": _ms(max(latencies, default=math.nan)),
        "dispatch_lag_p99_ms": _ms(percentile(load.lags, 99)),
        "dispatch_lag_max_ms": _ms(max(load.lags, default=math.nan)),
        "client_cpu_s": round(cpu, 3),
    }


_PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("p999", 99.9))


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile (a value that occurred); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _ms(seconds: float) -> float | None:
    """Milliseconds, rounded; None (JSON null) for a request that never finished."""
    return None if math.isinf(seconds) or math.isnan(seconds) else round(seconds * 1000, 3)


def run(
    *,
    port: int,
    body: bytes,
    rate: float,
    duration: float,
    ca_file: Path,
    connections: int = 16,
    drain: float = 3.0,
) -> dict[str, Any]:
    """Offer `rate` requests per second of `body` to `POST /mutate` for `duration` seconds."""
    context = ssl.create_default_context(cafile=ca_file)
    return uvloop.run(
        _run(
            port=port,
            body=body,
            rate=rate,
            duration=duration,
            connections=connections,
            drain=drain,
            context=context,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.openloop", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", type=Path, required=True, help="CA file of the server's cert")
    parser.add_argument("--body", type=Path, required=True, help="AdmissionReview file")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait at the end")
    args = parser.parse_args()
    result = run(
        port=args.port,
        body=args.body.read_bytes(),
        rate=args.rate,
        duration=args.duration,
        ca_file=args.ca,
        connections=args.connections,
        drain=args.drain,
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
