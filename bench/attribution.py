"""`python -m bench.attribution`: where an admission's server CPU goes, layer by layer.

Owns: the command line and the attribution tables (markdown on stdout, everything as JSON in
bench/results/attribution-<timestamp>.json). Two kinds of figures, per bench payload:

- **in process** (bench.inprocess, pinned to CPU 1): the project's functions timed one by
  one (body read, parse, envelope checks, plan, answer building, metrics, log line) and
  whole (the endpoint, the app, the Python floor's app), and the Go reference's steps;
- **served** (bench.run, server on CPU 1, wrk on CPU 0, server CPU µs per request): servers
  that differ by one layer, in the same round, so that a difference of two is that layer:
  Go and the Python floor answering a cached answer (TLS, HTTP and the body's reading alone),
  then doing the work, the floor with the webhook's transport guards, the webhook without its
  log line (`--log-level warning`), and the webhook with everything on.

A layer's served cost is the median over the rounds of the difference within each round;
differences of a few µs are within the noise of a shared machine (see the spread column).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bench import golang, inprocess
from bench.payloads import NAMES, build_payloads
from bench.run import RESULTS, Plan, check_machine, run
from bench.servers import REPO, SERVER_CPU, BenchError

# (layer, server, the server it adds the layer to): the served rows of the table.
SERVED_LAYERS = (
    ("Go: TLS + HTTP + body read (cached answer)", "go-cached", None),
    ("Go: decode + mutate + answer", "go", "go-cached"),
    ("Go: total", "go", None),
    ("Python: TLS + HTTP + ASGI + body read (cached answer)", "floor-cached", None),
    ("Python: parse + plan + answer (the floor)", "floor", "floor-cached"),
    ("transport guards (webhook/transport.py)", "floor-guarded", "floor"),
    (
        "app: FastAPI dispatch, envelope guards and checks, metrics",
        "webhook-nolog",
        "floor-guarded",
    ),
    ("log line (--log-level info)", "webhook", "webhook-nolog"),
    ("webhook: total", "webhook", None),
    ("webhook minus Go", "webhook", "go"),
)
SERVED = ("go-cached", "go", "floor-cached", "floor", "floor-guarded", "webhook-nolog", "webhook")
IN_PROCESS_ROWS = (
    ("body read (AdmissionEndpoint._read)", "body read"),
    ("parse (orjson.loads)", "parse"),
    ("envelope checks (check_review, planned_pod)", "envelope checks"),
    ("plan (mutation.plan)", "plan"),
    ("answer building (review.patched)", "answer"),
    ("metrics (Metrics.record)", "metrics"),
    ("log line (fields + AdmissionLines, to a file)", "log line"),
    ("whole endpoint, no log line", "endpoint, no log line"),
    ("whole endpoint", "endpoint"),
    ("whole app (create_app, POST /mutate)", "app"),
    ("Python floor's app (bench/floor.py)", "floor app"),
)
STEPS = ("body read", "parse", "envelope checks", "plan", "answer", "metrics", "log line")
GO_ROWS = (
    ("Go: decode (encoding/json into map[string]any)", "decode"),
    ("Go: mutate", "mutate"),
    ("Go: answer building (patch JSON, base64, answer JSON)", "answer"),
    ("Go: whole review", "review"),
    ("Go: decode into typed structs instead (not served)", "typed decode"),
)


def served_layers(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{payload: {layer: {"us": median of the rounds' differences, "low": ..., "high": ...}}}."""
    cpu: dict[tuple[str, int], dict[str, float]] = {}
    for result in runs:
        value = result["throughput"]["cpu_us_per_request"]
        if value is not None:
            cpu.setdefault((result["payload"], result["round"]), {})[result["server"]] = value
    differences: dict[str, dict[str, list[float]]] = {}
    for layer, server, base in SERVED_LAYERS:
        for (payload, _), by_server in sorted(cpu.items()):
            if server in by_server and (base is None or base in by_server):
                value = by_server[server] - (by_server[base] if base else 0.0)
                differences.setdefault(payload, {}).setdefault(layer, []).append(value)
    return {
        payload: {
            layer: {"us": statistics.median(values), "low": min(values), "high": max(values)}
            for layer, values in by_layer.items()
        }
        for payload, by_layer in differences.items()
    }


