"""`python -m bench` (`make bench`): the webhook, the Python floor and the Go reference.

Owns: the command line, the run plan and the results file. For every round, payload and
server: start the server pinned to CPU 1 (time to ready), check its answer (every server's
must be the same bytes), warm it up, run wrk from CPU 0 for the maximum throughput and the
server CPU per request, then the open-loop generator at each offered rate for latency, then
read its peak RSS and stop it. The servers take turns going first: round r starts with the
r-th. Medians over the rounds and the medians of each round's ratios to the Go reference are
printed as a table with the targets of the performance issue, and everything is written to
bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench import golang, load, report, targets
from bench.payloads import NAMES, build_payloads
from bench.procstat import memory_kib
from bench.servers import (
    REPO,
    SERVERS,
    SPECS,
    BenchError,
    Certificates,
    compile_sources,
    make_certificates,
    start,
)

RESULTS = Path(__file__).parent / "results"
INSTALL_HINT = "install it with: sudo apt-get install wrk (Debian/Ubuntu; the package is wrk)"


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int = 3
    duration: float = 8.0  # seconds of wrk per server and payload
    warmup: float = 1.0
    latency_duration: float = 8.0  # seconds of open-loop load per rate
    rates: tuple[float, ...] = (200.0, 1000.0)
    payloads: tuple[str, ...] = NAMES
    servers: tuple[str, ...] = SERVERS
    connections: int = 16
    retries: int = 1  # per measurement disturbed by another process (targets.starved, late)
    source: str | None = None  # another checkout whose webhook is measured


QUICK = {"rounds": 1, "duration": 2.0, "warmup": 0.5, "latency_duration": 2.0}


def main(argv: Sequence[str] | None = None) -> int:
    plan = _parse(argv)
    try:
        check_machine(plan.servers)
        results = run(plan, log=lambda text: print(text, file=sys.stderr, flush=True))
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(_finite(results), indent=2, allow_nan=False) + "\n")
    print(report.table(results["medians"], results["ratios"], rates=plan.rates))
    print("\ntargets (medians of the rounds' ratios to Go):")
    print(targets.targets_text(results["targets"]))
    before, after = results["machine"]["loadavg_before"], results["machine"]["loadavg_after"]
    print(f"\nload average: {before[0]:.2f} before, {after[0]:.2f} after")
    if results["anomalies"]:
        print("\nsuspect figures:")
        print("\n".join(f"  {line}" for line in results["anomalies"]))
    print(f"\nresults: {path.relative_to(REPO)}")
    return 0


def check_machine(servers: Sequence[str] = SERVERS) -> None:
    """The tools and the two CPUs the bench needs; a BenchError says what is missing."""
    if any(SPECS[name].program == "go" for name in servers) and golang.find_go() is None:
        raise BenchError(f"no Go toolchain for the Go reference; {golang.INSTALL_HINT}")
    if shutil.which("wrk") is None:
        raise BenchError(f"wrk is not on PATH; {INSTALL_HINT}")
    if shutil.which("taskset") is None:
        raise BenchError("taskset is not on PATH; install util-linux")
    cpus = os.sched_getaffinity(0)
    if not {load.LOAD_CPU, 1} <= cpus:
        raise BenchError(f"the bench pins the server to CPU 1 and the load to CPU 0; have {cpus}")


def run(plan: Plan, *, log: Callable[[str], None]) -> dict[str, Any]:
    """Every round of the plan; the results document (medians, targets, raw runs)."""
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        log(f"warning: load average {load_before[0]:.2f}: figures will be noisy")
    source = Path(plan.source).resolve() if plan.source else None
    compile_sources(source=source)
    go_binary = None
    if any(SPECS[name].program == "go" for name in plan.servers):
        try:
            go_binary = golang.build()
        except golang.GoError as error:
            raise BenchError(str(error)) from None
    runs = []
    with tempfile.TemporaryDirectory(prefix="shm-bench-") as scratch:
        work = Path(scratch)
        certificates = make_certificates(work)
        bodies = build_payloads()
        body_files = {}
        for name in plan.payloads:
            body_files[name] = work / f"{name}.json"
            body_files[name].write_bytes(bodies[name])
        for round_number in range(plan.rounds):
            turn = round_number % len(plan.servers)
            order = plan.servers[turn:] + plan.servers[:turn]
            for payload in plan.payloads:
                answers = {}
                for name in order:
                    log(f"round {round_number + 1}/{plan.rounds}: {payload} on {name}")
                    result = measure(
                        name,
                        plan=plan,
                        body=bodies[payload],
                        body_file=body_files[payload],
                        certificates=certificates,
                        work=work,
                        source=source,
                        go_binary=go_binary,
                    )
                    answers[name] = result.pop("answer")
                    runs.append({"round": round_number + 1, "payload": payload, **result})
                if len(set(answers.values())) > 1:
                    raise BenchError(f"{payload}: the servers' answers differ: {answers}")
    return {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": asdict(plan),
        "machine": _machine(load_before),
        "payload_bytes": {name: len(bodies[name]) for name in plan.payloads},
        "medians": report.summarise(runs, rates=plan.rates),
        "ratios": report.ratios(runs, rates=plan.rates),
        "targets": targets.targets(runs, rates=plan.rates),
        "anomalies": targets.anomalies(runs),
        "runs": runs,
    }


def measure(
    name: str,
    *,
    plan: Plan,
    body: bytes,
    body_file: Path,
    certificates: Certificates,
    work: Path,
    source: Path | None,
    go_binary: Path | None = None,
) -> dict[str, Any]:
    """One server, one payload: start, check, warm up, throughput, latency, memory, stop."""
    server = start(
        name,
        certificates=certificates,
        log_file=work / f"{name}.log",
        source=source,
        go_binary=go_binary,
    )
    try:
        idle = memory_kib(server.pid)["VmRSS"]
        answer = server.post(body, context=certificates.client_context())
        if plan.warmup > 0:
            load.throughput(
                server, body_file=body_file, duration=plan.warmup, connections=plan.connections
            )
        throughput = _retried(
            partial(
                load.throughput,
                server,
                body_file=body_file,
                duration=plan.duration,
                connections=plan.connections,
            ),
            disturbed=targets.starved,
            retries=plan.retries,
        )
        latency = {
            f"{rate:g}": _retried(
                partial(
                    load.latency,
                    server,
                    body_file=body_file,
                    ca_file=certificates.ca,
                    rate=rate,
                    duration=plan.latency_duration,
                ),
                disturbed=targets.late,
                retries=plan.retries,
            )
            for rate in plan.rates
        }
        peak = memory_kib(server.pid)["VmHWM"]
        counted, logged = server.settled_counts()
    finally:
        server.stop()
    return {
        "server": name,
        "answer": answer.decode(),
        "ready_s": round(server.ready_s, 3),
        "idle_rss_kib": idle,
        "peak_rss_kib": peak,
        "throughput": throughput,
        "latency": latency,
        "admissions_counted": counted,
        "admissions_logged": logged,
    }


def _retried(
    measure: Callable[[], dict[str, Any]],
    *,
    disturbed: Callable[[dict[str, Any]], bool],
    retries: int,
) -> dict[str, Any]:
    """`measure()`, again (up to `retries` times) while another process disturbed it."""
    attempts = 0
    while True:
        attempts += 1
        result = measure()
        if attempts > retries or not disturbed(result):
            result["attempts"] = attempts
            return result


def _finite(value: Any) -> Any:
    """`value` with every infinite float (latency that never finished) as None: JSON null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "commit": commit or None,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "time": time.time(),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return None


