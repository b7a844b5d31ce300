"""The chart with namespacePolicy: which pods the API server sends to which entry, the
read-only access to namespaces, and the token the webhook then needs (docs/namespaces.md)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.render import (
    FULLNAME,
    NAMESPACE_DEFAULTS_PREFIX,
    Chart,
    allows,
    namespace_labels,
    one,
    rules_for,
    sends,
    webhook,
    webhooks,
)

ON = "namespacePolicy.enabled=true"
DEFAULTS = {"shm-injection/defaults": "true"}
ANNOTATED = {"metadata": {"annotations": {"shm-size": "1Gi"}}}
PLAIN: dict[str, Any] = {"metadata": {}}
OPTED_OUT = {"metadata": {"labels": {"shm-injection": "disabled"}}}

# (scope values, namespace labels, pod, the entries it is sent to: "main", "defaults")
ROUTES = [
    ((), {"shm-injection": "enabled"}, ANNOTATED, ["main"],
     "an annotated pod of an opted-in namespace without defaults goes to the main entry"),
    ((), {"shm-injection": "enabled"}, PLAIN, [],
     "an unannotated pod of a namespace without defaults reaches no entry"),
    ((), {"shm-injection": "enabled", **DEFAULTS}, PLAIN, ["defaults"],
     "an unannotated pod of a namespace with defaults goes to the defaults entry"),
    ((), {"shm-injection": "enabled", **DEFAULTS}, ANNOTATED, ["defaults"],
     "an annotated pod of a namespace with defaults goes there once, not twice"),
    ((), {"shm-injection": "enabled", **DEFAULTS}, OPTED_OUT, [],
     "a pod labelled shm-injection=disabled opts out of the defaults too"),
    ((), DEFAULTS, PLAIN, [],
     "in namespace scope, defaults do not bring a namespace into scope"),
    (("scope=cluster",), DEFAULTS, PLAIN, ["defaults"],
     "in cluster scope, a namespace with defaults needs no opt-in label"),
    (("scope=cluster",), {"shm-injection": "disabled", **DEFAULTS}, PLAIN, [],
     "a namespace opted out stays out, defaults or not"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "labels", "pod", "expected"),
    [pytest.param(*route[:4], id=route[4]) for route in ROUTES],
)
def test_which_entry_a_pod_is_sent_to(
    chart: Chart,
    values: tuple[str, ...],
    labels: dict[str, str],
    pod: dict[str, Any],
    expected: list[str],
) -> None:
    objects = chart.render(ON, *values)
    main = webhook(objects)["name"]
    names = {main: "main", NAMESPACE_DEFAULTS_PREFIX + main: "defaults"}
    namespace = namespace_labels("team-a", **labels)
    sent = [names.get(w["name"], w["name"]) for w in webhooks(objects) if sends(w, namespace, pod)]
    assert sent == expected


def test_the_release_and_system_namespaces_stay_out_of_the_defaults_entry(chart: Chart) -> None:
    objects = chart.render(ON, "scope=cluster")
    (entry,) = [w for w in webhooks(objects) if w["name"].startswith(NAMESPACE_DEFAULTS_PREFIX)]
    for name in ("shm-system", "kube-system", "kube-public", "kube-node-lease"):
        assert not sends(entry, namespace_labels(name, **DEFAULTS), PLAIN), name


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param((), "Fail", id="the defaults entry fails closed by default"),
        pytest.param(("defaultSize=1Gi",), "Fail", id="even when the cluster has a default"),
        pytest.param(("failurePolicy=Ignore",), "Ignore", id="failurePolicy overrides it"),
    ],
)
def test_the_defaults_entry_failure_policy(
    chart: Chart, values: tuple[str, ...], expected: str
) -> None:
    objects = chart.render(ON, *values)
    (entry,) = [w for w in webhooks(objects) if w["name"].startswith(NAMESPACE_DEFAULTS_PREFIX)]
    assert entry["failurePolicy"] == expected
    assert "matchConditions" not in entry


def test_without_namespace_policy_there_is_no_defaults_entry_and_no_token(chart: Chart) -> None:
    objects = chart.render()
    assert not [w for w in webhooks(objects) if w["name"].startswith(NAMESPACE_DEFAULTS_PREFIX)]
    deployment = one(objects, "Deployment", FULLNAME)
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert not allows(rules_for(objects, FULLNAME), verb="list", resource="namespaces", name="")


def test_namespace_policy_reads_namespaces_and_nothing_more(chart: Chart) -> None:
    objects = chart.render(ON)
    deployment = one(objects, "Deployment", FULLNAME)
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    rules = rules_for(objects, FULLNAME)
    for verb in ("get", "list", "watch"):
        assert allows(rules, verb=verb, resource="namespaces", name="team-a")
    for verb in ("create", "update", "patch", "delete"):
        assert not allows(rules, verb=verb, resource="namespaces", name="team-a")
    assert [r["resources"] for r in rules] == [["namespaces"]]
    role = one(objects, "ClusterRole", f"{FULLNAME}-namespaces")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}
    ]
