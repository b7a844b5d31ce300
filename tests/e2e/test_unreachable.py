"""`failurePolicy: Fail` with the webhook unreachable: the pod is refused, never created
without the /dev/shm it asked for (SPEC §4). The kube-apiserver's doing, with our setting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import Kubectl, pod
from tests.processes import free_port

pytestmark = pytest.mark.e2e

NAMESPACE = "shm-e2e-unreachable"
CONFIG = "shm-webhook-e2e-unreachable"


@pytest.fixture(scope="module")
def unreachable(kube: Kubectl, webhook_certs: Path) -> Iterator[str]:
    """A namespace covered by a configuration whose URL nothing listens on."""
    url = f"https://127.0.0.1:{free_port()}/mutate"
    kube.apply(cluster.namespace(NAMESPACE, {"shm-e2e-webhook": "unreachable"}))
    kube.apply(
        cluster.webhook_configuration(
            CONFIG,
            client_config=cluster.url_client_config(url, webhook_certs / "ca.crt"),
            namespace_selector={"matchLabels": {"shm-e2e-webhook": "unreachable"}},
        )
    )
    yield url
    kube("delete", "mutatingwebhookconfiguration", CONFIG)


def test_a_pod_is_refused_rather_than_created_without_its_shm(
    kube: Kubectl, unreachable: str
) -> None:
    manifest = pod("stranded", namespace=NAMESPACE, annotations={"shm-size": "1Gi"})
    cluster.wait_for(  # dry runs until the apiserver has the configuration
        lambda: kube.create(manifest, "--dry-run=server").code != 0,
        what=f"the apiserver calling {CONFIG}",
    )

    refused = kube.create(manifest)

    assert refused.code == 1
    assert f'failed calling webhook "{CONFIG}.shm-webhook.e2e.test"' in refused.stderr
    assert f'Post "{unreachable}?timeout=3s"' in refused.stderr  # timeoutSeconds: 3
    assert "connection refused" in refused.stderr
    assert "NotFound" in kube.get("pod", "stranded", NAMESPACE).stderr
