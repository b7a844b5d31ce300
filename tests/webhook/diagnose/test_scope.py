"""Which namespaces each of the chart's webhook entries serves (its rendered selectors,
evaluated over a set of namespaces) and what `check` says of the namespaces' own policies."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.render import NAMESPACE, Chart, of_kind
from webhook.diagnose.scope import policy_checks, scope_checks
from webhook.policy import Policy
from webhook.quantity import parse_size, to_bytes

MAIN = f"rel-shm-webhook.{NAMESPACE}.svc"
DEFAULTS = f"namespace-defaults.{MAIN}"
ENABLED = {"shm-injection": "enabled"}
DEFAULTS_LABEL = {"shm-injection/defaults": "true"}


@pytest.fixture(scope="module")
def chart(helm: str) -> Chart:
    return Chart(helm)


def entries(chart: Chart, *values: str) -> list[dict[str, Any]]:
    (configuration,) = of_kind(chart.render(*values), "MutatingWebhookConfiguration")
    return list(configuration["webhooks"])


def namespace(
    name: str, labels: dict[str, str] | None = None, **annotations: str
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {"kubernetes.io/metadata.name": name, **(labels or {})},
    }
    if annotations:
        metadata["annotations"] = {
            f"shm-injection/{k.replace('_', '-')}": v for k, v in annotations.items()
        }
    return {"metadata": metadata}


CLUSTER = [
    namespace("ml", ENABLED),
    namespace(NAMESPACE, ENABLED),  # the release's own: excluded by name whatever its labels
    namespace("kube-system"),
    namespace("default"),
    *(namespace(f"team-{n}") for n in range(7)),
]


def test_the_chart_entry_counts_and_names_its_namespaces_and_why_the_others_are_out(
    chart: Chart,
) -> None:
    check, _ = scope_checks(entries(chart), CLUSTER)  # the main entry, then helm test's

    assert (check.name, check.level) == (f"scope of {MAIN}", "ok")
    assert check.message == "1 namespace in scope: ml"
    assert check.details == (
        "not in scope, lacks the label shm-injection=enabled: default, kube-system, team-0,"
        " team-1, team-2 (+4 more)",
        "not in scope, is excluded by name (kubernetes.io/metadata.name NotIn (shm-system,"
        " kube-system, kube-public, kube-node-lease)): shm-system",
        "pods: only those whose labels match shm-injection NotIn (disabled)",
        "pods: only those for which matchCondition asks-for-shm holds:"
        " has(object.metadata.annotations) && 'shm-size' in object.metadata.annotations",
    )


def test_scope_cluster_serves_every_namespace_but_the_excluded(chart: Chart) -> None:
    opted_out = namespace("batch", {"shm-injection": "disabled"})
    check, _ = scope_checks(entries(chart, "scope=cluster"), [*CLUSTER, opted_out])

    assert check.message.startswith("9 namespaces in scope: default, ml, team-0, team-1, team-2")
    assert check.details[:2] == (
        "not in scope, is excluded by name (kubernetes.io/metadata.name NotIn (shm-system,"
        " kube-system, kube-public, kube-node-lease)): kube-system, shm-system",
        "not in scope, is labelled shm-injection=disabled: batch",
    )


def test_a_main_entry_serving_no_namespace_is_a_warning_saying_how_to_add_one(
    chart: Chart,
) -> None:
    check, _ = scope_checks(entries(chart), CLUSTER[2:])

    assert check.level == "warn"
    assert check.message == "0 namespaces in scope: no pod is sent to the webhook"
    assert (
        check.hint == "put a namespace in scope: kubectl label namespace NAME shm-injection=enabled"
    )


def test_the_helm_test_entry_serves_the_release_namespace_only(chart: Chart) -> None:
    _, helm_test = scope_checks(entries(chart), CLUSTER)

    assert helm_test.message == "1 namespace in scope: shm-system"
    assert helm_test.details == (  # one group, though each namespace has its own name label
        "not in scope, lacks the label kubernetes.io/metadata.name=shm-system: default,"
        " kube-system, ml, team-0, team-1 (+5 more)",
        "pods: only those whose labels match shm-webhook/helm-test In (rel)",
    )


def test_namespace_policy_reports_each_namespace_default_ceiling_and_problem(chart: Chart) -> None:
    namespaces = [
        namespace("team-a", {**ENABLED, **DEFAULTS_LABEL}, default_size="4Gi", max_size="16Gi"),
        namespace("team-b", ENABLED, default_size="2Gi"),
        namespace("team-c", {**ENABLED, **DEFAULTS_LABEL}),
        namespace("team-d", DEFAULTS_LABEL, default_size="1Gi"),
        namespace("plain", ENABLED),
    ]
    cluster = Policy(max_size=to_bytes(parse_size("8Gi", field="maxSize")))

    found = policy_checks(entries(chart, "namespacePolicy.enabled=true"), namespaces, cluster)

    summary, *problems = found
    assert (summary.level, summary.message) == (
        "ok",
        "on; 1 namespace with a valid default size or ceiling of their own",
    )
    assert summary.details == ("team-a: default 4Gi, ceiling 8Gi",)  # the cluster's is lower
    assert [(c.name, c.level, c.hint) for c in problems] == [
        ("namespace team-b", "fail", "kubectl label namespace team-b shm-injection/defaults=true"),
        (
            "namespace team-c",
            "fail",
            "kubectl annotate namespace team-c shm-injection/default-size=1Gi, or remove the"
            " label: kubectl label namespace team-c shm-injection/defaults-",
        ),
        ("namespace team-d", "warn", "kubectl label namespace team-d shm-injection=enabled"),
    ]
    assert problems[0].message == (
        "namespace team-b has shm-injection/default-size but not the label"
        " shm-injection/defaults=true: its pods without the annotation never reach the webhook"
    )
    assert problems[2].message == (
        f"has a size policy, but {DEFAULTS} does not serve it: it lacks the label"
        " shm-injection=enabled"
    )


def test_namespace_annotations_without_namespace_policy_are_a_warning(chart: Chart) -> None:
    (check,) = policy_checks(
        entries(chart), [namespace("team-a", ENABLED, default_size="4Gi")], Policy()
    )

    assert check.level == "warn"
    assert check.message == "off, but 1 namespace carries its annotations or label: team-a"


def test_nothing_is_said_of_namespace_policy_when_it_is_off_and_unused(chart: Chart) -> None:
    assert policy_checks(entries(chart), CLUSTER, Policy()) == []