def markdown(
    *,
    python: Mapping[str, Mapping[str, float]],
    go: Mapping[str, Mapping[str, float]],
    served: Mapping[str, Mapping[str, Mapping[str, float]]],
    payload_bytes: Mapping[str, int],
) -> str:
    payloads = [name for name in NAMES if name in payload_bytes]
    head = "| step | " + " | ".join(f"{p} ({payload_bytes[p] / 1000:.1f} KB)" for p in payloads)
    rule = "|---|" + "---:|" * len(payloads)
    lines = ["### In process (CPU µs per admission, best of 7)", "", head + " |", rule]
    for label, key in IN_PROCESS_ROWS:
        cells = [_us(python.get(p, {}).get(key)) for p in payloads]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if key == "log line":
            # What the steps leave out of the whole: the coroutine, the cache misses of a
            # bigger working set, the GC runs of a whole admission.
            sums = [sum(python.get(p, {}).get(step, 0.0) for step in STEPS) for p in payloads]
            lines.append("| sum of the steps above | " + " | ".join(map(_us, sums)) + " |")
    for label, key in GO_ROWS:
        cells = [_us(go.get(p, {}).get(key)) for p in payloads]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "### Served (server CPU µs per request; median of the rounds [min-max])", ""]
    lines += [head + " |", rule]
    for layer, _, _ in SERVED_LAYERS:
        cells = []
        for payload in payloads:
            figures = served.get(payload, {}).get(layer)
            cells.append(
                "-"
                if figures is None
                else f"{figures['us']:.0f} [{figures['low']:.0f}-{figures['high']:.0f}]"
            )
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attribution", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="served rounds (3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of wrk (5)")
    parser.add_argument("--no-served", action="store_true", help="in-process figures only")
    args = parser.parse_args(argv)
    if os.environ.get("SHM_ATTRIBUTION_CHILD") == "1":
        # The pinned child of the parent below: the Python in-process figures, as JSON.
        print(json.dumps(inprocess.python_steps(build_payloads())))
        return 0
    bodies = build_payloads()
    try:
        served: dict[str, Any] = {}
        results: dict[str, Any] = {}
        if not args.no_served:
            check_machine(SERVED)
            plan = Plan(rounds=args.rounds, duration=args.duration, rates=(), servers=SERVED)
            results = run(plan, log=_log)
            served = served_layers(results["runs"])
        _log("in process: Python")
        python = _pinned_python()
        _log("in process: Go")
        go = inprocess.go_steps(bodies, cpu=SERVER_CPU)
    except (BenchError, golang.GoError) as error:
        print(f"bench.attribution: {error}", file=sys.stderr)
        return 2
    payload_bytes = {name: len(body) for name, body in bodies.items()}
    print(markdown(python=python, go=go, served=served, payload_bytes=payload_bytes))
    for line in results.get("anomalies", []):
        print(f"suspect: {line}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"attribution-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    document = {"python": python, "go": go, "served": served, "bench": results}
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nresults: {path.relative_to(REPO)}")
    return 0


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _pinned_python() -> dict[str, dict[str, float]]:
    """bench.inprocess.python_steps in a fresh interpreter pinned to the server's CPU."""
    completed = subprocess.run(
        ["taskset", "-c", str(SERVER_CPU), sys.executable, "-m", "bench.attribution"],
        cwd=REPO,
        env={**os.environ, "SHM_ATTRIBUTION_CHILD": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchError(f"the in-process measurement failed:\n{completed.stderr}")
    figures: dict[str, dict[str, float]] = json.loads(completed.stdout)
    return figures


if __name__ == "__main__":
    sys.exit(main())
