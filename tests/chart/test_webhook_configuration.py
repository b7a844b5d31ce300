"""The MutatingWebhookConfiguration (SPEC §4): which pods reach the webhook in each scope,
matchConditions, failurePolicy, and the fixed call parameters."""

from __future__ import annotations

import pytest

from tests.chart.render import (
    FULLNAME,
    NAMESPACE,
    Chart,
    namespace_labels,
    one,
    selects,
    webhook,
)

ENABLED = {"shm-injection": "enabled"}
DISABLED = {"shm-injection": "disabled"}

SCOPE_CASES = [
    # (scope, namespace name, namespace labels, extra values, sent to the webhook)
    pytest.param(
        "namespace",
        "ml",
        ENABLED,
        (),
        True,
        id="namespace scope serves a namespace labelled enabled",
    ),
    pytest.param(
        "namespace", "ml", {}, (), False, id="namespace scope ignores an unlabelled namespace"
    ),
    pytest.param(
        "namespace", "ml", DISABLED, (), False, id="namespace scope ignores a disabled namespace"
    ),
    pytest.param(
        "namespace",
        NAMESPACE,
        ENABLED,
        (),
        False,
        id="namespace scope never serves the release namespace even when labelled enabled",
    ),
    pytest.param(
        "namespace",
        "kube-system",
        ENABLED,
        (),
        False,
        id="namespace scope never serves kube-system even when labelled enabled",
    ),
    pytest.param(
        "namespace",
        "ci",
        ENABLED,
        ("excludeNamespaces[0]=ci",),
        False,
        id="namespace scope never serves an excluded namespace even when labelled enabled",
    ),
    pytest.param("cluster", "ml", {}, (), True, id="cluster scope serves an unlabelled namespace"),
    pytest.param(
        "cluster", "ml", ENABLED, (), True, id="cluster scope serves a namespace labelled enabled"
    ),
    pytest.param(
        "cluster", "ml", DISABLED, (), False, id="cluster scope skips a namespace labelled disabled"
    ),
    pytest.param(
        "cluster", NAMESPACE, {}, (), False, id="cluster scope skips the release namespace"
    ),
    pytest.param("cluster", "kube-system", {}, (), False, id="cluster scope skips kube-system"),
    pytest.param("cluster", "kube-public", {}, (), False, id="cluster scope skips kube-public"),
    pytest.param(
        "cluster", "kube-node-lease", {}, (), False, id="cluster scope skips kube-node-lease"
    ),
    pytest.param(
        "cluster",
        "ci",
        {},
        ("excludeNamespaces[0]=ci", "excludeNamespaces[1]=batch"),
        False,
        id="cluster scope skips the first extra excluded namespace",
    ),
    pytest.param(
        "cluster",
        "batch",
        {},
        ("excludeNamespaces[0]=ci", "excludeNamespaces[1]=batch"),
        False,
        id="cluster scope skips the second extra excluded namespace",
    ),
    pytest.param(
        "cluster",
        "ml",
        {},
        ("excludeNamespaces[0]=ci",),
        True,
        id="cluster scope still serves namespaces that are not excluded",
    ),
]


@pytest.mark.parametrize(("scope", "name", "labels", "values", "sent"), SCOPE_CASES)
def test_namespace_selector_per_scope(
    chart: Chart,
    scope: str,
    name: str,
    labels: dict[str, str],
    values: tuple[str, ...],
    sent: bool,
) -> None:
    hook = webhook(chart.render(f"scope={scope}", *values))
    assert selects(hook["namespaceSelector"], namespace_labels(name, **labels)) is sent


@pytest.mark.parametrize(
    "namespace",
    [
        pytest.param("kube-system", id="a release in kube-system lists it once"),
        pytest.param("ci", id="a release in an excluded namespace lists it once"),
    ],
)
def test_excluded_namespaces_are_listed_once(chart: Chart, namespace: str) -> None:
    hook = webhook(chart.render("excludeNamespaces[0]=ci", namespace=namespace))
    (names,) = [
        e["values"]
        for e in hook["namespaceSelector"]["matchExpressions"]
        if e["key"] == "kubernetes.io/metadata.name"
    ]
    assert len(names) == len(set(names))
    assert namespace in names


