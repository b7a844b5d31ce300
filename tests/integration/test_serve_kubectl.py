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
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pods import all_containers, apply_patch, assert_valid_pod

pytestmark = pytest.mark.integration

NAMESPACE = "shm-system"
SERVER_NAME = f"shm-webhook.{NAMESPACE}.svc"
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Webhook:
    """A running `shm-webhook serve` and a TLS client that verifies it like the API server."""

    def __init__(self, port: int, ca_file: Path) -> None:
        self.port = port
        self.context = ssl.create_default_context(cafile=str(ca_file))

    def request(
        self, method: str, path: str, body: bytes = b"", *, announce: int | None = None
    ) -> tuple[int, bytes]:
        """Send a request; with `announce`, only headers declaring that Content-Length."""
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        connection.sock = self.context.wrap_socket(raw, server_hostname=SERVER_NAME)
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
    certs = tmp_path_factory.mktemp("certs")
    cli = [sys.executable, "-m", "webhook"]
    subprocess.run(
        [
            *cli,
            "certs",
            "generate",
            "--service",
            "shm-webhook",
            "--namespace",
            NAMESPACE,
            "--out",
            str(certs),
        ],
        check=True,
    )
    port = free_port()
    process = subprocess.Popen(
        [
            *cli,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            "0",
            "--tls-cert-file",
            str(certs / "tls.crt"),
            "--tls-key-file",
            str(certs / "tls.key"),
        ],
        env={**os.environ, "SHM_WEBHOOK_LOG_LEVEL": "warning"},
    )
    server = Webhook(port, certs / "ca.crt")
    deadline = time.monotonic() + 20
    while True:
        try:
            if server.request("GET", "/readyz")[0] == 200:
                break
        except OSError:
            pass
        assert process.poll() is None, "shm-webhook serve exited during start-up"
        assert time.monotonic() < deadline, "shm-webhook serve was not ready within 20 s"
        time.sleep(0.1)
    yield server
    process.terminate()
    process.wait(timeout=30)


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
