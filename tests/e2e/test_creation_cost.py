"""What the webhook costs pod creation, through the real kube-apiserver: 1,000 server-side
dry-run pod creations from 8 clients with no webhook, with `shm-webhook serve`, and with the
benchmark's Go reference registered instead
(docs/performance.md#pod-creation-through-the-api-server).

Correctness is asserted (every creation succeeds and, through a webhook, comes back with its
/dev/shm); the timings are reported, not asserted (they depend on the machine)."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bench import golang
from tests.e2e import cluster
from tests.e2e.cluster import Kubectl
from tests.e2e.controlplane import ControlPlane
from tests.e2e.served import ServedWebhook
from tests.processes import free_port, stop, wait_until_ready
from tests.serving import readyz

pytestmark = pytest.mark.e2e

PODS = 1_000
CLIENTS = 8
LABEL = "e2e-creation-cost"


@pytest.fixture(scope="module")
def go_reference(webhook_certs: Path) -> Iterator[str]:
    """The Go reference serving on 127.0.0.1, its /mutate URL."""
    try:
        binary = golang.build()
    except golang.GoError as error:
        pytest.skip(str(error))
    port = free_port()
    process = subprocess.Popen(
        [str(binary), "-host", "127.0.0.1", "-port", str(port),
         "-cert", str(webhook_certs / "tls.crt"), "-key", str(webhook_certs / "tls.key")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    context = ssl.create_default_context(cafile=str(webhook_certs / "ca.crt"))
    try:
        wait_until_ready(
            lambda: readyz(port, context=context, server_name="127.0.0.1") == 200,
            process=process,
            output=lambda: "(its output is not kept)",
            what="the Go reference",
        )
        yield f"https://127.0.0.1:{port}/mutate"
    finally:
        stop(process, timeout=10)


def register(kube: Kubectl, name: str, url: str, ca_file: Path) -> str:
    """A namespace whose pods go to the webhook at `url`, and only to it."""
    kube.apply(cluster.namespace(name, {LABEL: name}))
    kube.apply(
        cluster.webhook_configuration(
            name,
            client_config=cluster.url_client_config(url, ca_file),
            namespace_selector={"matchLabels": {LABEL: name}},
        )
    )
    return name


def create_all(control_plane: ControlPlane, namespace: str) -> tuple[float, list[Any]]:
    from kubernetes import client

    api = client.CoreV1Api(cluster.api_client(control_plane.kubeconfig))
    pod = cluster.pod("cost-", namespace=namespace, annotations={"shm-size": "64Mi"})

    def create(_: int) -> Any:
        return api.create_namespaced_pod(namespace, pod, dry_run="All", _preload_content=False)

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(create, range(CLIENTS * 4)))  # warm connections, caches and the webhook
        started = time.monotonic()
        answers = list(pool.map(create, range(PODS)))
        seconds = time.monotonic() - started
    return seconds, [json.loads(answer.data) for answer in answers]


def shm(stored: dict[str, Any]) -> str | None:
    volumes = stored["spec"].get("volumes") or []
    return next((v["emptyDir"]["sizeLimit"] for v in volumes if "emptyDir" in v), None)


def test_what_a_webhook_adds_to_pod_creation(
    kube: Kubectl,
    control_plane: ControlPlane,
    webhook: ServedWebhook,
    webhook_certs: Path,
    go_reference: str,
) -> None:
    ca_file = webhook_certs / "ca.crt"
    none = "cost-none"
    kube.apply(cluster.namespace(none, {}))
    ours = register(kube, "cost-shm-webhook", webhook.url, ca_file)
    go = register(kube, "cost-go-reference", go_reference, ca_file)
    for namespace in (ours, go):
        probe = cluster.pod("probe", namespace=namespace, annotations={"shm-size": "64Mi"})
        cluster.wait_until_webhook_serves(kube, probe)
    results = {}
    for label, namespace in (("none", none), ("shm-webhook", ours), ("go", go)):
        seconds, stored = create_all(control_plane, namespace)
        sizes = {shm(pod) for pod in stored}
        assert sizes == ({None} if label == "none" else {"64Mi"}), (label, sizes)
        results[label] = seconds
    base = results["none"]
    report = {
        label: {
            "seconds": round(seconds, 2),
            "pods_per_s": round(PODS / seconds, 1),
            "added_ms_per_pod": round((seconds - base) / PODS * CLIENTS * 1000, 2),
        }
        for label, seconds in results.items()
    }
    report["throughput_ratio_shm_webhook_to_go"] = round(results["go"] / results["shm-webhook"], 3)
    print(json.dumps(report))
