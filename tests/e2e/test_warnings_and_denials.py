"""What users see when the webhook keeps, warns or refuses, through the real kube-apiserver.

Warnings travel as `Warning:` headers the apiserver builds from the webhook's response (it
drops any it cannot encode); kubectl prints them on stderr. A denial becomes the apiserver's
own `Status` error, built from the webhook's status, and kubectl's one-line error.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e import cluster
from tests.e2e.cluster import HOOK, MOUNT, Kubectl, container, create_and_read, planned, pod, status
from tests.e2e.controlplane import ControlPlane

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("own", "warning"),
    [
        pytest.param(
            ["own"],
            "container own already mounts /dev/shm; kept as it is",
            id="keeps one container's own /dev/shm, mounts ours in the other and warns",
        ),
        pytest.param(
            ["own", "other"],
            "containers own, other already mount /dev/shm; kept as they are",
            id="changes nothing when every container has its /dev/shm and warns",
        ),
    ],
)
def test_an_existing_dev_shm_mount_is_kept_and_kubectl_prints_the_warning(
    kube: Kubectl, injected_namespace: str, plain_namespace: str, own: list[str], warning: str
) -> None:
    theirs = {"name": "theirs", "mountPath": "/dev/shm"}
    containers = [
        container(name, volumeMounts=[theirs]) if name in own else container(name)
        for name in ("own", "other")
    ]
    manifest = pod(
        f"own-shm-{len(own)}",
        namespace=injected_namespace,
        annotations={"shm-size": "1Gi"},
        containers=containers,
        volumes=[{"name": "theirs", "emptyDir": {"medium": "Memory"}}],
    )
    stored, warnings = create_and_read(kube, manifest)

    assert warnings == [warning]
    mounts = {each["name"]: each.get("volumeMounts") for each in stored["spec"]["containers"]}
    for name in ("own", "other"):
        assert mounts[name] == ([theirs] if name in own else [MOUNT])
    volumes = [volume["name"] for volume in stored["spec"]["volumes"]]
    assert volumes == (["theirs"] if len(own) == 2 else ["theirs", "dshm"])
    expected = planned(kube, manifest, plain_namespace)
    assert stored["spec"] == expected["spec"]
    assert (status(stored) is None) == (len(own) == 2)


def test_a_long_warning_is_cut_at_120_characters_and_reaches_kubectl_intact(
    kube: Kubectl, injected_namespace: str
) -> None:
    names = [f"a-container-with-a-rather-long-and-descriptive-name-number-{n}" for n in (1, 2)]
    theirs = {"name": "theirs", "mountPath": "/dev/shm"}
    manifest = pod(
        "long-warning",
        namespace=injected_namespace,
        annotations={"shm-size": "1Gi"},
        containers=[container(name, volumeMounts=[theirs]) for name in names],
        volumes=[{"name": "theirs", "emptyDir": {"medium": "Memory"}}],
    )
    full = f"containers {', '.join(names)} already mount /dev/shm; kept as they are"

    _, warnings = create_and_read(kube, manifest)

    assert warnings == [full[:119] + "\N{HORIZONTAL ELLIPSIS}"]


INVALID_SIZES = [
    pytest.param(
        "8GB",
        'shm-size "8GB" is not a Kubernetes quantity; write 8Gi or 8G',
        id="denies 8GB and suggests 8Gi or 8G",
    ),
    pytest.param("-1Gi", 'shm-size "-1Gi" is negative; write a size such as 8Gi', id="denies -1Gi"),
    pytest.param(
        "100m",
        'shm-size "100m" is a fraction of a byte (m = 10^-3); did you mean 100Mi?',
        id="denies 100m, a tenth of a byte, and suggests 100Mi",
    ),
]


def refuse(
    control_plane: ControlPlane, kube: Kubectl, manifest: dict[str, Any]
) -> tuple[ApiException, str]:
    """Create `manifest` with the Python client and with kubectl; the client's error (HTTP
    status and Status body) and kubectl's stderr. Neither may have stored the pod."""
    core = client.CoreV1Api(cluster.api_client(control_plane.kubeconfig))
    metadata = manifest["metadata"]
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(metadata["namespace"], body=manifest)  # type: ignore[arg-type]
    by_kubectl = kube.create(manifest)
    assert by_kubectl.code == 1
    assert "NotFound" in kube.get("pod", metadata["name"], metadata["namespace"]).stderr
    return refused.value, by_kubectl.stderr.strip()


@pytest.mark.parametrize(("size", "message"), INVALID_SIZES)
def test_an_invalid_size_is_refused_with_http_400_and_the_webhook_message(
    kube: Kubectl, control_plane: ControlPlane, injected_namespace: str, size: str, message: str
) -> None:
    name = f"invalid-{size.lower().replace('-', 'minus')}"
    manifest = pod(name, namespace=injected_namespace, annotations={"shm-size": size})

    error, kubectl_says = refuse(control_plane, kube, manifest)

    assert error.status == 400
    body = json.loads(error.body or "")
    assert (body["kind"], body["status"], body["code"]) == ("Status", "Failure", 400)
    assert body["message"] == f'admission webhook "{HOOK}" denied the request: {message}'
    assert kubectl_says.startswith("Error from server")
    assert kubectl_says.endswith(
        f'error when creating "STDIN": admission webhook "{HOOK}" denied the request: {message}'
    )


def test_a_denial_is_reported_as_bad_request_by_the_apiserver_and_kubectl(
    kube: Kubectl, control_plane: ControlPlane, injected_namespace: str
) -> None:
    manifest = pod("invalid-reason", namespace=injected_namespace, annotations={"shm-size": "8GB"})

    error, kubectl_says = refuse(control_plane, kube, manifest)

    assert json.loads(error.body or "").get("reason") == "BadRequest"
    assert kubectl_says.startswith("Error from server (BadRequest): ")
