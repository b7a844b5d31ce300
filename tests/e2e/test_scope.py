"""Which pods the kube-apiserver sends to the webhook, and which it leaves alone (SPEC §2, §4).

The selectors are the apiserver's to apply: a pod outside them must be stored untouched and
must never reach the webhook (its admission log has no line for it). "Never" is checked after
a barrier: a later pod that does reach the webhook, whose log line shows the earlier request
would have been logged by then.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import Kubectl, create_and_read, pod
from tests.e2e.served import ServedWebhook

pytestmark = pytest.mark.e2e

ANNOTATIONS = {"shm-size": "8Gi"}


def assert_untouched(stored: dict[str, Any], annotations: dict[str, str]) -> None:
    assert stored["metadata"].get("annotations", {}) == annotations
    assert "volumes" not in stored["spec"]
    (only,) = stored["spec"]["containers"]
    assert "volumeMounts" not in only
    assert only["resources"] == {}


def barrier(kube: Kubectl, webhook: ServedWebhook, namespace: str, name: str) -> None:
    """Create a pod the webhook does see, and wait for its admission line."""
    kube.create(pod(name, namespace=namespace, annotations={"shm-size": "1Mi"})).json()
    webhook.admission_of(namespace=namespace, name=name)


@pytest.mark.parametrize(
    ("namespace_labels", "pod_labels"),
    [
        pytest.param({}, {}, id="a pod in a namespace without the shm-injection label"),
        pytest.param(
            {"shm-injection": "disabled"},
            {},
            id="a pod in a namespace labelled shm-injection=disabled",
        ),
        pytest.param(
            {"shm-injection": "enabled"},
            {"shm-injection": "disabled"},
            id="a pod labelled shm-injection=disabled in an enabled namespace",
        ),
    ],
)
def test_a_pod_outside_the_selectors_is_stored_untouched_and_never_sent(
    kube: Kubectl,
    webhook: ServedWebhook,
    injected_namespace: str,
    namespace_labels: dict[str, str],
    pod_labels: dict[str, str],
) -> None:
    namespace = "shm-e2e-scope-" + "-".join(
        [*namespace_labels.values(), *pod_labels.values()] or ["unlabelled"]
    )
    kube.apply(cluster.namespace(namespace, namespace_labels))
    manifest = pod("outside", namespace=namespace, annotations=ANNOTATIONS, labels=pod_labels)

    stored, _ = create_and_read(kube, manifest)

    assert_untouched(stored, ANNOTATIONS)
    barrier(kube, webhook, injected_namespace, f"barrier-{namespace}")
    assert webhook.never_saw(namespace=namespace, name="outside")


@pytest.mark.parametrize(
    ("annotations", "reason"),
    [
        pytest.param({"shm-size": "0"}, "opted-out", id="shm-size 0 is an explicit opt-out"),
        pytest.param({"shm-size": "0Gi"}, "opted-out", id="shm-size 0Gi is an explicit opt-out"),
        pytest.param(
            {}, "not-requested", id="a pod without the annotation (1.24: no matchConditions)"
        ),
    ],
)
def test_a_pod_that_asks_for_no_shm_is_sent_skipped_and_stored_untouched(
    kube: Kubectl,
    webhook: ServedWebhook,
    injected_namespace: str,
    annotations: dict[str, str],
    reason: str,
) -> None:
    name = "no-shm-" + (annotations.get("shm-size", "none").lower())
    manifest = pod(name, namespace=injected_namespace, annotations=annotations)
    stored, warnings = create_and_read(kube, manifest)

    assert_untouched(stored, annotations)
    assert warnings == []
    logged = webhook.admission_of(namespace=injected_namespace, name=name)
    assert (logged["outcome"], logged["reason"]) == ("skipped", reason)


@pytest.mark.parametrize(
    ("name", "spec", "warning"),
    [
        pytest.param(
            "host-ipc",
            {"hostIPC": True},
            "shm-size ignored: hostIPC pods share the host's /dev/shm",
            id="a hostIPC pod keeps the host's /dev/shm",
        ),
        pytest.param(
            "windows",
            {"os": {"name": "windows"}},
            "shm-size ignored: Windows pods have no memory-backed emptyDir",
            id="a Windows pod has no memory-backed emptyDir",
        ),
    ],
)
def test_a_pod_the_webhook_must_leave_alone_is_stored_untouched_with_a_warning(
    kube: Kubectl,
    webhook: ServedWebhook,
    injected_namespace: str,
    name: str,
    spec: dict[str, Any],
    warning: str,
) -> None:
    manifest = pod(name, namespace=injected_namespace, annotations=ANNOTATIONS, **spec)
    stored, warnings = create_and_read(kube, manifest)

    assert_untouched(stored, ANNOTATIONS)
    assert warnings == [warning]
    assert webhook.admission_of(namespace=injected_namespace, name=name)["outcome"] == "skipped"
