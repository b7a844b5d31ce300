"""The Grafana dashboard ConfigMap: labelled for Grafana's dashboard sidecar, a valid
Kubernetes object small enough for `kubectl apply`, and a dashboard whose every query goes
through its data source variable, follows its namespace and job variables, and asks for
series the webhook exports (tests/integration/test_prometheus.py runs the queries)."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest

from tests.chart.monitoring import (
    DASHBOARD_ON,
    dashboard,
    dashboard_configmap,
    exported_names,
    label_values,
    matchers,
    metric_names,
    panel_queries,
    variable,
    vector_selectors,
    vocabulary_errors,
)
from tests.chart.render import CHART_DIR, FULLNAME, LATEST, NAMESPACE, Chart

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SHIPPED = json.loads((CHART_DIR / "dashboards" / "shm-webhook.json").read_text(encoding="utf-8"))
# The last-applied-configuration annotation of a client-side `kubectl apply` holds the whole
# object and may not exceed 256 KiB.
APPLY_LIMIT = 262144


def test_no_dashboard_unless_asked(chart: Chart) -> None:
    names = [obj["metadata"]["name"] for obj in chart.render() if obj["kind"] == "ConfigMap"]
    assert f"{FULLNAME}-dashboard" not in names


def test_the_configmap_is_labelled_for_the_grafana_sidecar_and_valid(chart: Chart) -> None:
    configmap = dashboard_configmap(chart)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == NAMESPACE
    assert list(configmap["data"]) == ["shm-webhook.json"]
    kubernetes_validate.validate(configmap, LATEST, strict=True)
    assert len(json.dumps(configmap)) < APPLY_LIMIT


def test_label_namespace_and_annotations_are_values(chart: Chart) -> None:
    configmap = dashboard_configmap(
        chart,
        "metrics.dashboard.label=example.com/dashboard",
        "metrics.dashboard.labelValue=shm",
        "metrics.dashboard.namespace=grafana",
        "metrics.dashboard.annotations.grafana_folder=Kubernetes",
    )
    metadata = configmap["metadata"]
    assert metadata["labels"]["example.com/dashboard"] == "shm"
    assert "grafana_dashboard" not in metadata["labels"]
    assert metadata["namespace"] == "grafana"
    assert metadata["annotations"] == {"grafana_folder": "Kubernetes"}
    kubernetes_validate.validate(configmap, LATEST, strict=True)


def test_the_dashboard_needs_the_metrics_port(chart: Chart) -> None:
    assert "needs metrics.enabled" in chart.error(*DASHBOARD_ON, "metrics.enabled=false")


def test_the_chart_ships_the_dashboard_file_and_fills_in_only_the_memory_limit(
    chart: Chart,
) -> None:
    board = dashboard(chart)
    assert variable(SHIPPED, "memory_limit")["query"] == "__MEMORY_LIMIT_BYTES__"
    variable(board, "memory_limit")["query"] = "__MEMORY_LIMIT_BYTES__"
    assert board == SHIPPED


@pytest.mark.parametrize(
    ("values", "limit"),
    [
        pytest.param((), "201326592", id="the default 192Mi limit in bytes"),
        pytest.param(("resources.limits.memory=1Gi",), "1073741824", id="1Gi in bytes"),
        pytest.param(("resources.limits=null",), "NaN", id="NaN without a limit: no line"),
    ],
)
def test_the_memory_limit_constant_is_the_container_limit(
    chart: Chart, values: tuple[str, ...], limit: str
) -> None:
    constant = variable(dashboard(chart, *values), "memory_limit")
    assert constant["type"] == "constant"
    assert constant["query"] == limit


def test_every_query_goes_through_the_datasource_variable() -> None:
    datasource = variable(SHIPPED, "datasource")
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    for name in ("namespace", "job"):
        assert variable(SHIPPED, name)["datasource"] == DATASOURCE
    for panel in SHIPPED["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_every_query_selects_the_namespace_and_job_of_the_variables() -> None:
    for query in panel_queries(SHIPPED):
        for selector in vector_selectors(query.expr):
            labels = matchers(selector)
            assert labels["namespace"] == ("=", "$namespace"), query.where
            assert labels["job"] == ("=", "$job"), query.where
    assert label_values(variable(SHIPPED, "namespace")["definition"]) == (
        "shm_webhook_build_info",
        "namespace",
    )
    job_query, job_label = label_values(variable(SHIPPED, "job")["definition"])
    assert job_label == "job"
    assert matchers(job_query)["namespace"] == ("=", "$namespace")


def test_the_dashboard_shows_every_webhook_metric_and_nothing_it_does_not_export() -> None:
    exported = exported_names()
    used = set().union(*(metric_names(query.expr) for query in panel_queries(SHIPPED)))
    assert used <= exported
    webhook_metrics = {name for name in exported if name.startswith("shm_webhook_")}
    # The histogram's _count and _sum say nothing its buckets do not.
    histogram = "shm_webhook_admission_duration_seconds"
    assert webhook_metrics - {f"{histogram}_count", f"{histogram}_sum"} <= used
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= used
    assert "process_open_fds" in used
    for query in panel_queries(SHIPPED):
        assert vocabulary_errors(query.expr) == [], query.where


def test_panels_have_unique_ids_titles_and_descriptions() -> None:
    panels = SHIPPED["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    assert len({panel["title"] for panel in panels}) == len(panels)
    for panel in panels:
        assert len(panel["description"]) > 20, panel["title"]
