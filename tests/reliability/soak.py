"""The soak test: steady mixed admission traffic against a `shm-webhook serve` process for N
minutes, to see whether its memory grows or its latency drifts. Not part of the test suite
(it takes minutes); run it as a script, on a machine that is otherwise quiet:

    nice -n 19 .venv/bin/python -m tests.reliability.soak --minutes 10 --rate 300

Open loop: request i is due at start + i / rate whatever happened before, and its latency runs
from that due time to the last byte of the answer, so a stalling server is charged for every
request it delays. Requests go over a pool of keep-alive TLS connections; a few per cent close
their connection afterwards, so handshakes are part of the load. The payload mix covers every
outcome: mutated, skipped, denied, not a pod CREATE, malformed (400), each answer checked
against the status it must have.

Every `--interval` seconds it samples the server's VmRSS, open file descriptors and CPU time,
and the p50/p99 latency of that window. At the end a least-squares line through the samples
(after a minute of warm-up) gives RSS growth in MiB/hour and latency drift in ms/hour, each
with its standard error; the verdict (exit code 1) is "grows" or "drifts" when a slope exceeds
`--max-rss-slope` / `--max-p99-slope` by more than two standard errors, or any request
failed. See docs/reliability.md for the figures of a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procstat import cpu_times, memory_kib
from tests.builders import REVIEW, container, pod, review_bytes
from tests.serving import ServedWebhook, serving, write_certificates


def _container(name: str, *, env: int = 0, limit: str | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "256Mi"}}
    if limit is not None:
        resources["limits"] = {"memory": limit}
    return container(
        name,
        image=f"registry.example.com/{name}:1.2.3",
        env=[{"name": f"VAR_{i}", "value": f"value-{i}" * 3} for i in range(env)],
        resources=resources,
    )


def payloads() -> list[tuple[str, bytes, int, int]]:
    """(name, body, expected HTTP status, weight): the traffic mix."""
    shm = {"shm-size": "2Gi"}
    proxy = {**_container("proxy", limit="128Mi"), "restartPolicy": "Always"}
    typical = pod(
        _container("trainer", env=20, limit="8Gi"),
        _container("logger"),
        namespace=None,
        annotations=shm,
        init=[proxy],
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    large = [_container(f"c{i}", env=48, limit="1Gi") for i in range(8)]
    unannotated = pod(name="web", namespace=None, annotations={"team": "ml"})
    invalid = pod(name="p", namespace=None, annotations={"shm-size": "8GB"})
    return [
        ("small, mutated", REVIEW, 200, 40),
        ("typical, mutated", review_bytes(typical), 200, 20),
        ("no annotation, skipped", review_bytes(unannotated), 200, 10),
        ("invalid size, denied", review_bytes(invalid), 200, 10),
        ("UPDATE, allowed", review_bytes(operation="UPDATE"), 200, 10),
        ("large, mutated", review_bytes(pod(*large, namespace=None, annotations=shm)), 200, 2),
        ("not JSON, 400", b'{"apiVersion": "admission.k8s.io/v1", "kind": ', 400, 4),
        ("no uid, 400", review_bytes(uid=""), 400, 4),
    ]


@dataclass
class Window:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    wrong_status: int = 0


@dataclass
class Load:
    server: ServedWebhook
    rate: float
    duration: float
    connections: int
    fresh_share: float
    mix: list[tuple[str, bytes, int, int]]
    window: Window = field(default_factory=Window)
    sent: int = 0
    answered: int = 0
    unanswered: int = 0
    dispatch_lag: float = 0.0


async def _open(load: Load) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1", load.server.port, ssl=load.server.context,
        server_hostname=load.server.server_name,
    )  # fmt: skip


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes, *, close: bool
) -> int:
    writer.write(
        b"POST /mutate?timeout=3s HTTP/1.1\r\nHost: shm-webhook\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
        % (len(body), b"Connection: close\r\n" if close else b"", body)
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _worker(load: Load, queue: asyncio.Queue[tuple[float, int] | None]) -> None:
    rng = random.Random()
    reader = writer = None
    while (job := await queue.get()) is not None:
        due, index = job
        _, body, expected, _ = load.mix[index]
        close = rng.random() < load.fresh_share
        try:
            if writer is None:
                reader, writer = await _open(load)
            assert reader is not None
            status = await asyncio.wait_for(_exchange(reader, writer, body, close=close), 10)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            load.window.errors += 1
            status = -1
            close = True
        load.answered += 1
        if status != -1:
            load.window.latencies.append(time.monotonic() - due)
            if status != expected:
                load.window.wrong_status += 1
        if close and writer is not None:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _dispatch(load: Load, queue: asyncio.Queue[tuple[float, int] | None]) -> None:
    weights = [weight for *_, weight in load.mix]
    rng = random.Random(1)
    start = time.monotonic()
    total = int(load.rate * load.duration)
    for i in range(total):
        due = start + i / load.rate
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        load.dispatch_lag = max(load.dispatch_lag, time.monotonic() - due)
        queue.put_nowait((due, rng.choices(range(len(load.mix)), weights)[0]))
        load.sent += 1


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _sample(load: Load, interval: float, samples: list[dict[str, Any]]) -> None:
    pid = load.server.process.pid
    start = last = time.monotonic()
    cpu_before = sum(cpu_times(pid))
    while time.monotonic() - start < load.duration:
        await asyncio.sleep(min(interval, load.duration - (time.monotonic() - start)))
        window, load.window = load.window, Window()
        now, cpu = time.monotonic(), sum(cpu_times(pid))
        sample = {
            "t": round(now - start, 1),
            "rss_mib": round(memory_kib(pid)["VmRSS"] / 1024, 2),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "rate": round(len(window.latencies) / (now - last), 1),
            "p50_ms": round(_quantile(window.latencies, 0.50) * 1000, 2),
            "p99_ms": round(_quantile(window.latencies, 0.99) * 1000, 2),
            "errors": window.errors,
            "wrong_status": window.wrong_status,
            "server_cpu": round((cpu - cpu_before) / (now - last), 3),
        }
        samples.append(sample)
        last, cpu_before = now, cpu
        print(json.dumps(sample), flush=True)


def trend(samples: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """Least-squares slope of `key` against time, per hour, and its standard error."""
    xs = [s["t"] / 3600 for s in samples]
    ys = [s[key] for s in samples]
    if len(xs) < 3:
        return 0.0, float("inf")
    fit = statistics.linear_regression(xs, ys)
    residuals = [y - (fit.slope * x + fit.intercept) for x, y in zip(xs, ys, strict=True)]
    mean_x = statistics.fmean(xs)
    spread = sum((x - mean_x) ** 2 for x in xs)
    error = (sum(r * r for r in residuals) / (len(xs) - 2) / spread) ** 0.5
    return fit.slope, error


def rising(slope: float, error: float, limit: float) -> bool:
    """A slope over the limit and clear of the noise (two standard errors)."""
    return slope > limit and slope > 2 * error


async def _run(load: Load, interval: float) -> list[dict[str, Any]]:
    queue: asyncio.Queue[tuple[float, int] | None] = asyncio.Queue()
    workers = [asyncio.create_task(_worker(load, queue)) for _ in range(load.connections)]
    samples: list[dict[str, Any]] = []
    sampler = asyncio.create_task(_sample(load, interval, samples))
    await _dispatch(load, queue)
    for _ in workers:
        queue.put_nowait(None)
    await sampler
    # Requests still queued or unanswered 30 s after the last one was due count as failures.
    _, late = await asyncio.wait(workers, timeout=30)
    for worker in late:
        worker.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    load.unanswered = load.sent - load.answered
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive pool size")
    parser.add_argument("--fresh-share", type=float, default=0.02, help="share of requests "
                        "that close their connection (new handshakes)")  # fmt: skip
    parser.add_argument("--max-rss-slope", type=float, default=10.0, help="MiB/hour")
    parser.add_argument("--max-p99-slope", type=float, default=10.0, help="ms/hour")
    parser.add_argument("--out", type=Path, help="write the samples and summary as JSON here")
    parser.add_argument("serve_args", nargs="*", help="extra `shm-webhook serve` flags")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="shm-webhook-soak-") as scratch:
        directory = Path(scratch)
        certificates = write_certificates(directory / "tls")
        with serving(certificates, directory / "stderr.log", *args.serve_args) as server:
            load = Load(
                server=server,
                rate=args.rate,
                duration=args.minutes * 60,
                connections=args.connections,
                fresh_share=args.fresh_share,
                mix=payloads(),
            )
            rss_start = server.rss_mib()
            samples = asyncio.run(_run(load, args.interval))
            peak = memory_kib(server.process.pid)["VmHWM"] / 1024
            log_errors = server.log_text().count('"level":"error"')
    warm_up = max(1, round(60 / args.interval))  # the first minute fills caches and pools
    steady = samples[warm_up:] if len(samples) > warm_up + 2 else samples
    rss, rss_error = trend(steady, "rss_mib")
    p50, p50_error = trend(steady, "p50_ms")
    p99, p99_error = trend(steady, "p99_ms")
    summary = {
        "minutes": args.minutes,
        "rate": args.rate,
        "sent": load.sent,
        "answered": load.answered,
        "unanswered": load.unanswered,
        "errors": sum(s["errors"] for s in samples),
        "wrong_status": sum(s["wrong_status"] for s in samples),
        "server_error_log_lines": log_errors,
        "max_dispatch_lag_ms": round(load.dispatch_lag * 1000, 2),
        # A generator that sent requests late was itself short of CPU: latencies are suspect.
        "generator_starved": load.dispatch_lag > 0.05,
        "p50_ms_median_of_windows": round(statistics.median(s["p50_ms"] for s in steady), 2),
        "p99_ms_worst_window": max(s["p99_ms"] for s in steady),
        "server_cpu_mean": round(statistics.fmean(s["server_cpu"] for s in steady), 3),
        "rss_start_mib": round(rss_start, 2),
        "rss_after_warm_up_mib": steady[0]["rss_mib"],
        "rss_end_mib": samples[-1]["rss_mib"],
        "rss_peak_mib": round(peak, 2),
        "rss_slope_mib_per_hour": [round(rss, 3), round(rss_error, 3)],
        "p50_slope_ms_per_hour": [round(p50, 3), round(p50_error, 3)],
        "p99_slope_ms_per_hour": [round(p99, 3), round(p99_error, 3)],
        "memory_grows": rising(rss, rss_error, args.max_rss_slope),
        "latency_drifts": rising(p99, p99_error, args.max_p99_slope),
    }
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps({"samples": samples, "summary": summary}, indent=2))
    failed = (
        summary["errors"]
        or summary["unanswered"]
        or summary["wrong_status"]
        or summary["server_error_log_lines"]
    )
    return 1 if failed or summary["memory_grows"] or summary["latency_drifts"] else 0


if __name__ == "__main__":
    sys.exit(main())
