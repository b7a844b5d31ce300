"""What a bench run is judged by: the performance issue's targets, and its suspect figures.

Owns: the targets (against the Go reference of the same run), `targets(runs)` (each one this
run measured: the figure, the rounds' own ratios, the limit, met or not), `targets_text`, and
the checks of a disturbed measurement: `starved` and `late` (bench.run retries those) and
`anomalies` (what stays suspect after the retries, printed beside the figures).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.report import payload_order, rate_key, round_ratios, summarise

# Server CPU per request, the webhook's over Go's in the same round (median of the rounds).
MAX_CPU_RATIO = {"small": 2.0, "typical": 1.2, "large": 1.0}
# p99 latency at 1,000 req/s offered, the webhook's over Go's, on these payloads.
P99_RATE = 1000.0
MAX_P99_RATIO = 1.5
P99_PAYLOADS = ("small", "typical")
MAX_PEAK_RSS_MIB = 60.0  # the webhook's, on every payload
MAX_READY_S = 1.5  # the webhook's start-up, to its first /readyz 200


def targets(runs: Sequence[Mapping[str, Any]], *, rates: Sequence[float]) -> list[dict[str, Any]]:
    """Each target that this run measured: what, the figure, the rounds' ratios, the limit."""
    checks: list[dict[str, Any]] = []
    by_round = round_ratios(runs, rates=rates, of="webhook", to="go")
    for payload, limit in MAX_CPU_RATIO.items():
        values = by_round.get(payload, {}).get("cpu_us")
        if values:
            checks.append(_check(f"{payload}: CPU/request vs Go", values, limit))
    if P99_RATE in rates:
        for payload in P99_PAYLOADS:
            values = by_round.get(payload, {}).get(f"p99@{rate_key(P99_RATE)}")
            if values:
                checks.append(_check(f"{payload}: p99 @{P99_RATE:g} vs Go", values, MAX_P99_RATIO))
    ours: dict[str, Any] = summarise(runs, rates=rates).get("webhook", {})
    for payload, row in sorted(ours.items(), key=lambda item: payload_order(item[0])):
        checks.append(_check(f"{payload}: peak RSS MiB", [row["peak_rss_mib"]], MAX_PEAK_RSS_MIB))
    if ours:
        ready = max(row["ready_s"] or 0.0 for row in ours.values())
        checks.append(_check("ready s (slowest start)", [ready], MAX_READY_S))
    return checks


def _check(what: str, values: list[float], limit: float) -> dict[str, Any]:
    value = statistics.median(values)
    return {
        "target": what,
        "value": value,
        "rounds": values if len(values) > 1 else None,
        "limit": f"<= {limit:g}",
        "met": value <= limit,
    }


def targets_text(checked: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for check in checked:
        value = check["value"]
        shown = "-" if value is None else f"{value:.2f}"
        verdict = "met" if check["met"] else "MISSED"
        rounds = check.get("rounds")
        each = f"  rounds: {', '.join(f'{r:.2f}' for r in rounds)}" if rounds else ""
        limit = f"({check['limit']})"
        lines.append(f"  {check['target']:<30} {shown:>7}  {limit:<9}  {verdict:<6}{each}")
    return "\n".join(lines)


# A saturated server uses its whole CPU; less means something else ran on CPU 1.
MIN_CPU_SHARE = 0.9
# Sends leaving later than this after their due time mean the generator fell behind.
MAX_DISPATCH_LAG_MS = 1.0


def starved(throughput: Mapping[str, Any]) -> bool:
    """The server did not have CPU 1 to itself during a wrk run."""
    return bool(throughput["server_cpu_share"] < MIN_CPU_SHARE)


def late(latency: Mapping[str, Any]) -> bool:
    """The generator sent late: CPU 0 was not its own."""
    lag = latency["dispatch_lag_p99_ms"]
    return lag is not None and lag > MAX_DISPATCH_LAG_MS


def anomalies(runs: Iterable[Mapping[str, Any]]) -> list[str]:
    """What makes a run's figures suspect (after its retries): say it next to the figures."""
    found = []
    for run in runs:
        where = f"round {run['round']}, {run['payload']} on {run['server']}"
        throughput = run["throughput"]
        if starved(throughput):
            found.append(
                f"{where}: the server had {throughput['server_cpu_share']:.0%} of CPU 1 under"
                " wrk (another process on it?): CPU per request and req/s are pessimistic"
            )
        if throughput["errors"]:
            found.append(f"{where}: wrk saw {throughput['errors']} errors")
        for rate, result in run["latency"].items():
            if late(result):
                found.append(
                    f"{where} @{rate}: sends left {result['dispatch_lag_p99_ms']:.1f} ms late"
                    " (p99): the load generator fell behind (a busy CPU 0?)"
                )
            if result["errors"]:
                found.append(f"{where} @{rate}: {result['errors']} requests failed")
        counted, logged = run["admissions_counted"], run["admissions_logged"]
        if counted is not None and logged is not None and counted != logged:
            found.append(f"{where}: {counted} admissions counted but {logged} logged")
    return found
