"""`engine: policy`: the chart renders the admission policies and nothing of the webhook, the
same objects `shm-webhook policy` prints for the same settings, only on Kubernetes 1.36 and
later, with the webhook configuration's scope (docs/policy-engine.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.chart.render import (
    EVERYTHING_ON,
    FULLNAME,
    NAMESPACE,
    Chart,
    Obj,
    namespace_labels,
    of_kind,
    one,
    selects,
    sends,
    webhook,
)
from webhook.admission_policy import Engine, policies
from webhook.settings import load_settings

KUBE = "1.36"
POLICY = ("engine=policy",)
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "policy_engine_file.py"
POLICY_KINDS = {
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
HELM_TEST_BINDING = f"{FULLNAME}-helm-test"


def rendered(chart: Chart, *values: str) -> list[Obj]:
    return chart.render(*POLICY, *values, kube=KUBE)


def without_labels(obj: Obj) -> Obj:
    return {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "labels"}}


# (chart values, the same as settings flags and policy engine options)
EQUIVALENTS = [
    pytest.param((), {}, {}, id="the defaults"),
    pytest.param(
        ("scope=cluster", "excludeNamespaces[0]=ci", "excludeNamespaces[1]=kube-system"),
        {},
        {"scope": "cluster", "exclude_namespaces": ("ci", "kube-system")},
        id="cluster scope with excluded namespaces",
    ),
    pytest.param(
        (
            "defaultSize=12.5%",
            "maxSize=64Gi",
            "memoryPolicy=none",
            "onInvalid=warn",
            "annotation=example.com/shm-size",
            "volumeName=shm",
            "mountPath=/run/shm",
            "namespacePolicy.enabled=true",
        ),
        {
            "default_size": "12.5%",
            "max_size": "64Gi",
            "memory_policy": "none",
            "on_invalid": "warn",
            "annotation": "example.com/shm-size",
            "volume_name": "shm",
            "mount_path": "/run/shm",
            "namespace_policy": "true",
        },
        {},
        id="every policy setting changed",
    ),
    pytest.param(
        ("defaultSize=1Gi", "failurePolicy=Fail"),
        {"default_size": "1Gi"},
        {"failure_policy": "Fail"},
        id="a default size with failurePolicy Fail",
    ),
]


@pytest.mark.parametrize(("values", "flags", "engine"), EQUIVALENTS)
def test_the_chart_renders_what_shm_webhook_policy_prints(
    chart: Chart, values: tuple[str, ...], flags: dict[str, str], engine: dict[str, Any]
) -> None:
    objects = [o for o in rendered(chart, *values) if o["kind"] in POLICY_KINDS]
    objects = [o for o in objects if o["metadata"]["name"] != HELM_TEST_BINDING]
    options = Engine(name=FULLNAME, namespace=NAMESPACE, **engine)
    expected = policies(load_settings(flags), options)
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(map(without_labels, objects), key=key) == sorted(
        map(without_labels, expected), key=key
    )


def test_policy_engine_objects_carry_the_chart_labels(chart: Chart) -> None:
    for obj in rendered(chart):
        if obj["kind"] in POLICY_KINDS:
            labels = obj["metadata"]["labels"]
            assert labels["app.kubernetes.io/instance"] == "rel"
            assert labels["app.kubernetes.io/component"] == "policy"


def test_nothing_of_the_webhook_is_rendered_even_with_everything_switched_on(chart: Chart) -> None:
    objects = rendered(
        chart,
        *EVERYTHING_ON,
        "metrics.prometheusRule.enabled=true",
        "metrics.dashboard.enabled=true",
        "namespacePolicy.enabled=true",
    )
    kinds = sorted(obj["kind"] for obj in objects)
    assert set(kinds) == POLICY_KINDS | {"Pod"}
    assert kinds.count("MutatingAdmissionPolicyBinding") == 2  # the scope's and helm test's


@pytest.mark.parametrize("mode", ["tls.mode=certManager", "tls.mode=bootstrap"])
def test_no_tls_object_in_any_tls_mode(chart: Chart, mode: str) -> None:
    kinds = {obj["kind"] for obj in rendered(chart, mode)}
    assert kinds <= POLICY_KINDS | {"Pod"}


@pytest.mark.parametrize("kube", ["1.27", "1.35"])
def test_kubernetes_before_1_36_is_refused_with_its_reason(chart: Chart, kube: str) -> None:
    message = chart.error(*POLICY, kube=kube)
    assert "engine: policy needs Kubernetes 1.36 or later" in message
    assert f"this cluster is v{kube}.0: use engine: webhook" in message


def test_the_webhook_engine_is_the_default_and_still_renders_before_1_36(chart: Chart) -> None:
    objects = chart.render(kube="1.27")
    assert one(objects, "Deployment")
    assert not [o for o in objects if o["kind"] in POLICY_KINDS]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(("mountPath=/dev/it's",), "without quotes, backslashes", id="a quote"),
        pytest.param(("defaultSize=150%",), "0 < N <= 100", id="a percentage above 100"),
        pytest.param(("defaultSize=0%",), "0 < N <= 100", id="a percentage of 0"),
        pytest.param(("defaultSize=1.12345678%",), "at most 7 decimals", id="8 decimals"),
        pytest.param(("engine=wasm",), "/engine", id="an engine that does not exist"),
    ],
)
def test_what_the_policy_engine_cannot_take_is_refused(
    chart: Chart, values: tuple[str, ...], message: str
) -> None:
    assert message in chart.error(*POLICY, *values, kube=KUBE)


@pytest.mark.parametrize("value", ["100%", "0.5%", "99.99%", "1.12345670%", "25%"])
def test_percentages_the_engine_computes_are_taken(chart: Chart, value: str) -> None:
    assert rendered(chart, f"defaultSize={value}")


@pytest.mark.parametrize("values", [(), ("scope=cluster",), ("namespacePolicy.enabled=true",)])
def test_every_object_is_valid_for_kubernetes_1_36(chart: Chart, values: tuple[str, ...]) -> None:
    for obj in rendered(chart, *values):
        kubernetes_validate.validate(obj, KUBE, strict=True)


NAMESPACES = [
    namespace_labels("team", **{"shm-injection": "enabled"}),
    namespace_labels("plain"),
    namespace_labels("off", **{"shm-injection": "disabled"}),
    namespace_labels(NAMESPACE, **{"shm-injection": "enabled"}),
    namespace_labels("kube-system", **{"shm-injection": "enabled"}),
    namespace_labels("ci", **{"shm-injection": "enabled"}),
    namespace_labels("defaults", **{"shm-injection": "enabled", "shm-injection/defaults": "true"}),
]
PODS = [
    {"metadata": {"annotations": {"shm-size": "1Gi"}}},
    {"metadata": {"labels": {"shm-injection": "disabled"}, "annotations": {"shm-size": "1Gi"}}},
]


@pytest.mark.parametrize("scope", ["scope=namespace", "scope=cluster"])
def test_the_bindings_select_what_the_webhook_configuration_sends(chart: Chart, scope: str) -> None:
    values = (scope, "excludeNamespaces[0]=ci")
    entry = webhook(chart.render(*values, kube=KUBE))
    bindings = [
        obj
        for obj in rendered(chart, *values)
        if obj["kind"].endswith("Binding") and obj["metadata"]["name"] != HELM_TEST_BINDING
    ]
    for namespace in NAMESPACES:
        for pod in PODS:
            for binding in bindings:
                match = binding["spec"]["matchResources"]
                selected = selects(match["namespaceSelector"], namespace) and selects(
                    match["objectSelector"], pod["metadata"].get("labels") or {}
                )
                assert selected == sends(entry, namespace, pod), (namespace, pod)


def test_helm_test_s_pod_is_served_by_its_binding_only(chart: Chart) -> None:
    objects = rendered(chart)
    (pod,) = of_kind(objects, "Pod")
    namespace = namespace_labels(NAMESPACE)
    labels = pod["metadata"]["labels"]
    served = []
    for binding in of_kind(objects, "MutatingAdmissionPolicyBinding"):
        match = binding["spec"]["matchResources"]
        if selects(match["namespaceSelector"], namespace) and selects(
            match["objectSelector"], labels
        ):
            served.append(binding["metadata"]["name"])
    assert served == [HELM_TEST_BINDING]
    assert (
        one(objects, "MutatingAdmissionPolicyBinding", HELM_TEST_BINDING)["spec"]["policyName"]
        == FULLNAME
    )


def test_without_helm_test_there_is_no_test_binding(chart: Chart) -> None:
    objects = rendered(chart, "test.enabled=false")
    assert len(of_kind(objects, "MutatingAdmissionPolicyBinding")) == 1
    assert not of_kind(objects, "Pod")


def test_the_chart_s_cel_file_is_the_generator_s() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr


def test_helm_lint_strict_is_clean_with_the_policy_engine(helm: str) -> None:
    from tests.chart.render import CHART_DIR

    done = subprocess.run(
        [
            helm,
            "lint",
            "--strict",
            str(CHART_DIR),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            "1.36.0",
            "--set",
            "engine=policy",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout
