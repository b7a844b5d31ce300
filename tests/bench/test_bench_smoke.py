"""The benchmark still works: its payloads, and one tiny run of the whole machinery (both
servers, wrk, the open-loop generator, the medians, the table and the targets).

Proves the bench runs, not how fast anything is: the figures of a one-second run mean nothing.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from bench import report
from bench.payloads import NAMES, build_payloads
from bench.run import Plan, check_machine, run
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


@pytest.mark.usefixtures("wrk")
def test_a_tiny_run_measures_both_servers() -> None:
    if not {0, 1} <= os.sched_getaffinity(0):
        pytest.skip("the bench needs CPUs 0 and 1")
    check_machine()
    plan = Plan(
        rounds=1, duration=1, warmup=0, latency_duration=1, rates=(200.0,), payloads=("small",)
    )

    results = run(plan, log=lambda _: None)

    assert {r["server"] for r in results["runs"]} == {"webhook", "reference"}
    for result in results["runs"]:
        assert result["throughput"]["requests"] > 0
        assert result["throughput"]["cpu_us_per_request"] > 0
        assert result["peak_rss_kib"] >= result["idle_rss_kib"] > 0
        at_200 = result["latency"]["200"]
        assert at_200["completed"] == at_200["due"] == 200
        assert at_200["p50_ms"] is not None
    [webhook] = [r for r in results["runs"] if r["server"] == "webhook"]
    assert webhook["admissions_counted"] == webhook["admissions_logged"]
    assert webhook["admissions_counted"] >= webhook["throughput"]["requests"] + 200
    table = report.table(results["medians"], rates=plan.rates)
    assert "small" in table
    assert "ratio" in table
    assert {check["target"] for check in results["targets"]} >= {"peak RSS MiB (all payloads)"}


def test_the_cpu_ratio_target_pairs_the_servers_of_each_round() -> None:
    def run(round_number: int, server: str, cpu_us: float) -> dict[str, Any]:
        return {
            "round": round_number,
            "server": server,
            "payload": "typical",
            "throughput": {"cpu_us_per_request": cpu_us},
        }

    # The host is slower in round 2, and slows down within round 3 after the reference's turn:
    # the ratio of the medians (240 / 150 = 1.6) blames the webhook; two rounds of three say 1.2.
    runs = [
        run(1, "webhook", 180.0),
        run(1, "reference", 150.0),
        run(2, "reference", 200.0),
        run(2, "webhook", 240.0),
        run(3, "reference", 150.0),
        run(3, "webhook", 300.0),
    ]
    assert report.paired_cpu_ratio(runs, "typical") == pytest.approx(1.2)
    assert report.paired_cpu_ratio(runs, "large") is None
