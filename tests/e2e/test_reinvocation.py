"""Reinvocation (`reinvocationPolicy: IfNeeded`) with a sidecar injector after us (SPEC §2).

A second mutating webhook, a stand-in for a service-mesh injector, adds a container to pods
labelled `e2e-sidecar: inject`. The kube-apiserver calls webhooks in the order of their
configurations' names: ours (`shm-webhook-e2e`) first, then the injector (`zz-...`); because
the injector changed the pod after us, the apiserver calls us again, and we must mount the
volume in the new container and charge nothing twice.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import ENABLED, Kubectl, container, pod, status
from tests.e2e.served import ServedWebhook

pytestmark = pytest.mark.e2e

INJECTOR_CONFIG = "zz-sidecar-injector-e2e"
SIDECAR = container("injected-sidecar")
LABEL = {"e2e-sidecar": "inject"}


class _Injector(BaseHTTPRequestHandler):
    """Answers every AdmissionReview with a patch appending SIDECAR, once per pod."""

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        names = [each["name"] for each in request["object"]["spec"]["containers"]]
        response = {"uid": request["uid"], "allowed": True}
        if SIDECAR["name"] not in names:
            ops = [{"op": "add", "path": "/spec/containers/-", "value": SIDECAR}]
            response |= {
                "patchType": "JSONPatch",
                "patch": base64.b64encode(json.dumps(ops).encode()).decode(),
            }
        body = json.dumps({**review, "response": response}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output to pytest


@pytest.fixture(scope="module")
def sidecar_injector(kube: Kubectl, webhook_certs: Path) -> Iterator[str]:
    """The injector served over TLS on 127.0.0.1 and registered after our webhook."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(webhook_certs / "tls.crt", webhook_certs / "tls.key")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Injector)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}/inject"
    kube.apply(
        cluster.webhook_configuration(
            INJECTOR_CONFIG,
            client_config=cluster.url_client_config(url, webhook_certs / "ca.crt"),
            namespace_selector=ENABLED,
            object_selector={"matchLabels": LABEL},
        )
    )
    try:
        yield INJECTOR_CONFIG
    finally:
        kube("delete", "mutatingwebhookconfiguration", INJECTOR_CONFIG)
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_container_injected_after_us_gets_the_mount_and_memory_is_charged_once(
    kube: Kubectl, webhook: ServedWebhook, injected_namespace: str, sidecar_injector: str
) -> None:
    manifest = pod(
        "meshed",
        namespace=injected_namespace,
        annotations={"shm-size": "2Gi"},
        labels=LABEL,
        containers=[container("app", resources={"requests": {"memory": "1Gi"}})],
    )
    probe = {**manifest, "metadata": {**manifest["metadata"], "name": "meshed-probe"}}
    cluster.wait_for(
        lambda: len(kube.create(probe, "--dry-run=server").json()["spec"]["containers"]) == 2,
        what=f"the apiserver calling {sidecar_injector}",
    )

    stored = kube.create(manifest).json()

    app, sidecar = stored["spec"]["containers"]
    assert sidecar["name"] == "injected-sidecar"
    assert (
        app["volumeMounts"]
        == sidecar["volumeMounts"]
        == [{"name": "dshm", "mountPath": "/dev/shm"}]
    )
    assert app["resources"] == {"requests": {"memory": "3Gi"}}  # 1Gi + 2Gi, once
    assert sidecar["resources"] == {}
    assert [volume["name"] for volume in stored["spec"]["volumes"]] == ["dshm"]
    assert status(stored) == {
        "size": "2Gi",
        "volume": "dshm",
        "mounted": ["app", "injected-sidecar"],
        "charged": ["app"],
    }
    first, again = webhook.admissions_of(namespace=injected_namespace, name="meshed", count=2)
    assert (first["reason"], again["reason"]) == ("injected", "reinvoked")
