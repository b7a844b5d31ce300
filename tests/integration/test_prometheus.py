"""A real Prometheus scrapes a real `shm-webhook serve` and loads the chart's rules; every query
of the Grafana dashboard and every selector and threshold-less alert expression of the
PrometheusRule then returns series through the HTTP API. So the metric names, label names and
label values the chart's PromQL uses are the ones the webhook exports.

Prometheus (Debian's package) runs on 127.0.0.1 with its data in a temporary directory and a
1 s scrape interval; its target gets the labels the Prometheus operator gives a ServiceMonitor
target (job named after the Service, namespace, pod, ...).
"""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.builders import REVIEW, pod, review_bytes
from tests.chart.monitoring import (
    alerts,
    dashboard,
    label_values,
    panel_queries,
    prometheus_tool,
    rule_groups,
    substitute,
    variable,
    vector_selectors,
    without_threshold,
    write_rules,
)
from tests.chart.render import FULLNAME, NAMESPACE, Chart
from tests.processes import free_port
from tests.serving import ServedWebhook, serving, write_certificates

pytestmark = pytest.mark.integration

POD = f"{FULLNAME}-7d4b9c-x2x5q"
DEADLINE_S = 20.0
# Alerts made of two branches (`or`): their selectors are queried, not the whole expression.
COMPOSITE = {"ShmWebhookDown", "ShmWebhookInternalErrors"}


# One admission of each outcome but `error` by its 500 (a bug cannot be provoked on purpose).
ADMISSIONS = [
    ("mutated", REVIEW, "application/json"),
    ("skipped", review_bytes(pod(annotations={})), "application/json"),
    ("denied", review_bytes(pod(annotations={"shm-size": "8GB"})), "application/json"),
    ("error", REVIEW, "text/plain"),
]


@dataclass
class Prometheus:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        assert answer["data"]["resultType"] == "vector", expr
        return answer["data"]["result"]  # type: ignore[no-any-return]

    def wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if done():
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.2)
        pytest.fail(f"{what} after {DEADLINE_S}s:\n{self.log.read_text()}")

    def wait_for(self, expr: str, what: str) -> None:
        self.wait(lambda: bool(self.query(expr)), f"{what} ({expr})")


def admit(server: ServedWebhook) -> None:
    connection = server.connection()
    try:
        for outcome, body, content_type in ADMISSIONS:
            connection.request("POST", "/mutate", body=body, headers={"content-type": content_type})
            response = connection.getresponse()
            response.read()
            assert (response.status == 200) == (outcome != "error"), outcome
    finally:
        connection.close()


def config(metrics_port: int, rules: Path) -> dict[str, Any]:
    labels = {"namespace": NAMESPACE, "service": FULLNAME, "pod": POD, "container": "webhook"}
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": FULLNAME,
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{metrics_port}"],
                        "labels": {**labels, "endpoint": "metrics"},
                    }
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def chart(helm: str) -> Chart:
    return Chart(helm)


@pytest.fixture(scope="module")
def scraped(
    chart: Chart, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Prometheus, Chart]]:
    binary = prometheus_tool("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    rules = write_rules(rule_groups(chart), work / "rules.yaml")
    certificates = write_certificates(work / "tls")
    with serving(certificates, work / "webhook.log") as server:
        admit(server)  # the series exist from the first scrape on
        (work / "prometheus.yml").write_text(yaml.safe_dump(config(server.metrics_port, rules)))
        port = free_port()
        command = [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        log = work / "prometheus.log"
        with log.open("wb") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            prometheus = Prometheus(port, process, log)
            prometheus.wait_for(f'up{{job="{FULLNAME}"}} == 1', "no successful scrape")
            admit(server)  # now the counters rise between two scrapes: rates above 0
            increased = f'increase(shm_webhook_admissions_total{{job="{FULLNAME}"}}[1m]) > 0'
            prometheus.wait_for(f"count({increased}) >= {len(ADMISSIONS)}", "no rates")
            yield prometheus, chart
        finally:
            process.terminate()
            process.wait(timeout=10)


def assert_finite(result: list[dict[str, Any]], where: str) -> None:
    assert result, f"{where}: no series"
    for series in result:
        assert math.isfinite(float(series["value"][1])), f"{where}: {series}"


def test_every_dashboard_query_returns_series_with_its_legend_labels(
    scraped: tuple[Prometheus, Chart],
) -> None:
    prometheus, chart = scraped
    board = dashboard(chart)
    variables = {
        "namespace": NAMESPACE,
        "job": FULLNAME,
        "memory_limit": variable(board, "memory_limit")["query"],
        "__rate_interval": "1m",
        "__range": "1m",
    }
    queries = list(panel_queries(board))
    assert len(queries) >= 12
    for query in queries:
        result = prometheus.query(substitute(query.expr, variables))
        assert_finite(result, query.where)
        for label in _legend_labels(query.legend):
            assert all(label in series["metric"] for series in result), (query.where, label)
    for name in ("namespace", "job"):
        selector, label = label_values(variable(board, name)["definition"])
        result = prometheus.query(substitute(selector, variables))
        assert {series["metric"][label] for series in result} == {variables[name]}, name


def _legend_labels(legend: str) -> list[str]:
    return [part.split("}}")[0].strip() for part in legend.split("{{")[1:]]


def test_every_alert_selector_and_query_returns_series(scraped: tuple[Prometheus, Chart]) -> None:
    prometheus, chart = scraped
    for name, rule in alerts(rule_groups(chart)).items():
        for selector in vector_selectors(rule["expr"]):
            # No 500 can be provoked on purpose: the 4xx errors stand in for internal-error.
            query = selector.replace(',reason="internal-error"', "")
            assert prometheus.query(query), f"{name}: {query} selects nothing"
        if name not in COMPOSITE:
            query = without_threshold(rule["expr"])
            assert query is not None, f"{name} does not end in a threshold comparison"
            assert_finite(prometheus.query(query), name)


def test_prometheus_loads_and_evaluates_every_rule_without_error(
    scraped: tuple[Prometheus, Chart],
) -> None:
    prometheus, chart = scraped

    def evaluated() -> list[dict[str, Any]]:
        (group,) = prometheus.get("/api/v1/rules")["data"]["groups"]
        assert group["name"] == "shm-webhook"
        rules: list[dict[str, Any]] = group["rules"]
        return [rule for rule in rules if not rule["lastEvaluation"].startswith("0001-")]

    prometheus.wait(lambda: len(evaluated()) == len(alerts(rule_groups(chart))), "not evaluated")
    health = {rule["name"]: (rule["health"], rule.get("lastError", "")) for rule in evaluated()}
    assert health == dict.fromkeys(alerts(rule_groups(chart)), ("ok", ""))


def test_a_healthy_webhook_does_not_look_down(scraped: tuple[Prometheus, Chart]) -> None:
    prometheus, chart = scraped
    down = alerts(rule_groups(chart))["ShmWebhookDown"]["expr"]
    assert prometheus.query(down) == []
