"""A second `shm-webhook serve` with `--default-size 50% --on-invalid warn` (SPEC §2).

Pods without the annotation get half their charged container's memory limit as /dev/shm,
carved out of that budget (no memory added); the apiserver's defaulting matters here, since a
lone request is what the percentage falls back to. The status annotation must be created on a
pod that has no annotations at all (`add /metadata/annotations`). An invalid size is admitted
unchanged with the denial's text as a warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import MOUNT, Kubectl, container, create_and_read, pod, status
from tests.e2e.served import ServedWebhook

pytestmark = pytest.mark.e2e

NAMESPACE = "shm-e2e-default-size"
CONFIG = "shm-webhook-e2e-default-size"


@pytest.fixture(scope="module")
def default_sized(
    kube: Kubectl, webhook_certs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedWebhook]:
    """The second server, and a namespace only its configuration covers."""
    served = ServedWebhook(
        certificates=webhook_certs,
        log=tmp_path_factory.mktemp("default-size") / "serve.log",
        server_name="127.0.0.1",
        settings=("--default-size", "50%", "--on-invalid", "warn"),
    )
    selector = {"matchLabels": {"shm-e2e-default-size": "enabled"}}
    kube.apply(cluster.namespace(NAMESPACE, selector["matchLabels"]))
    kube.apply(
        cluster.webhook_configuration(
            CONFIG,
            client_config=cluster.url_client_config(served.url, webhook_certs / "ca.crt"),
            namespace_selector=selector,
        )
    )
    cluster.wait_until_webhook_serves(
        kube, pod("probe", namespace=NAMESPACE, annotations={"shm-size": "1Mi"})
    )
    yield served
    kube("delete", "mutatingwebhookconfiguration", CONFIG)
    served.stop()


@pytest.mark.parametrize(
    ("resources", "size"),
    [
        pytest.param(
            {"limits": {"memory": "2Gi"}}, "1Gi", id="half of the memory limit, request unchanged"
        ),
        pytest.param(
            {"requests": {"memory": "3Gi"}}, "1536Mi", id="half of the request when no limit"
        ),
    ],
)
def test_a_pod_without_the_annotation_gets_half_its_memory_and_no_more_memory(
    kube: Kubectl, default_sized: ServedWebhook, resources: dict[str, dict[str, str]], size: str
) -> None:
    name = f"carved-{size.lower()}"
    manifest = pod(name, namespace=NAMESPACE, containers=[container("app", resources=resources)])
    assert "annotations" not in manifest["metadata"]

    stored, warnings = create_and_read(kube, manifest)

    (app,) = stored["spec"]["containers"]
    defaulted = {**resources, "requests": (resources.get("requests") or resources["limits"])}
    assert app["resources"] == defaulted  # carved out of the budget: nothing added
    assert app["volumeMounts"] == [MOUNT]
    assert stored["spec"]["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": size}}
    ]
    assert stored["metadata"]["annotations"].keys() == {"shm-injection-status"}
    assert status(stored) == {"size": size, "volume": "dshm", "mounted": ["app"], "charged": []}
    assert warnings == []
    assert default_sized.admission_of(namespace=NAMESPACE, name=name)["outcome"] == "mutated"


def test_a_pod_without_memory_gets_no_default_size(
    kube: Kubectl, default_sized: ServedWebhook
) -> None:
    stored, _ = create_and_read(kube, pod("no-memory", namespace=NAMESPACE))

    assert "volumes" not in stored["spec"]
    assert "annotations" not in stored["metadata"]
    logged = default_sized.admission_of(namespace=NAMESPACE, name="no-memory")
    assert (logged["outcome"], logged["reason"]) == ("skipped", "no-memory-basis")


def test_an_invalid_size_is_admitted_unchanged_with_a_warning_under_on_invalid_warn(
    kube: Kubectl, default_sized: ServedWebhook
) -> None:
    manifest = pod(
        "invalid-warned",
        namespace=NAMESPACE,
        annotations={"shm-size": "8GB"},
        containers=[container("app", resources={"limits": {"memory": "2Gi"}})],
    )

    stored, warnings = create_and_read(kube, manifest)

    assert warnings == ['shm-size "8GB" is not a Kubernetes quantity; write 8Gi or 8G']
    assert "volumes" not in stored["spec"]
    assert stored["metadata"]["annotations"] == {"shm-size": "8GB"}
    logged = default_sized.admission_of(namespace=NAMESPACE, name="invalid-warned")
    assert (logged["outcome"], logged["reason"]) == ("skipped", "invalid-size")
