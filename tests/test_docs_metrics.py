"""docs/metrics.md against the code: every `reason` declared in `webhook.policy.Reason` has its
row and no row names another; every metric a scrape shows is in the table."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from webhook.metrics import Metrics
from webhook.policy import Reason

METRICS_DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(mutated|skipped|denied|error)` \| `([a-z-]+)` \|", re.MULTILINE)
METRIC_ROW = re.compile(r"^\| (`[a-z_]+`(?:, `[a-z_]+`)*) \| (counter|gauge|histogram) \|", re.M)


def test_the_reason_table_lists_every_declared_reason_and_no_other() -> None:
    documented = {reason for _, reason in ROW.findall(METRICS_DOC.read_text(encoding="utf-8"))}
    assert documented == {reason.value for reason in Reason}


def test_the_metric_table_lists_every_metric_a_scrape_shows() -> None:
    metrics = Metrics()
    metrics.watch_namespaces(age=lambda: 0.0, problems=lambda: 0)
    scraped = {
        family.name
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
    }
    documented = set()
    for names, kind in METRIC_ROW.findall(METRICS_DOC.read_text(encoding="utf-8")):
        for name in re.findall(r"`([a-z_]+)`", names):
            # The parser names a counter's family without its _total suffix.
            documented.add(name.removesuffix("_total") if kind == "counter" else name)
    assert scraped == documented
