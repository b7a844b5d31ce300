"""The attribution tool (bench/attribution.py, bench/inprocess.py) measures what it says: every
step of every payload in process, the Go reference's steps, and served layers as differences
between servers of the same round. Proves the tool works, not how fast anything is."""

from __future__ import annotations

import os
from typing import Any

import pytest

from bench import attribution, inprocess
from bench.payloads import NAMES, build_payloads


def test_every_step_of_every_payload_is_timed_in_process() -> None:
    steps = inprocess.python_steps(build_payloads(), repeats=1, seconds=0.001)

    assert list(steps) == list(NAMES)
    for name, figures in steps.items():
        assert {key for _, key in attribution.IN_PROCESS_ROWS} <= set(figures), name
        for key, value in figures.items():
            assert key == "log line" or value > 0, (name, key)  # a difference: may be ~0
    assert steps["large"]["parse"] > steps["small"]["parse"], "parsing grows with the body"


@pytest.mark.integration
@pytest.mark.usefixtures("goref")
def test_the_go_reference_steps_are_timed() -> None:
    cpu = min(os.sched_getaffinity(0))

    steps = inprocess.go_steps(build_payloads(), cpu=cpu, calls=5, repeats=1)

    assert sorted(steps) == sorted(NAMES)
    for name, figures in steps.items():
        assert set(figures) == set(inprocess.GO_STEPS.values()), name
        assert all(value > 0 for value in figures.values()), name
    assert steps["large"]["decode"] > steps["small"]["decode"]


def _run(round_number: int, server: str, cpu_us: float) -> dict[str, Any]:
    return {
        "round": round_number,
        "payload": "typical",
        "server": server,
        "throughput": {"cpu_us_per_request": cpu_us},
    }


def test_a_served_layer_is_the_difference_of_two_servers_within_each_round() -> None:
    # Round 2 runs on a slower host: its figures are all higher, its differences are not.
    runs = [
        _run(1, "go-cached", 40.0),
        _run(1, "go", 200.0),
        _run(1, "webhook", 300.0),
        _run(2, "go-cached", 60.0),
        _run(2, "go", 260.0),
        _run(2, "webhook", 390.0),
        _run(3, "go-cached", 50.0),
        _run(3, "go", 240.0),
    ]

    layers = attribution.served_layers(runs)["typical"]

    work = layers["Go: decode + mutate + answer"]
    assert (work["us"], work["low"], work["high"]) == (190.0, 160.0, 200.0)
    assert layers["webhook minus Go"] == {"us": 115.0, "low": 100.0, "high": 130.0}
    assert "log line (--log-level info)" not in layers, "no webhook-nolog ran"
    table = attribution.markdown(
        python={}, go={}, served={"typical": layers}, payload_bytes={"typical": 9056}
    )
    assert "| Go: decode + mutate + answer | 190 [160-200] |" in table
    assert "| typical (9.1 KB) |" in table
