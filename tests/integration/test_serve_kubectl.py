"""`shm-webhook serve` driven the way the kube-apiserver drives it, checked with real kubectl.

The server runs as a subprocess with certificates from `shm-webhook certs generate`. Each real
AdmissionReview from ../shared/fixtures/real/ (the bare requests wrapped in a review) gets a
`shm-size` annotation and is POSTed to `/mutate?timeout=3s` over TLS verified against the CA
with server name `shm-webhook.<namespace>.svc`. The returned patch is applied with
`kubectl patch --local --type=json` and the result validated against the Kubernetes 1.35
schema plus the cross-field rules (tests/pods.py).
"""

from __future__ import annotations

import base64
import copy
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pods import all_containers, apply_patch, assert_valid_pod
from tests.serving import ServedWebhook, generate_certs

pytestmark = pytest.mark.integration

NAMESPACE = "shm-system"
SERVER_NAME = f"shm-webhook.{NAMESPACE}.svc"
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real"


class Webhook:
    """A running `shm-webhook serve` and a TLS client that verifies it like the API server."""

    def __init__(self, served: ServedWebhook) -> None:
        self.served = served

    def request(
        self, method: str, path: str, body: bytes = b"", *, announce: int | None = None
    ) -> tuple[int, bytes]:
        """Send a request; with `announce`, only headers declaring that Content-Length."""
        connection = self.served.connection()
        if announce is None:
            headers = {"Content-Type": "application/json"} if body else {}
            connection.request(method, path, body=body, headers=headers)
        else:
            connection.putrequest(method, path)
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Content-Length", str(announce))
            connection.endheaders()
        response = connection.getresponse()
        result = response.status, response.read()
        connection.close()
        return result

    def review(self, review: dict[str, Any]) -> dict[str, Any]:
        status, body = self.request("POST", "/mutate?timeout=3s", json.dumps(review).encode())
        assert status == 200, body
        answer: dict[str, Any] = json.loads(body)
        return answer


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    certs = generate_certs(
        tmp_path_factory.mktemp("certs"), service="shm-webhook", namespace=NAMESPACE
    )
    with ServedWebhook(
        certificates=certs,
        log=certs / "serve.log",
        server_name=SERVER_NAME,
        env={"SHM_WEBHOOK_LOG_LEVEL": "warning"},
    ) as served:
        yield Webhook(served)


def real_reviews() -> list[Any]:
    params = []
    for path in sorted(FIXTURES.glob("*.json")) + sorted(FIXTURES.glob("requests/*.json")):
        document = json.loads(path.read_text())
        if "request" not in document:  # a bare AdmissionRequest capture
            document = {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": document,
            }
        params.append(pytest.param(document, id=path.stem))
    return params


def with_annotation(review: dict[str, Any], value: str) -> dict[str, Any]:
    """The review with a `shm-size` annotation, repaired into what the API server can send."""
    review = copy.deepcopy(review)
    pod = review["request"]["object"]
    metadata = pod["metadata"]
    # policy-server-pod-sleep-100ms.json was hand-trimmed upstream: it has a numeric annotation
    # and mounts a volume it no longer declares. The API server would reject both before any
    # webhook saw the pod, so the test sends what a real request would carry.
    annotations = {k: str(v) for k, v in (metadata.get("annotations") or {}).items()}
    metadata["annotations"] = {**annotations, "shm-size": value}
    volumes = {volume["name"] for volume in pod["spec"].get("volumes") or []}
    for container in all_containers(pod):
        if "volumeMounts" in container:
            container["volumeMounts"] = [
                m for m in container["volumeMounts"] if m["name"] in volumes
            ]
    return review


def kubectl_patch(kubectl: str, tmp_path: Path, obj: dict[str, Any], ops: list[Any]) -> Any:
    source = tmp_path / "pod.json"
    source.write_text(json.dumps(obj))
    done = subprocess.run(
        [
            kubectl,
            "patch",
            "--local",
            "--type=json",
            "-f",
            str(source),
            "-p",
            json.dumps(ops),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures/real is not checked out")
@pytest.mark.parametrize("review", real_reviews())
@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
def test_real_review_is_patched_into_a_valid_pod(
    webhook: Webhook, kubectl: str, tmp_path: Path, review: dict[str, Any], api_version: str
) -> None:
    review = with_annotation(review, "8Gi")
    review["apiVersion"] = api_version
    answer = webhook.review(review)

    assert answer["apiVersion"] == api_version
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == review["request"]["uid"]
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))

    pod = review["request"]["object"]
    patched = kubectl_patch(kubectl, tmp_path, pod, ops)
    expected = apply_patch(pod, ops)
    expected["metadata"].pop("managedFields", None)  # kubectl's printer leaves them out
    assert patched == expected  # kubectl and RFC 6902 agree
    assert_valid_pod(patched)
    for container in all_containers(patched):
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}} in patched[
        "spec"
    ]["volumes"]


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures/real is not checked out")
def test_invalid_annotation_is_denied_over_the_wire(webhook: Webhook) -> None:
    review = with_annotation(real_reviews()[0].values[0], "8GB")
    response = webhook.review(review)["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert "8GB" in response["status"]["message"]
    assert "8Gi" in response["status"]["message"]
    assert "patch" not in response


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"{not json", 400, id="a body that is not JSON"),
        pytest.param(b"[]", 400, id="a JSON array"),
        pytest.param(
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
            400,
            id="a review without a request",
        ),
    ],
)
def test_malformed_bodies_get_4xx_and_the_server_stays_healthy(
    webhook: Webhook, body: bytes, status: int
) -> None:
    code, message = webhook.request("POST", "/mutate?timeout=3s", body)
    assert code == status
    assert message
    assert webhook.request("GET", "/healthz")[0] == 200


def test_a_9_mib_body_is_refused_from_its_content_length(webhook: Webhook) -> None:
    code, _ = webhook.request("POST", "/mutate?timeout=3s", announce=9 * 2**20)
    assert code == 413
    assert webhook.request("GET", "/healthz")[0] == 200
