"""What the kube-apiserver stores when `shm-webhook serve` mutates pods (SPEC §2, §3).

Each test creates pods through the real API with kubectl (or the Python client where the exact
HTTP status matters) and asserts on the object the apiserver answered and stored, not on the
webhook's patch: defaulting, quantity canonicalisation, RFC 6902 application and validation
all happen in between. Where the stored pod is compared with the unit-level expectation, that
expectation is `webhook.mutation.plan` applied to the pod exactly as the apiserver hands it to
webhooks (a server dry-run in a namespace the webhook does not cover).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import (
    MOUNT,
    Kubectl,
    container,
    create_and_read,
    planned,
    pod,
    status,
)
from tests.e2e.served import ServedWebhook
from tests.pods import all_containers

pytestmark = pytest.mark.e2e


def test_an_annotated_pod_is_stored_with_the_volume_every_mount_the_memory_and_the_status(
    kube: Kubectl, injected_namespace: str, webhook: ServedWebhook
) -> None:
    manifest = pod(
        "annotated",
        namespace=injected_namespace,
        annotations={"shm-size": "8Gi"},
        initContainers=[container("init")],
        containers=[
            container(
                "app", resources={"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi"}}
            ),
            container("sidecar"),
        ],
    )
    stored, warnings = create_and_read(kube, manifest)

    spec = stored["spec"]
    assert spec["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}
    ]
    for each in all_containers(stored):
        assert each["volumeMounts"] == [MOUNT], each["name"]
    assert spec["containers"][0]["resources"] == {
        "requests": {"memory": "9Gi"},
        "limits": {"memory": "10Gi"},
    }
    assert spec["containers"][1]["resources"] == {}
    assert status(stored) == {
        "size": "8Gi",
        "volume": "dshm",
        "mounted": ["init", "app", "sidecar"],
        "charged": ["app"],
    }
    assert warnings == []
    logged = webhook.admission_of(namespace=injected_namespace, name="annotated")
    assert (logged["outcome"], logged["reason"], logged["size"]) == (
        "mutated",
        "injected",
        8 * 2**30,
    )


@pytest.mark.parametrize(
    ("resources", "size", "stored_resources"),
    [
        pytest.param(
            {"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi"}},
            "8Gi",
            {"requests": {"memory": "9Gi"}, "limits": {"memory": "10Gi"}},
            id="adds the size to the memory request and the memory limit",
        ),
        pytest.param(
            {},
            "512Mi",
            {"requests": {"memory": "512Mi"}},
            id="gives a container without resources a request of the size and no limit",
        ),
        pytest.param(
            {"limits": {"memory": "1Gi"}},
            "512Mi",
            {"requests": {"memory": "1536Mi"}, "limits": {"memory": "1536Mi"}},
            id="grows the request the apiserver defaulted from a lone limit along with the limit",
        ),
        pytest.param(
            {"requests": {"memory": "8Gi", "cpu": "250m"}},
            "512Mi",
            {"requests": {"memory": "8704Mi", "cpu": "250m"}},
            id="stores 8Gi + 512Mi as 8704Mi and leaves the cpu alone",
        ),
        pytest.param(
            {"requests": {"memory": "1G"}, "limits": {"memory": "4G"}},
            "2G",
            {"requests": {"memory": "3G"}, "limits": {"memory": "6G"}},
            id="keeps decimal sizes decimal (1G + 2G = 3G)",
        ),
        pytest.param(
            {"requests": {"memory": "1G"}},
            "512Mi",
            {"requests": {"memory": "1536870912"}},
            id="writes a decimal plus binary sum as plain bytes",
        ),
        pytest.param(
            {},
            "1.5Gi",
            {"requests": {"memory": "1536Mi"}},
            id="writes a fractional size in canonical form (1.5Gi is 1536Mi)",
        ),
        pytest.param(
            {},
            "1e9",
            {"requests": {"memory": "1e9"}},
            id="keeps an exponent size in exponent form",
        ),
    ],
)
def test_memory_is_charged_to_the_stored_pod_exactly_as_planned(
    kube: Kubectl,
    injected_namespace: str,
    plain_namespace: str,
    resources: dict[str, Any],
    size: str,
    stored_resources: dict[str, Any],
    request: pytest.FixtureRequest,
) -> None:
    name = "memory-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:10]
    manifest = pod(
        name,
        namespace=injected_namespace,
        annotations={"shm-size": size},
        containers=[container("app", resources=resources)],
    )
    stored, _ = create_and_read(kube, manifest)

    assert stored["spec"]["containers"][0]["resources"] == stored_resources
    expected = planned(kube, manifest, plain_namespace)
    assert stored["spec"] == expected["spec"]
    assert stored["metadata"]["annotations"] == expected["metadata"]["annotations"]
    assert status(stored) == {
        "size": stored["spec"]["volumes"][0]["emptyDir"]["sizeLimit"],
        "volume": "dshm",
        "mounted": ["app"],
        "charged": ["app"],
    }


def test_a_pod_made_from_a_deployment_template_under_a_generate_name_is_mutated(
    kube: Kubectl, injected_namespace: str, webhook: ServedWebhook
) -> None:
    template = {
        "metadata": {"labels": {"app": "trainer"}, "annotations": {"shm-size": "2Gi"}},
        "spec": {"containers": [container("trainer", resources={"limits": {"memory": "4Gi"}})]},
    }
    deployment = kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "trainer", "namespace": injected_namespace},
            "spec": {"selector": {"matchLabels": {"app": "trainer"}}, "template": template},
        }
    )
    stored_template = deployment["spec"]["template"]
    assert "volumes" not in stored_template["spec"]  # the webhook handles pods, not templates

    # No controller-manager runs here, so create the pod as the ReplicaSet controller would:
    # the template's metadata and spec under a generateName.
    prefix = "trainer-7c9d8b-"
    replica = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**stored_template["metadata"], "generateName": prefix},
        "spec": stored_template["spec"],
    }
    replica["metadata"]["namespace"] = injected_namespace
    stored, _ = create_and_read(kube, replica)

    assert stored["metadata"]["name"].startswith(prefix)
    assert stored["metadata"]["name"] != prefix
    assert stored["spec"]["containers"][0]["resources"] == {
        "requests": {"memory": "6Gi"},
        "limits": {"memory": "6Gi"},
    }
    assert stored["spec"]["containers"][0]["volumeMounts"] == [MOUNT]
    assert stored["status"]["qosClass"] == "Burstable"  # no cpu: never Guaranteed
    # The apiserver names the pod after mutating admission: the webhook sees the prefix only.
    logged = webhook.admission_of(namespace=injected_namespace, name=prefix)
    assert logged["outcome"] == "mutated"


def test_a_server_dry_run_answers_the_mutated_pod_and_stores_nothing(
    kube: Kubectl, injected_namespace: str, webhook: ServedWebhook
) -> None:
    manifest = pod("dry-run", namespace=injected_namespace, annotations={"shm-size": "64Mi"})

    answer = kube.create(manifest, "--dry-run=server").json()

    assert answer["spec"]["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}
    ]
    assert answer["spec"]["containers"][0]["volumeMounts"] == [MOUNT]
    assert answer["spec"]["containers"][0]["resources"] == {"requests": {"memory": "64Mi"}}
    assert status(answer) == {
        "size": "64Mi",
        "volume": "dshm",
        "mounted": ["app"],
        "charged": ["app"],
    }
    assert "NotFound" in kube.get("pod", "dry-run", injected_namespace).stderr
    assert (
        webhook.admission_of(namespace=injected_namespace, name="dry-run")["outcome"] == "mutated"
    )


def test_a_guaranteed_pod_stays_guaranteed(kube: Kubectl, injected_namespace: str) -> None:
    """Limits alone make a Guaranteed pod: the apiserver defaults the requests to them before
    any webhook runs, so the request grows with the limit and the QoS class holds."""
    limits = {"cpu": "500m", "memory": "1Gi"}
    manifest = pod(
        "guaranteed",
        namespace=injected_namespace,
        annotations={"shm-size": "1Gi"},
        containers=[container("app", resources={"limits": limits})],
    )

    stored, _ = create_and_read(kube, manifest)

    grown = {"cpu": "500m", "memory": "2Gi"}
    assert stored["spec"]["containers"][0]["resources"] == {"limits": grown, "requests": grown}
    assert stored["status"]["qosClass"] == "Guaranteed"


def test_a_pod_with_a_volume_named_dshm_gets_dshm_1(
    kube: Kubectl, injected_namespace: str, plain_namespace: str
) -> None:
    theirs = {"name": "dshm", "configMap": {"name": "settings"}}
    manifest = pod(
        "dshm-taken",
        namespace=injected_namespace,
        annotations={"shm-size": "1Gi"},
        containers=[container("app", volumeMounts=[{"name": "dshm", "mountPath": "/etc/app"}])],
        volumes=[theirs],
    )

    stored, _ = create_and_read(kube, manifest)

    ours = {"name": "dshm-1", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}
    assert stored["spec"]["volumes"][1] == ours
    assert stored["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "dshm", "mountPath": "/etc/app"},
        {"name": "dshm-1", "mountPath": "/dev/shm"},
    ]
    assert status(stored) == {
        "size": "1Gi",
        "volume": "dshm-1",
        "mounted": ["app"],
        "charged": ["app"],
    }
    assert stored["spec"] == planned(kube, manifest, plain_namespace)["spec"]


@pytest.fixture(scope="module")
def v1beta1_namespace(kube: Kubectl, webhook: ServedWebhook, webhook_certs: Path) -> Iterator[str]:
    """A namespace whose pods go to the webhook through a configuration that offers only
    `admission.k8s.io/v1beta1` reviews (and not through the v1 one of the other tests)."""
    name, config = "shm-e2e-v1beta1", "shm-webhook-e2e-v1beta1"
    kube.apply(cluster.namespace(name, {"shm-e2e-review": "v1beta1"}))
    kube.apply(
        cluster.webhook_configuration(
            config,
            client_config=cluster.url_client_config(webhook.url, webhook_certs / "ca.crt"),
            namespace_selector={"matchLabels": {"shm-e2e-review": "v1beta1"}},
            review_versions=("v1beta1",),
        )
    )
    cluster.wait_until_webhook_serves(
        kube, pod("probe", namespace=name, annotations={"shm-size": "1Mi"})
    )
    yield name
    kube("delete", "mutatingwebhookconfiguration", config)


def test_a_v1beta1_review_mutates_the_stored_pod_the_same_way(
    kube: Kubectl, webhook: ServedWebhook, v1beta1_namespace: str
) -> None:
    """The apiserver refuses an answer whose apiVersion differs from its request's, so a
    stored mutation proves the webhook answered in v1beta1."""
    manifest = pod(
        "reviewed-in-v1beta1",
        namespace=v1beta1_namespace,
        annotations={"shm-size": "8Gi"},
        containers=[container("app", resources={"requests": {"memory": "512Mi"}})],
    )

    stored, _ = create_and_read(kube, manifest)

    assert stored["spec"]["containers"][0]["resources"] == {"requests": {"memory": "8704Mi"}}
    assert stored["spec"]["containers"][0]["volumeMounts"] == [MOUNT]
    assert status(stored) == {
        "size": "8Gi",
        "volume": "dshm",
        "mounted": ["app"],
        "charged": ["app"],
    }
    logged = webhook.admission_of(namespace=v1beta1_namespace, name="reviewed-in-v1beta1")
    assert logged["outcome"] == "mutated"
