"""The bench's figures: medians over rounds, ratios to the Go reference, the table.

Owns: `figures(run)` (the flat figures of one server run), `summarise(runs)` (per server and
payload, the median of each figure over the rounds), `paired_ratios` and `ratios` (per round,
a server's figure over another's from the same round, then the median over the rounds) and
`table` (the text printed at the end of a run). The targets and the suspect-run checks are
bench.targets'.

Ratios pair the servers of a round: they run back to back, so a host that slows down between
rounds (the floor's CPU per typical request has gone from 172 to 274 µs within a day) moves
both figures of a pair, and the ratio of a round is steadier than the ratio of two medians.
Latency that never finished (an overloaded server) is +inf in the figures and `null` in JSON.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.servers import SPECS

Figures = dict[str, float | None]
# (of, to) server pairs whose ratios the table shows when both ran: each Python server against
# the Go reference, and the webhook against the floor (the cost of its own stack).
RATIO_PAIRS = (("floor", "go"), ("webhook", "go"), ("webhook", "floor"))
PAYLOAD_ORDER = ("small", "typical", "large")


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
        result = run["latency"][rate_key(rate)]
        for name in ("p50", "p99", "p999"):
            value = result[f"{name}_ms"]
            flat[f"{name}@{rate_key(rate)}"] = math.inf if value is None else value
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


def round_ratios(
    runs: Iterable[Mapping[str, Any]], *, rates: Sequence[float], of: str, to: str
) -> dict[str, dict[str, list[float]]]:
    """{payload: {figure: [the ratio of `of` to `to` in each round where both ran]}}."""
    rounds: dict[tuple[str, int], dict[str, Figures]] = {}
    for run in runs:
        if run["server"] in (of, to):
            pair = rounds.setdefault((run["payload"], run["round"]), {})
            pair[run["server"]] = figures(run, rates=rates)
    found: dict[str, dict[str, list[float]]] = {}
    for (payload, _), pair in sorted(rounds.items()):
        if of in pair and to in pair:
            by_figure = found.setdefault(payload, {})
            for key, value in pair[of].items():
                ratio = _ratio(value, pair[to][key])
                if ratio is not None:
                    by_figure.setdefault(key, []).append(ratio)
    return found


def paired_ratios(
    runs: Iterable[Mapping[str, Any]], *, rates: Sequence[float], of: str, to: str
) -> dict[str, Figures]:
    """{payload: {figure: the median over rounds of the round's `of`/`to` ratio}}."""
    return {
        payload: {key: statistics.median(values) for key, values in by_figure.items()}
        for payload, by_figure in round_ratios(runs, rates=rates, of=of, to=to).items()
    }


def ratios(runs: Sequence[Mapping[str, Any]], *, rates: Sequence[float]) -> dict[str, Any]:
    """{"of/to": {payload: {figure: ratio}}} for each pair of RATIO_PAIRS that both ran."""
    servers = {run["server"] for run in runs}
    return {
        f"{of}/{to}": paired_ratios(runs, rates=rates, of=of, to=to)
        for of, to in RATIO_PAIRS
        if {of, to} <= servers
    }


def _medians(rows: list[Figures]) -> Figures:
    keys = rows[0].keys()
    return {key: _median([row[key] for row in rows]) for key in keys}


def _median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline; +inf for an unfinished value against a finished one, else None
    when either is missing or the baseline never finished."""
    if value is None or baseline is None or baseline == 0 or math.isinf(baseline):
        return None
    return value / baseline


def table(medians: Mapping[str, Any], paired: Mapping[str, Any], *, rates: Sequence[float]) -> str:
    """Per payload: each server's medians, then the medians of the rounds' ratios."""
    columns = ["req/s", "CPU µs/req"]
    columns += [f"@{rate_key(rate)} p50/p99/p99.9 ms" for rate in rates]
    columns += ["peak RSS MiB", "ready s"]
    rows = [["payload", "server", *columns]]
    payloads = {p for by_payload in [*medians.values(), *paired.values()] for p in by_payload}
    for payload in sorted(payloads, key=payload_order):
        for server in sorted(medians, key=list(SPECS).index):
            row = medians[server].get(payload)
            if row is not None:
                rows.append([payload, SPECS[server].label, *_cells(row, rates=rates)])
        for pair, by_payload in paired.items():
            if payload in by_payload:
                of, to = (SPECS[name].label for name in pair.split("/"))
                cells = _cells(by_payload[payload], rates=rates, form="{:.2f}")
                rows.append([payload, f"{of} ÷ {to}", *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cells(row: Figures, *, rates: Sequence[float], form: str | None = None) -> list[str]:
    """Table cells; `form` formats every figure (ratios), else each has its own."""
    cells = [
        _number(row.get("rps"), form or "{:.0f}"),
        _number(row.get("cpu_us"), form or "{:.0f}"),
    ]
    for rate in rates:
        key = rate_key(rate)
        latencies = (
            _number(row.get(f"{p}@{key}"), form or "{:.2f}") for p in ("p50", "p99", "p999")
        )
        cells.append("/".join(latencies))
    cells.append(_number(row.get("peak_rss_mib"), form or "{:.1f}"))
    cells.append(_number(row.get("ready_s"), form or "{:.2f}"))
    return cells


def _number(value: float | None, form: str) -> str:
    if value is None:
        return "-"
    return "unfinished" if math.isinf(value) else form.format(value)


def rate_key(rate: float) -> str:
    return f"{rate:g}"


def payload_order(payload: str) -> int:
    return PAYLOAD_ORDER.index(payload) if payload in PAYLOAD_ORDER else len(PAYLOAD_ORDER)
