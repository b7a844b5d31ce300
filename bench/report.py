"""The bench's figures: medians over rounds, webhook/reference ratios, the table, the targets.

Owns: `summarise(rounds)` (per server and payload, the median of each figure), `table` (the
text printed at the end of a run) and `targets` (the performance issue's targets, checked).
Latency that never finished (an overloaded server) is +inf in the medians and `null` in JSON.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# The performance issue's targets (figures of this 2-core machine).
MAX_CPU_RATIO = 1.3
MAX_CPU_US = 250.0
MIN_RPS = {"typical": 3000.0, "large": 500.0}
MAX_P99_RATIO = 1.5
MAX_PEAK_RSS_MIB = 60.0
MAX_READY_S = 1.5

Figures = dict[str, float | None]


def figures(run: Mapping[str, Any], *, rates: Sequence[float]) -> Figures:
    """The flat figures of one server run (see run.measure) that the table shows."""
    flat: Figures = {
        "rps": run["throughput"]["rps"],
        "cpu_us": run["throughput"]["cpu_us_per_request"],
        "peak_rss_mib": run["peak_rss_kib"] / 1024,
        "idle_rss_mib": run["idle_rss_kib"] / 1024,
        "ready_s": run["ready_s"],
    }
    for rate in rates:
        result = run["latency"][_rate_key(rate)]
        for name in ("p50", "p99", "p999"):
            value = result[f"{name}_ms"]
            flat[f"{name}@{_rate_key(rate)}"] = math.inf if value is None else value
    return flat


def summarise(runs: Iterable[Mapping[str, Any]], *, rates: Sequence[float]) -> dict[str, Any]:
    """{server: {payload: {figure: median}}} over the rounds."""
    collected: dict[str, dict[str, list[Figures]]] = {}
    for run in runs:
        by_payload = collected.setdefault(run["server"], {})
        by_payload.setdefault(run["payload"], []).append(figures(run, rates=rates))
    return {
        server: {payload: _medians(rows) for payload, rows in by_payload.items()}
        for server, by_payload in collected.items()
    }


def _medians(rows: list[Figures]) -> Figures:
    keys = rows[0].keys()
    return {key: _median([row[key] for row in rows]) for key in keys}


def _median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def table(medians: Mapping[str, Any], *, rates: Sequence[float]) -> str:
    """The figures as a text table: per payload, the webhook, the reference and their ratio."""
    columns = ["req/s", "CPU µs/req"]
    for rate in rates:
        columns.append(f"@{_rate_key(rate)} p50/p99/p99.9 ms")
    columns += ["peak RSS MiB", "ready s"]
    rows = [["payload", "server", *columns]]
    payloads = {payload for by_payload in medians.values() for payload in by_payload}
    for payload in sorted(payloads, key=_payload_order):
        ours = medians.get("webhook", {}).get(payload)
        reference = medians.get("reference", {}).get(payload)
        for server, row in (("webhook", ours), ("reference", reference)):
            if row is not None:
                rows.append([payload, server, *_cells(row, rates=rates)])
        if ours is not None and reference is not None:
            ratios = _ratios(ours, reference)
            rows.append([payload, "ratio", *_cells(ratios, rates=rates, form="{:.2f}")])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cells(row: Figures, *, rates: Sequence[float], form: str | None = None) -> list[str]:
    """Table cells; `form` formats every figure (ratios), else each has its own."""
    cells = [_number(row["rps"], form or "{:.0f}"), _number(row["cpu_us"], form or "{:.0f}")]
    for rate in rates:
        key = _rate_key(rate)
        latencies = (_number(row[f"{p}@{key}"], form or "{:.2f}") for p in ("p50", "p99", "p999"))
        cells.append("/".join(latencies))
    cells.append(_number(row["peak_rss_mib"], form or "{:.1f}"))
    cells.append(_number(row["ready_s"], form or "{:.2f}"))
    return cells


def _ratios(ours: Figures, reference: Figures) -> Figures:
    return {key: _ratio(ours[key], reference[key]) for key in ours}


def _ratio(ours: float | None, reference: float | None) -> float | None:
    if ours is None or reference is None or reference == 0 or math.isinf(reference):
        return None
    return ours / reference


def _number(value: float | None, form: str) -> str:
    if value is None:
        return "-"
    return "unfinished" if math.isinf(value) else form.format(value)


def paired_cpu_ratio(runs: Iterable[Mapping[str, Any]], payload: str) -> float | None:
    """The median over rounds of webhook/reference CPU per request for `payload`.

    The two servers of a round run back to back, so a host that slows down between rounds
    (this one's reference has gone from 198 to 274 µs within one run) moves both figures of
    a pair: the ratio of a round is steadier than the ratio of the two medians.
    """
    pairs: dict[int, dict[str, float]] = {}
    for run in runs:
        if run["payload"] == payload:
            pairs.setdefault(run["round"], {})[run["server"]] = run["throughput"][
                "cpu_us_per_request"
            ]
    ratios = [
        pair["webhook"] / pair["reference"]
        for pair in pairs.values()
        if pair.get("webhook") and pair.get("reference")
    ]
    return statistics.median(ratios) if ratios else None


def targets(
    medians: Mapping[str, Any], runs: Iterable[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """Each target of the issue that this run measured: what, the figure, the limit, met."""
    ours: dict[str, Figures] = medians.get("webhook", {})
    reference: dict[str, Figures] = medians.get("reference", {})
    checks: list[tuple[str, float | None, str, float]] = []
    typical, typical_ref = ours.get("typical"), reference.get("typical")
    if typical is not None:
        checks.append(("typical: CPU µs/request", typical["cpu_us"], "<=", MAX_CPU_US))
        if typical_ref is not None:
            ratio = paired_cpu_ratio(runs, "typical")
            if ratio is None:
                ratio = _ratio(typical["cpu_us"], typical_ref["cpu_us"])
            checks.append(("typical: CPU vs reference", ratio, "<=", MAX_CPU_RATIO))
    for payload, floor in MIN_RPS.items():
        if payload in ours:
            checks.append((f"{payload}: max req/s", ours[payload]["rps"], ">=", floor))
    for payload, row in sorted(ours.items(), key=lambda item: _payload_order(item[0])):
        if payload in reference and "p99@200" in row:
            ratio = _ratio(row["p99@200"], reference[payload]["p99@200"])
            checks.append((f"{payload}: p99 @200 vs reference", ratio, "<=", MAX_P99_RATIO))
    if ours:
        peak = max(row["peak_rss_mib"] or 0.0 for row in ours.values())
        ready = max(row["ready_s"] or 0.0 for row in ours.values())
        checks.append(("peak RSS MiB (all payloads)", peak, "<=", MAX_PEAK_RSS_MIB))
        checks.append(("ready s (slowest start)", ready, "<=", MAX_READY_S))
    return [
        {
            "target": what,
            "value": value,
            "limit": f"{op} {limit:g}",
            "met": value is not None and (value <= limit if op == "<=" else value >= limit),
        }
        for what, value, op, limit in checks
    ]


def targets_text(checked: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for check in checked:
        value = check["value"]
        shown = "-" if value is None else f"{value:.2f}"
        verdict = "met" if check["met"] else "MISSED"
        lines.append(f"  {check['target']:<34} {shown:>9}  ({check['limit']})  {verdict}")
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
        if counted is not None and counted != logged:
            found.append(f"{where}: {counted} admissions counted but {logged} logged")
    return found


def _rate_key(rate: float) -> str:
    return f"{rate:g}"


def _payload_order(payload: str) -> int:
    order = ("small", "typical", "large")
    return order.index(payload) if payload in order else len(order)
