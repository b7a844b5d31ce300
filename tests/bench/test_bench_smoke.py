"""The benchmark still works: its payloads, and one tiny run of the whole machinery (the Go
reference, the Python floor and the webhook, wrk, the open-loop generator, the medians, the
ratios to Go, the table and the targets).

Proves the bench runs, not how fast anything is: the figures of a one-second run mean nothing.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from bench import report, targets
from bench.payloads import NAMES, build_payloads
from bench.run import Plan, check_machine, run
from bench.servers import SERVERS
from webhook.policy import Policy
from webhook.review import decide, parse_review

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        pytest.param("small", 1_500, 3_000, id="the small pod is about 2 KB"),
        pytest.param("typical", 8_000, 12_000, id="the typical pod is about 10 KB"),
        pytest.param("large", 60_000, 90_000, id="the large pod is about 75 KB"),
    ],
)
def test_payloads_are_mutated_admission_reviews_of_the_announced_size(
    name: str, low: int, high: int
) -> None:
    body = build_payloads()[name]
    assert low <= len(body) <= high
    result = decide(parse_review(body), Policy())
    assert (result.outcome, result.reason) == ("mutated", "injected")


def test_payloads_are_deterministic() -> None:
    assert build_payloads() == build_payloads()
    assert tuple(build_payloads()) == NAMES


@pytest.mark.usefixtures("wrk", "go")
def test_a_tiny_run_measures_the_three_servers() -> None:
    if not {0, 1} <= os.sched_getaffinity(0):
        pytest.skip("the bench needs CPUs 0 and 1")
    check_machine()
    plan = Plan(
        rounds=2, duration=1, warmup=0, latency_duration=1, rates=(1000.0,), payloads=("small",)
    )

    results = run(plan, log=lambda _: None)

    assert [r["server"] for r in results["runs"]] == [*SERVERS, *SERVERS[1:], SERVERS[0]]
    for result in results["runs"]:
        assert result["throughput"]["requests"] > 0
        assert result["throughput"]["cpu_us_per_request"] > 0
        assert result["peak_rss_kib"] >= result["idle_rss_kib"] > 0
        at_1000 = result["latency"]["1000"]
        assert at_1000["completed"] == at_1000["due"] == 1000
        assert at_1000["p50_ms"] is not None
    for webhook in (r for r in results["runs"] if r["server"] == "webhook"):
        assert webhook["admissions_counted"] == webhook["admissions_logged"]
        assert webhook["admissions_counted"] >= webhook["throughput"]["requests"] + 1000
    assert set(results["ratios"]) == {"floor/go", "webhook/go", "webhook/floor"}
    assert results["ratios"]["webhook/go"]["small"]["cpu_us"] > 0
    table = report.table(results["medians"], results["ratios"], rates=plan.rates)
    for label in ("Go", "Python floor", "shm-webhook", "shm-webhook ÷ Go", "Python floor ÷ Go"):
        assert f"  {label}  " in table
    assert [check["target"] for check in results["targets"]] == [
        "small: CPU/request vs Go",
        "small: p99 @1000 vs Go",
        "small: peak RSS MiB",
        "ready s (slowest start)",
    ]
    assert len(results["targets"][0]["rounds"]) == 2


def _run(round_number: int, server: str, cpu_us: float) -> dict[str, Any]:
    return {
        "round": round_number,
        "server": server,
        "payload": "typical",
        "throughput": {"rps": 1e6 / cpu_us, "cpu_us_per_request": cpu_us},
        "peak_rss_kib": 40 * 1024,
        "idle_rss_kib": 30 * 1024,
        "ready_s": 0.5,
        "latency": {},
    }


def test_the_ratios_pair_the_servers_of_each_round() -> None:
    # The host is slower in round 2, and slows down within round 3 after Go's turn: the ratio
    # of the medians (240 / 150 = 1.6) blames the webhook; two rounds of three say 1.2.
    runs = [
        _run(1, "webhook", 180.0),
        _run(1, "go", 150.0),
        _run(2, "go", 200.0),
        _run(2, "webhook", 240.0),
        _run(3, "go", 150.0),
        _run(3, "webhook", 300.0),
    ]
    ratios = report.paired_ratios(runs, rates=(), of="webhook", to="go")
    assert ratios["typical"]["cpu_us"] == pytest.approx(1.2)
    assert ratios["typical"]["peak_rss_mib"] == pytest.approx(1.0)
    assert report.paired_ratios(runs, rates=(), of="floor", to="go") == {}
    [cpu] = [check for check in targets.targets(runs, rates=()) if "CPU" in check["target"]]
    assert cpu["target"] == "typical: CPU/request vs Go"
    assert cpu["rounds"] == pytest.approx([1.2, 1.2, 2.0])
    assert (cpu["value"], cpu["met"]) == (pytest.approx(1.2), True)


def test_a_latency_that_never_finished_is_an_unfinished_ratio() -> None:
    webhook, go = _run(1, "webhook", 200.0), _run(1, "go", 100.0)
    webhook["latency"] = {"1000": {"p50_ms": 1.0, "p99_ms": None, "p999_ms": None}}
    go["latency"] = {"1000": {"p50_ms": 0.5, "p99_ms": 1.0, "p999_ms": None}}

    ratios = report.paired_ratios([webhook, go], rates=(1000.0,), of="webhook", to="go")

    assert ratios["typical"]["p50@1000"] == pytest.approx(2.0)
    assert ratios["typical"]["p99@1000"] == float("inf")
    assert "p999@1000" not in ratios["typical"], "no ratio to a Go figure that never finished"
    row = report.table({}, {"webhook/go": ratios}, rates=(1000.0,))
    assert "2.00/unfinished/-" in row
