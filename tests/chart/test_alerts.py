"""The chart's PrometheusRule: promtool accepts it, promtool unit tests show when each alert
fires and when it must not (tests/chart/alerts/*.test.yaml), its values reach the expressions,
it selects the series the chart's ServiceMonitor makes, and every alert has its runbook in
docs/alerts.md."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart.monitoring import (
    ALERTS,
    DASHBOARD_ON,
    PROMTOOL_TESTS,
    RULE_ON,
    SELECTOR,
    alerts,
    exported_names,
    matchers,
    metric_names,
    prometheus_rule,
    prometheus_tool,
    rule_groups,
    runbook_sections,
    vector_selectors,
    vocabulary_errors,
    write_rules,
)
from tests.chart.render import (
    CHART_DIR,
    FULLNAME,
    NAMESPACE,
    Chart,
    helm_args,
    of_kind,
    one,
    selects,
)
from webhook.metrics import DURATION_BUCKETS

RUNBOOKS = "https://github.com/shm-webhook/shm-webhook/blob/main/docs/alerts.md"


@pytest.fixture(scope="module")
def promtool() -> str:
    return prometheus_tool("promtool")


def run_promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )


def test_no_rule_unless_asked(chart: Chart) -> None:
    assert of_kind(chart.render(), "PrometheusRule") == []


def test_the_rule_and_the_dashboard_lint_clean_in_strict_mode(helm: str) -> None:
    command = [helm, "lint", "--strict", str(CHART_DIR), "--namespace", NAMESPACE]
    done = subprocess.run(
        [*command, *helm_args((*RULE_ON, *DASHBOARD_ON, "metrics.serviceMonitor.enabled=true"))],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout


def test_promtool_accepts_the_rendered_rules(chart: Chart, promtool: str, tmp_path: Path) -> None:
    rules = write_rules(rule_groups(chart), tmp_path / "rules.yaml")
    done = run_promtool(promtool, "check", "rules", str(rules), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout


@pytest.mark.parametrize(
    "test_file",
    [
        # Against the rules without annotations: promtool compares them too.
        pytest.param("firing.test.yaml", id="each alert fires on its series, not on others"),
        pytest.param("annotations.test.yaml", id="each alert's annotations read as meant"),
    ],
)
def test_promtool_unit_tests_pass(
    chart: Chart, promtool: str, tmp_path: Path, test_file: str
) -> None:
    groups = rule_groups(chart)
    write_rules(groups, tmp_path / "rules.yaml")
    for rule in alerts(groups).values():
        rule.pop("annotations")
    write_rules(groups, tmp_path / "rules-bare.yaml")
    shutil.copy(PROMTOOL_TESTS / test_file, tmp_path)
    done = run_promtool(promtool, "test", "rules", test_file, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    cases = yaml.safe_load((PROMTOOL_TESTS / test_file).read_text(encoding="utf-8"))["tests"]
    tested = {check["alertname"] for case in cases for check in case["alert_rule_test"]}
    assert tested == set(ALERTS), "every alert has its unit test"


def test_every_alert_has_a_severity_a_summary_a_description_and_its_runbook(
    chart: Chart,
) -> None:
    found = alerts(rule_groups(chart))
    assert list(found) == list(ALERTS)
    for name, rule in found.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert annotations["runbook_url"] == f"{RUNBOOKS}#{name.lower()}"


def test_docs_alerts_has_one_section_per_alert() -> None:
    assert runbook_sections() == {name.lower() for name in ALERTS}


def test_the_default_selector_is_what_the_chart_servicemonitor_scrapes(chart: Chart) -> None:
    objects = chart.render(*RULE_ON, "metrics.serviceMonitor.enabled=true")
    monitor = one(objects, "ServiceMonitor")
    # The Prometheus operator names the job after the Service, unless a jobLabel says otherwise.
    assert "jobLabel" not in monitor["spec"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    scraped = [
        service["metadata"]["name"]
        for service in of_kind(objects, "Service")
        if selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    ]
    assert scraped == [FULLNAME]
    assert f'job="{scraped[0]}",namespace="{NAMESPACE}"' == SELECTOR
    for name, rule in alerts(rule_groups(chart)).items():
        for selector in vector_selectors(rule["expr"]):
            assert {"job": ("=", FULLNAME), "namespace": ("=", NAMESPACE)}.items() <= matchers(
                selector
            ).items(), f"{name}: {selector}"


def test_a_selector_value_replaces_job_and_namespace_in_every_expression(
    chart: Chart, tmp_path: Path
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text('metrics:\n  prometheusRule:\n    selector: \'job="shm",cluster="eu1"\'\n')
    for name, rule in alerts(rule_groups(chart, f"--values={values}")).items():
        selectors = vector_selectors(rule["expr"])
        assert selectors, name
        for selector in selectors:
            labels = matchers(selector)
            assert labels["job"] == ("=", "shm"), selector
            assert labels["cluster"] == ("=", "eu1"), selector
            assert "namespace" not in labels, selector


def test_rules_use_only_metrics_and_label_values_the_webhook_exports(chart: Chart) -> None:
    exported = exported_names()
    for name, rule in alerts(rule_groups(chart)).items():
        assert metric_names(rule["expr"]) <= exported, name
        assert vocabulary_errors(rule["expr"]) == [], name


EXPRESSION_VALUES = [
    pytest.param("errors.percent=20", "ShmWebhookErrors", "> 0.2", id="the error share"),
    pytest.param("denials.perMinute=30", "ShmWebhookDenialSpike", "> 30", id="denials a minute"),
    pytest.param(
        "latency.milliseconds=250", "ShmWebhookSlowAdmissions", "> 0.25", id="p99 seconds"
    ),
    pytest.param("certificate.days=30", "ShmWebhookCertificateExpiring", "< 30", id="days left"),
    pytest.param("memory.percent=70", "ShmWebhookMemoryNearLimit", "> 0.7", id="memory share"),
]


@pytest.mark.parametrize(("value", "alert", "ending"), EXPRESSION_VALUES)
def test_a_threshold_value_is_the_alert_comparison(
    chart: Chart, value: str, alert: str, ending: str
) -> None:
    rule = alerts(rule_groups(chart, f"metrics.prometheusRule.{value}"))[alert]
    assert rule["expr"].endswith(f"\n{ending}")


@pytest.mark.parametrize(
    ("key", "alert"),
    [
        ("down", "ShmWebhookDown"),
        ("errors", "ShmWebhookErrors"),
        ("denials", "ShmWebhookDenialSpike"),
        ("latency", "ShmWebhookSlowAdmissions"),
        ("certificate", "ShmWebhookCertificateExpiring"),
        ("memory", "ShmWebhookMemoryNearLimit"),
    ],
)
def test_each_for_value_is_the_alert_for(chart: Chart, key: str, alert: str) -> None:
    rule = alerts(rule_groups(chart, f"metrics.prometheusRule.{key}.for=42m"))[alert]
    assert rule["for"] == "42m"


def test_the_latency_threshold_is_below_the_largest_bucket_and_the_api_server_timeout(
    chart: Chart,
) -> None:
    rule = alerts(rule_groups(chart))["ShmWebhookSlowAdmissions"]
    threshold = float(rule["expr"].rsplit(">", 1)[1])
    timeout = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))[
        "timeoutSeconds"
    ]
    assert threshold < max(DURATION_BUCKETS) <= 1 <= timeout
    # Above the largest finite bucket histogram_quantile() answers that bucket's bound: never more.
    message = chart.error(*RULE_ON, "metrics.prometheusRule.latency.milliseconds=1000")
    assert "/metrics/prometheusRule/latency/milliseconds" in message


MEMORY_LIMITS = [
    pytest.param("resources.limits.memory=192Mi", 201326592, id="192Mi, the default"),
    pytest.param("resources.limits.memory=1Gi", 1073741824, id="1Gi"),
    pytest.param("resources.limits.memory=0.5Gi", 536870912, id="a decimal binary quantity"),
    pytest.param("resources.limits.memory=500M", 500000000, id="a decimal suffix"),
    pytest.param("resources.limits.memory=1e9", 1000000000, id="an exponent"),
    pytest.param("resources.limits.memory=134217728", 134217728, id="a number of bytes"),
]


@pytest.mark.parametrize(("value", "limit"), MEMORY_LIMITS)
def test_the_memory_alert_divides_by_the_container_limit_in_bytes(
    chart: Chart, value: str, limit: int
) -> None:
    rule = alerts(rule_groups(chart, value))["ShmWebhookMemoryNearLimit"]
    assert f"}} / {limit}\n" in rule["expr"]


def test_a_byte_count_read_from_a_values_file_is_whole(chart: Chart, tmp_path: Path) -> None:
    # helm reads an integer of a values file as a float64: 1.34217728e+08 when printed.
    values = tmp_path / "values.yaml"
    values.write_text("resources:\n  limits:\n    memory: 134217728\n")
    rule = alerts(rule_groups(chart, f"--values={values}"))["ShmWebhookMemoryNearLimit"]
    assert "} / 134217728\n" in rule["expr"]


def test_no_memory_alert_without_a_memory_limit(chart: Chart) -> None:
    names = alerts(rule_groups(chart, "resources.limits=null"))
    assert set(names) == set(ALERTS) - {"ShmWebhookMemoryNearLimit"}


def test_a_memory_limit_that_is_no_quantity_fails_the_render(chart: Chart) -> None:
    message = chart.error(*RULE_ON, "resources.limits.memory=12Q")
    assert 'resources.limits.memory "12Q" is not a Kubernetes quantity' in message


def test_the_rule_needs_the_metrics_port(chart: Chart) -> None:
    assert "needs metrics.enabled" in chart.error(*RULE_ON, "metrics.enabled=false")


def test_namespace_and_labels_of_the_prometheusrule(chart: Chart) -> None:
    rule = prometheus_rule(chart)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"] == FULLNAME
    assert rule["metadata"]["namespace"] == NAMESPACE
    moved = prometheus_rule(
        chart,
        "metrics.prometheusRule.namespace=monitoring",
        "metrics.prometheusRule.labels.release=kps",
    )
    assert moved["metadata"]["namespace"] == "monitoring"
    assert moved["metadata"]["labels"]["release"] == "kps"
    assert moved["metadata"]["labels"]["app.kubernetes.io/instance"] == "rel"


def test_the_down_alert_says_what_the_failure_policy_does(chart: Chart) -> None:
    fail = alerts(rule_groups(chart))["ShmWebhookDown"]["annotations"]["description"]
    ignore = alerts(rule_groups(chart, "defaultSize=1Gi"))["ShmWebhookDown"]
    assert "cannot be created" in fail
    assert "(failurePolicy Fail)" in fail
    assert "without their /dev/shm volume" in ignore["annotations"]["description"]


REFUSED = [
    pytest.param("errors.percent=101", "/errors/percent", id="an error percentage above 100"),
    pytest.param("memory.percent=0", "/memory/percent", id="a memory percentage of 0"),
    pytest.param("down.for=10 minutes", "/down/for", id="a for that is no Prometheus duration"),
    pytest.param('selector={job="x"}', "/selector", id="a selector with its braces"),
    pytest.param("runbookUrl=docs/alerts.md", "/runbookUrl", id="a runbook URL without a scheme"),
    pytest.param("bogus=1", "'bogus'", id="an unknown key"),
]


@pytest.mark.parametrize(("value", "named"), REFUSED)
def test_the_schema_refuses(chart: Chart, value: str, named: str) -> None:
    message = chart.error(*RULE_ON, f"metrics.prometheusRule.{value}")
    assert "values don't meet the specifications of the schema" in message
    assert named in message