OBJECT_CASES = [
    # (scope, pod labels, sent to the webhook)
    (scope, labels, sent, f"in {scope} scope {what}")
    for scope in ("namespace", "cluster")
    for labels, sent, what in (
        ({}, True, "an unlabelled pod is sent"),
        ({"app": "x", "shm-injection": "enabled"}, True, "a pod labelled enabled is sent"),
        (DISABLED, False, "a pod labelled shm-injection disabled is never sent"),
    )
]


@pytest.mark.parametrize(
    ("scope", "labels", "sent"), [pytest.param(*case[:3], id=case[3]) for case in OBJECT_CASES]
)
def test_object_selector_lets_pods_opt_out(
    chart: Chart, scope: str, labels: dict[str, str], sent: bool
) -> None:
    hook = webhook(chart.render(f"scope={scope}"))
    assert selects(hook["objectSelector"], labels) is sent


MATCH_CONDITION_CASES = [
    pytest.param("", "1.27", False, id="no matchConditions on 1.27 which lacks them"),
    pytest.param("", "1.28", True, id="matchConditions from 1.28 without a default size"),
    pytest.param("", "1.31", True, id="matchConditions on 1.31 without a default size"),
    pytest.param("", "1.35", True, id="matchConditions on 1.35 without a default size"),
    pytest.param("1Gi", "1.35", False, id="no matchConditions with a default size"),
    pytest.param("25%", "1.30", False, id="no matchConditions with a percentage default size"),
    pytest.param("1Gi", "1.27", False, id="no matchConditions with a default size on 1.27"),
]


@pytest.mark.parametrize(("default_size", "kube", "present"), MATCH_CONDITION_CASES)
def test_match_conditions_only_without_default_size_on_1_28_and_later(
    chart: Chart, default_size: str, kube: str, present: bool
) -> None:
    hook = webhook(chart.render(f"defaultSize={default_size}", kube=kube))
    assert ("matchConditions" in hook) is present


@pytest.mark.parametrize(
    ("values", "key"),
    [
        pytest.param((), "shm-size", id="the condition names the default annotation"),
        pytest.param(
            ("annotation=example.com/shm-size",),
            "example.com/shm-size",
            id="the condition names a configured annotation with a prefix",
        ),
    ],
)
def test_match_condition_tests_the_configured_annotation(
    chart: Chart, values: tuple[str, ...], key: str
) -> None:
    (condition,) = webhook(chart.render(*values))["matchConditions"]
    assert condition["expression"] == (
        f"has(object.metadata.annotations) && '{key}' in object.metadata.annotations"
    )


FAILURE_POLICY_CASES = [
    pytest.param(
        "", "", "Fail", id="Fail by default: a pod that asked is never created without shm"
    ),
    pytest.param("1Gi", "", "Ignore", id="Ignore by default with a default size"),
    pytest.param("25%", "", "Ignore", id="Ignore by default with a percentage default size"),
    pytest.param("", "Ignore", "Ignore", id="the value overrides the Fail default"),
    pytest.param("1Gi", "Fail", "Fail", id="the value overrides the Ignore default"),
]


@pytest.mark.parametrize(("default_size", "value", "expected"), FAILURE_POLICY_CASES)
def test_failure_policy_default_and_override(
    chart: Chart, default_size: str, value: str, expected: str
) -> None:
    hook = webhook(chart.render(f"defaultSize={default_size}", f"failurePolicy={value}"))
    assert hook["failurePolicy"] == expected


def test_fixed_call_parameters(chart: Chart) -> None:
    hook = webhook(chart.render())
    assert hook["timeoutSeconds"] == 3
    assert hook["sideEffects"] == "None"
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["admissionReviewVersions"] == ["v1", "v1beta1"]
    assert hook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]


def test_timeout_is_configurable(chart: Chart) -> None:
    assert webhook(chart.render("timeoutSeconds=10"))["timeoutSeconds"] == 10


def test_client_config_calls_the_service_https_port(chart: Chart) -> None:
    objects = chart.render()
    service_ref = webhook(objects)["clientConfig"]["service"]
    service = one(objects, "Service")
    assert service_ref == {"name": FULLNAME, "namespace": NAMESPACE, "path": "/mutate", "port": 443}
    assert service["metadata"]["name"] == service_ref["name"]
    (https,) = [p for p in service["spec"]["ports"] if p["port"] == 443]
    assert https["targetPort"] == "https"


def test_webhook_name_is_fully_qualified_and_unique_per_release(chart: Chart) -> None:
    assert webhook(chart.render())["name"] == f"{FULLNAME}.{NAMESPACE}.svc"