def _parse(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke run")
    parser.add_argument("--rounds", type=int, help="rounds per payload and server (3)")
    parser.add_argument("--duration", type=float, help="seconds of wrk (8)")
    parser.add_argument("--warmup", type=float, help="seconds of wrk before measuring (1)")
    parser.add_argument("--latency-duration", type=float, help="seconds per offered rate (8)")
    parser.add_argument("--rates", help="offered req/s for latency, comma-separated (200,1000)")
    parser.add_argument("--payloads", help=f"comma-separated, of {','.join(NAMES)}")
    parser.add_argument(
        "--servers", help=f"comma-separated, of {','.join(SPECS)} ({','.join(SERVERS)})"
    )
    parser.add_argument("--connections", type=int, help="wrk connections (16)")
    parser.add_argument("--retries", type=int, help="retries of a disturbed measurement (1)")
    parser.add_argument("--source", help="measure the webhook of another checkout (a directory)")
    args = parser.parse_args(argv)
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    for key in (
        "rounds",
        "duration",
        "warmup",
        "latency_duration",
        "connections",
        "retries",
        "source",
    ):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if args.rates:
        values["rates"] = tuple(float(rate) for rate in args.rates.split(","))
    for key, known in (("payloads", NAMES), ("servers", tuple(SPECS))):
        chosen = getattr(args, key)
        if chosen:
            names = tuple(chosen.split(","))
            unknown = set(names) - set(known)
            if unknown:
                parser.error(f"--{key}: unknown {', '.join(sorted(unknown))}")
            values[key] = names
    return Plan(**values)
