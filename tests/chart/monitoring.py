"""The chart's monitoring objects as the tests read them: the PrometheusRule's alerts, the
Grafana dashboard of the ConfigMap, the PromQL in both, and the Prometheus tools that judge it.

Owns: rendering the rule and the dashboard (through the `Chart` renderer), pulling the vector
selectors, label matchers and threshold comparisons out of an expression, substituting the
dashboard's variables, and finding `promtool` and `prometheus` (Debian's `prometheus` package;
scripts/test installs it under CI). Shared by tests/chart/test_alerts.py,
tests/chart/test_dashboard.py and tests/integration/test_prometheus.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import FULLNAME, NAMESPACE, Chart, Obj, one
from webhook.metrics import Metrics
from webhook.policy import Reason

RULE_ON = ("metrics.prometheusRule.enabled=true",)
DASHBOARD_ON = ("metrics.dashboard.enabled=true",)
# The labels the chart's ServiceMonitor gives the webhook's series in release `rel`.
SELECTOR = f'job="{FULLNAME}",namespace="{NAMESPACE}"'
ALERTS = (
    "ShmWebhookDown",
    "ShmWebhookInternalErrors",
    "ShmWebhookErrors",
    "ShmWebhookDenialSpike",
    "ShmWebhookSlowAdmissions",
    "ShmWebhookCertificateExpiring",
    "ShmWebhookMemoryNearLimit",
)
OUTCOMES = ("mutated", "skipped", "denied", "error")
PROMTOOL_TESTS = Path(__file__).resolve().parent / "alerts"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"

# A metric name followed by its braces: every selector the chart writes has matchers.
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^{}]*)\}")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"\s*')
# `<query> > 0.5` at the end of an expression: the alert's threshold comparison.
_THRESHOLD = re.compile(r"\s*(?:>|<|>=|<=)\s*[0-9.]+\s*$")
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<query>.+),\s*)?(?P<label>[a-zA-Z_]\w*)\)$")


def prometheus_tool(name: str) -> str:
    """Path of promtool or prometheus: skipped without it, but a failure under CI=true."""
    found = shutil.which(name)
    if found is not None:
        return found
    message = (
        f"{name} is not on PATH; Debian's prometheus package has it (apt-get install prometheus)"
    )
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{message} (CI=true: failing rather than skipping)", pytrace=False)
    pytest.skip(message)


def prometheus_rule(chart: Chart, *values: str) -> Obj:
    return one(chart.render(*RULE_ON, *values), "PrometheusRule")


def rule_groups(chart: Chart, *values: str) -> dict[str, Any]:
    """The rule file Prometheus would load: the PrometheusRule's spec."""
    return {"groups": prometheus_rule(chart, *values)["spec"]["groups"]}


def alerts(groups: dict[str, Any]) -> dict[str, Obj]:
    return {rule["alert"]: rule for group in groups["groups"] for rule in group["rules"]}


def write_rules(groups: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(groups, sort_keys=False), encoding="utf-8")
    return path


def dashboard_configmap(chart: Chart, *values: str) -> Obj:
    objects = chart.render(*DASHBOARD_ON, *values)
    return one(objects, "ConfigMap", f"{FULLNAME}-dashboard")


def dashboard(chart: Chart, *values: str) -> dict[str, Any]:
    """The dashboard JSON as the ConfigMap carries it."""
    data = dashboard_configmap(chart, *values)["data"]
    (text,) = data.values()
    return json.loads(text)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Query:
    where: str
    expr: str
    legend: str


def panel_queries(board: dict[str, Any]) -> Iterator[Query]:
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r}, target {target['refId']}"
            yield Query(where, target["expr"], target.get("legendFormat", ""))


def variable(board: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [v for v in board["templating"]["list"] if v["name"] == name]
    return found  # type: ignore[no-any-return]


def label_values(definition: str) -> tuple[str, str]:
    """A Grafana `label_values(query, label)` variable as (the query, the label)."""
    match = _LABEL_VALUES.match(definition)
    assert match, f"not a label_values() query: {definition}"
    return match["query"], match["label"]


def substitute(expr: str, variables: dict[str, str]) -> str:
    """The expression as Grafana sends it: `$name` and `${name}` replaced, longest first."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", variables[name]).replace(f"${name}", variables[name])
    assert "$" not in expr, f"a variable is left in {expr}"
    return expr


def vector_selectors(expr: str) -> list[str]:
    return [match.group(0) for match in _SELECTOR.finditer(expr)]


def metric_names(expr: str) -> set[str]:
    return {match.group(1) for match in _SELECTOR.finditer(expr)}


def matchers(selector: str) -> dict[str, tuple[str, str]]:
    """label -> (operator, value) of a `name{...}` selector."""
    match = _SELECTOR.fullmatch(selector)
    assert match, selector
    found = {}
    for part in _split_matchers(match.group(2)):
        matcher = _MATCHER.fullmatch(part)
        assert matcher, f"not a label matcher: {part!r} in {selector}"
        found[matcher.group(1)] = (matcher.group(2), matcher.group(3))
    return found


def _split_matchers(body: str) -> list[str]:
    # Commas inside quoted values do not separate matchers.
    return [part for part in re.findall(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+', body) if part.strip()]


def without_threshold(expr: str) -> str | None:
    """The query of `<query> > <number>`, or None when the expression does not end so."""
    stripped = _THRESHOLD.sub("", expr)
    return stripped if stripped != expr else None


def exported_names() -> set[str]:
    """Every series name a scrape of the webhook can show, and Prometheus' own `up`."""
    metrics = Metrics()
    metrics.record(outcome="mutated", reason=Reason.INJECTED, seconds=0.001, injected=1)
    families = metrics.registry.collect()
    return {"up"} | {sample.name for family in families for sample in family.samples}


def vocabulary_errors(expr: str) -> list[str]:
    """outcome and reason values an expression matches that the webhook never exports."""
    reasons = {reason.value for reason in Reason}
    wrong = []
    for selector in vector_selectors(expr):
        for label, allowed in (("outcome", set(OUTCOMES)), ("reason", reasons)):
            operator, value = matchers(selector).get(label, ("=", ""))
            if value and (operator != "=" or value not in allowed):
                wrong.append(f"{label}{operator}{value!r} in {selector}")
    return wrong


def runbook_sections() -> set[str]:
    """The anchors GitHub makes of docs/alerts.md's alert headings (lower case)."""
    headings = re.findall(r"^## (ShmWebhook\w+)$", DOCS.read_text(encoding="utf-8"), re.M)
    return {heading.lower() for heading in headings}
