"""Per-namespace policy: the precedence of the pod's annotation, the namespace's default and
the cluster's, the smaller ceiling winning, and what `read_namespace` makes of annotations."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from tests.builders import container, pod
from tests.pods import apply_patch, assert_valid_pod
from webhook.mutation import plan
from webhook.namespaces import read_namespace
from webhook.policy import NamespacePolicy, Percent, Policy
from webhook.quantity import parse

GI = 2**30


def a_pod(size: str | None = None, *, limit: str = "64Gi") -> dict[str, Any]:
    """A pod asking for `size` (None: no annotation), its container limited to `limit`."""
    return pod(
        container(resources={"limits": {"memory": limit}}),
        name="p",
        namespace=None,
        annotations={} if size is None else {"shm-size": size},
    )


def shm_of(pod: dict[str, Any], policy: Policy, namespace: NamespacePolicy | None) -> str | None:
    """The sizeLimit the plan gives the pod, None when it leaves it alone."""
    decision = plan(pod, policy, namespace)
    if decision.outcome != "mutated":
        return None
    patched = apply_patch(pod, decision.ops)
    assert_valid_pod(patched)
    [volume] = patched["spec"]["volumes"]
    return str(volume["emptyDir"]["sizeLimit"])


def ns(default: str | None = None, ceiling: int | None = None) -> NamespacePolicy:
    size = (
        None
        if default is None
        else (Percent(int(default[:-1])) if default.endswith("%") else parse(default))
    )
    return NamespacePolicy("team-a", default_size=size, max_size=ceiling)


PRECEDENCE = [
    pytest.param("2Gi", Policy(default_size=parse("1Gi")), ns("4Gi"), "2Gi",
                 id="the pod's annotation beats the namespace's default"),
    pytest.param(None, Policy(default_size=parse("1Gi")), ns("4Gi"), "4Gi",
                 id="without an annotation the namespace's default beats the cluster's"),
    pytest.param(None, Policy(default_size=parse("1Gi")), ns(ceiling=8 * GI), "1Gi",
                 id="a namespace with only a ceiling keeps the cluster's default"),
    pytest.param(None, Policy(default_size=parse("1Gi")), None, "1Gi",
                 id="a namespace that says nothing keeps the cluster's default"),
    pytest.param(None, Policy(), ns("4Gi"), "4Gi",
                 id="a namespace default applies where the cluster has none"),
    pytest.param(None, Policy(), ns("25%"), "16Gi",
                 id="a namespace default can be a percentage of the memory limit"),
    pytest.param(None, Policy(), ns("32Gi", ceiling=8 * GI), "8Gi",
                 id="a namespace default above its own ceiling is capped at it"),
    pytest.param(None, Policy(max_size=2 * GI), ns("4Gi"), "2Gi",
                 id="a namespace default above the cluster's ceiling is capped at it"),
    pytest.param(None, Policy(max_size=2 * GI), ns("50%"), "2Gi",
                 id="a namespace percentage is capped at the ceiling too"),
    pytest.param("0", Policy(), ns("4Gi"), None,
                 id="a pod's zero still opts out in a namespace with a default"),
    pytest.param("4Gi", Policy(max_size=16 * GI), ns(ceiling=8 * GI), "4Gi",
                 id="a pod below the namespace's ceiling gets its size"),
    pytest.param("12Gi", Policy(max_size=8 * GI), ns(ceiling=16 * GI), None,
                 id="a namespace cannot loosen the cluster's ceiling"),
]  # fmt: skip


@pytest.mark.parametrize(("size", "policy", "namespace", "expected"), PRECEDENCE)
def test_precedence(
    size: str | None, policy: Policy, namespace: NamespacePolicy | None, expected: str | None
) -> None:
    assert shm_of(a_pod(size), policy, namespace) == expected


def test_a_pod_above_the_namespace_ceiling_is_denied_naming_the_namespace() -> None:
    decision = plan(a_pod("12Gi"), Policy(max_size=16 * GI), ns(ceiling=8 * GI))
    assert (decision.outcome, decision.reason) == ("denied", "invalid-size")
    assert decision.message == (
        'shm-size "12Gi" exceeds the maximum of 8Gi set for namespace team-a; write at most 8Gi'
    )


def test_a_pod_above_the_cluster_ceiling_is_denied_without_naming_a_namespace() -> None:
    decision = plan(a_pod("12Gi"), Policy(max_size=8 * GI), ns(ceiling=16 * GI))
    assert decision.message == 'shm-size "12Gi" exceeds the maximum of 8Gi; write at most 8Gi'


def test_with_on_invalid_warn_the_namespace_ceiling_is_a_warning() -> None:
    decision = plan(a_pod("12Gi"), Policy(on_invalid="warn"), ns(ceiling=8 * GI))
    assert (decision.outcome, decision.ops) == ("skipped", [])
    assert decision.warnings == [
        'shm-size "12Gi" exceeds the maximum of 8Gi set for namespace team-a; write at most 8Gi'
    ]


def namespace_object(annotations: dict[str, str], **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": "team-a", "annotations": annotations, "labels": labels}}


LABEL = {"shm-injection/defaults": "true"}
READINGS = [
    pytest.param({}, {}, Policy(), None, [], id="a namespace without annotations says nothing"),
    pytest.param({"shm-injection/default-size": "4Gi"}, LABEL, Policy(),
                 NamespacePolicy("team-a", parse("4Gi"), None), [],
                 id="a labelled default is read"),
    pytest.param({"shm-injection/max-size": "8Gi"}, {}, Policy(),
                 NamespacePolicy("team-a", None, 8 * GI), [],
                 id="a ceiling needs no label"),
    pytest.param({"shm-injection/default-size": "12.5%"}, LABEL, Policy(),
                 NamespacePolicy("team-a", Percent(Fraction(25, 2)), None), [],
                 id="a percentage default is read"),
    pytest.param({"shm-injection/default-size": "lots"}, LABEL, Policy(), None,
                 ['namespace team-a annotation shm-injection/default-size "lots" is not a'
                  " Kubernetes quantity",
                  "labelled shm-injection/defaults=true but has no valid"],
                 id="a default that does not parse is ignored and reported"),
    pytest.param({"shm-injection/max-size": "0"}, {}, Policy(), None,
                 ['namespace team-a annotation shm-injection/max-size "0" is not valid'],
                 id="a zero ceiling is ignored and reported"),
    pytest.param({"shm-injection/default-size": "4Gi"}, {}, Policy(),
                 NamespacePolicy("team-a", parse("4Gi"), None),
                 ["not the label shm-injection/defaults=true: its pods without the annotation"
                  " never reach the webhook"],
                 id="a default without the label is read and reported"),
    pytest.param({"shm-injection/default-size": "32Gi", "shm-injection/max-size": "8Gi"}, LABEL,
                 Policy(), NamespacePolicy("team-a", parse("32Gi"), 8 * GI),
                 ["shm-injection/default-size 32Gi exceeds the ceiling of 8Gi; its pods get 8Gi"],
                 id="a default above its own ceiling is reported"),
    pytest.param({"shm-injection/default-size": "32Gi"}, LABEL, Policy(max_size=16 * GI),
                 NamespacePolicy("team-a", parse("32Gi"), None),
                 ["exceeds the ceiling of 16Gi; its pods get 16Gi"],
                 id="a default above the cluster's ceiling is reported"),
]  # fmt: skip


@pytest.mark.parametrize(("annotations", "labels", "cluster", "policy", "problems"), READINGS)
def test_read_namespace(
    annotations: dict[str, str],
    labels: dict[str, str],
    cluster: Policy,
    policy: NamespacePolicy | None,
    problems: list[str],
) -> None:
    reading = read_namespace(namespace_object(annotations, **labels), cluster)
    assert reading.name == "team-a"
    assert reading.policy == policy
    assert len(reading.problems) == len(problems)
    for text, expected in zip(reading.problems, problems, strict=True):
        assert expected in text
