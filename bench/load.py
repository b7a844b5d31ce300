"""Driving a server from CPU 0: wrk for throughput, the open-loop generator for latency.

Owns: `throughput` (wrk, closed loop, as fast as the server goes) and `latency` (bench.openloop
at a fixed offered rate), each returning its figures plus the server's CPU time per request,
taken from /proc over the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.procstat import cpu_times
from bench.servers import REPO, BenchError, Server

LOAD_CPU = 0
WRK_SCRIPT = Path(__file__).parent / "wrk.lua"


def throughput(
    server: Server, *, body_file: Path, duration: float, connections: int
) -> dict[str, Any]:
    """wrk with one thread and `connections` keep-alive connections for `duration` seconds."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s"]
    command += ["-s", str(WRK_SCRIPT), f"https://127.0.0.1:{server.port}/mutate"]
    before = cpu_times(server.pid)
    output = _pinned(command, env={"BENCH_BODY": str(body_file)})
    user, system = (
        after - start for after, start in zip(cpu_times(server.pid), before, strict=True)
    )
    line = next((x for x in output.splitlines() if x.startswith("bench-json ")), None)
    if line is None:
        raise BenchError(f"wrk printed no summary:\n{output}")
    summary = json.loads(line.removeprefix("bench-json "))
    requests = summary["requests"]
    errors = sum(summary["errors"].values())
    seconds = summary["duration_us"] / 1e6
    return {
        "rps": round(requests / seconds, 1),
        "requests": requests,
        "errors": errors,
        "cpu_us_per_request": _per_request(user + system, requests),
        "user_us_per_request": _per_request(user, requests),
        "system_us_per_request": _per_request(system, requests),
        # Near 1 when the server had its CPU to itself: the run was CPU-bound, as meant.
        "server_cpu_share": round((user + system) / seconds, 2),
        "wrk_p50_ms": summary["p50_us"] / 1000,
        "wrk_p99_ms": summary["p99_us"] / 1000,
    }


def latency(
    server: Server, *, body_file: Path, ca_file: Path, rate: float, duration: float
) -> dict[str, Any]:
    """bench.openloop offering `rate` requests per second for `duration` seconds."""
    command = [sys.executable, "-m", "bench.openloop", "--port", str(server.port)]
    command += ["--ca", str(ca_file), "--body", str(body_file)]
    command += ["--rate", str(rate), "--duration", str(duration)]
    before = sum(cpu_times(server.pid))
    result: dict[str, Any] = json.loads(_pinned(command))
    cpu = sum(cpu_times(server.pid)) - before
    result["cpu_us_per_request"] = _per_request(cpu, result["completed"])
    # Near 1 when the server could not keep up; well below, any lag was the generator's.
    result["server_cpu_share"] = round(cpu / duration, 2)
    return result


def _pinned(command: list[str], *, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        ["taskset", "-c", str(LOAD_CPU), *command],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchError(f"{command[0]} failed ({completed.returncode}):\n{completed.stderr}")
    return completed.stdout


def _per_request(cpu: float, requests: int) -> float | None:
    return round(cpu * 1e6 / requests, 1) if requests else None
