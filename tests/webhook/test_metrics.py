"""What a scrape of the metrics shows besides the admissions: the build, the process, and no
`_created` series."""

from __future__ import annotations

import platform
import tomllib
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from webhook.metrics import Metrics

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def scrape(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def test_build_info_names_the_package_version_and_python() -> None:
    version = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]
    assert scrape(Metrics())["shm_webhook_build_info"] == [
        ({"version": version, "python_version": platform.python_version()}, 1.0)
    ]


def test_process_metrics_show_memory_cpu_and_file_descriptors() -> None:
    samples = scrape(Metrics())
    [(_, rss)] = samples["process_resident_memory_bytes"]
    assert rss > 1024 * 1024
    assert samples["process_cpu_seconds_total"][0][1] > 0
    assert samples["process_open_fds"][0][1] >= 3


def test_no_created_series_beside_the_counters() -> None:
    metrics = Metrics()
    metrics.record(outcome="mutated", reason="injected", seconds=0.001, injected=2**30)
    samples = scrape(metrics)
    assert samples["shm_webhook_admissions_total"] == [
        ({"outcome": "mutated", "reason": "injected"}, 1.0)
    ]
    assert [name for name in samples if name.endswith("_created")] == []
