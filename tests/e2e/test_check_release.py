"""`shm-webhook check` of a release shaped as the chart makes one, against the real
kube-apiserver: every check passes when it is healthy, and names what is broken otherwise.

The release lives in its own namespace: an ExternalName Service resolving to 127.0.0.1 (the
kube-apiserver dials a webhook Service's externalName, and there is no pod network here) that
also carries the chart's selector, so the Deployment and PodDisruptionBudget checks find their
objects, whose status is written through the status subresource (no controller runs here).
Its Secret and caBundle are made by the real `certs bootstrap`, and `serve` serves that
Secret's certificate with namespace policy on. The webhook configuration selects namespaces
labelled for this module only, so other modules' pods never meet it; it is deleted at the end.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import cluster
from tests.e2e.checking import (
    ASKS_FOR_SHM,
    AVAILABLE,
    CHECK_TIMEOUT_S,
    HEALTHY_BUDGET,
    Ran,
    cluster_ip_service,
    configuration,
    entry,
    release_objects,
    run_check,
    set_status,
)
from tests.e2e.cluster import Kubectl, pod
from tests.e2e.controlplane import ControlPlane, free_port
from tests.e2e.served import ServedWebhook, cli

pytestmark = pytest.mark.e2e

RELEASE_NS = "shm-check-system"
PODS_NS = "shm-check-pods"
SCOPE = {"shm-e2e-check": "enabled"}
CONFIG = "shm-check"
SERVICE = "shm-webhook"
SECRET = "shm-webhook-tls"
HOST = f"{SERVICE}.{RELEASE_NS}.svc"
MAIN = HOST
SELECTOR = {
    "app.kubernetes.io/name": "shm-webhook",
    "app.kubernetes.io/instance": "check",
    "app.kubernetes.io/component": "webhook",
}


@dataclass(frozen=True)
class Release:
    served: ServedWebhook
    port: int


@pytest.fixture(scope="module")
def release(
    kube: Kubectl, control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    port = free_port()
    kube.apply(cluster.namespace(RELEASE_NS, {}))
    kube.apply(cluster.namespace(PODS_NS, SCOPE))
    for manifest in release_objects(RELEASE_NS, name=SERVICE, selector=SELECTOR, port=port):
        kube.apply(manifest)
    set_status(kube, "deployment", SERVICE, RELEASE_NS, AVAILABLE)
    set_status(kube, "poddisruptionbudget", SERVICE, RELEASE_NS, HEALTHY_BUDGET)
    main_selector = {
        "matchLabels": SCOPE,
        "matchExpressions": [
            {"key": "shm-injection/defaults", "operator": "NotIn", "values": ["true"]}
        ],
    }
    defaults_selector = {"matchLabels": {**SCOPE, "shm-injection/defaults": "true"}}
    webhooks = [
        {**entry(MAIN, RELEASE_NS, selector=main_selector, port=port), **ASKS_FOR_SHM},
        entry(f"namespace-defaults.{MAIN}", RELEASE_NS, selector=defaults_selector, port=port),
    ]
    kube.apply(configuration(CONFIG, webhooks, **{"app.kubernetes.io/part-of": "shm-webhook"}))
    bootstrap = subprocess.run(
        [
            *cli(),
            *("certs", "bootstrap", "--secret", SECRET, "--namespace", RELEASE_NS),
            *("--service", SERVICE, "--webhook-config", CONFIG),
            *("--kubeconfig", str(control_plane.kubeconfig)),
        ],
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
        check=False,
    )
    assert bootstrap.returncode == 0, bootstrap.stderr
    files = tmp_path_factory.mktemp("check-release")
    data = kube.get("secret", SECRET, RELEASE_NS).json()["data"]
    for key in ("tls.crt", "tls.key", "ca.crt"):
        (files / key).write_bytes(base64.b64decode(data[key]))
    served = ServedWebhook(
        cert_file=files / "tls.crt",
        key_file=files / "tls.key",
        ca_file=files / "ca.crt",
        log=files / "serve.log",
        server_name=HOST,
        port=port,
        settings=("--namespace-policy", "true", "--kubeconfig", str(control_plane.kubeconfig)),
    )
    try:
        cluster.wait_until_webhook_serves(
            kube, pod("probe", namespace=PODS_NS, annotations={"shm-size": "1Mi"})
        )
        yield Release(served, port)
    finally:
        served.stop()
        kube("delete", "mutatingwebhookconfiguration", CONFIG)


def test_a_healthy_install_found_by_its_label_passes_every_check(
    control_plane: ControlPlane, release: Release
) -> None:
    ran = run_check(
        control_plane.kubeconfig,
        *("--release-namespace", RELEASE_NS, "--namespace", PODS_NS, "--handshake", "-o", "json"),
    )

    assert ran.code == 0, ran.stdout
    checks = ran.checks()
    assert {name: c["level"] for name, c in checks.items() if c["level"] != "ok"} == {}
    assert checks[f"Service {RELEASE_NS}/{SERVICE}"]["message"] == (
        f"ExternalName: the kube-apiserver dials 127.0.0.1:{release.port}"
    )
    assert checks[f"Deployment {RELEASE_NS}/{SERVICE}"]["message"] == "2/2 replicas available"
    assert checks[f"PodDisruptionBudget of Deployment {RELEASE_NS}/{SERVICE}"]["message"] == (
        f"{SERVICE} selects its pods (minAvailable 1; 1 disruption allowed now)"
    )
    bundle = checks[f"caBundle of {MAIN}, namespace-defaults.{MAIN}"]["message"]
    assert bundle.startswith(f"verifies the certificate of Secret {RELEASE_NS}/{SECRET} (signed by")
    assert checks[f"certificate of Secret {RELEASE_NS}/{SECRET}"]["message"].startswith(
        f"for {HOST}, 364 days left"
    )
    assert checks[f"endpoint 127.0.0.1:{release.port}"]["message"] == (
        "serves the Secret's certificate, which every caBundle verifies"
    )
    assert checks[f"scope of {MAIN}"]["message"] == f"1 namespace in scope: {PODS_NS}"
    probe = ran.json()["probe"]
    assert (probe["mutated"], probe["sizeLimit"], probe["namespace"]) == (True, "64Mi", PODS_NS)
    assert probe["memory"] == [
        {"container": "probe", "request": ["16Mi", "80Mi"], "limit": ["16Mi", "80Mi"]}
    ]


@pytest.mark.usefixtures("release")
def test_the_text_report_is_a_marked_line_per_check_and_a_summary(
    control_plane: ControlPlane,
) -> None:
    ran = run_check(
        control_plane.kubeconfig, "--release-namespace", RELEASE_NS, "--namespace", PODS_NS
    )

    lines = ran.stdout.splitlines()
    assert ran.code == 0
    assert (
        lines[0]
        == f"✔ MutatingWebhookConfiguration {CONFIG}: 2 webhooks: {MAIN}, namespace-defaults.{MAIN}"
    )
    assert lines[-2].startswith(f"    {cluster.STATUS_ANNOTATION}: ")
    assert lines[-3].startswith(
        f"✔ probe pod in namespace {PODS_NS}: /dev/shm 64Mi (emptyDir dshm, medium Memory)"
    )
    assert lines[-1].endswith(" passed, 0 failed")


@pytest.mark.usefixtures("release")
def test_a_namespace_default_reaches_your_own_pod(
    kube: Kubectl, control_plane: ControlPlane, tmp_path: Path
) -> None:
    team = "shm-check-team"
    kube.apply(cluster.namespace(team, {**SCOPE, "shm-injection/defaults": "true"}))
    assert kube("annotate", "namespace", team, "shm-injection/default-size=128Mi").code == 0
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(
        json.dumps(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "trainer", "namespace": team},
                "spec": {
                    "selector": {"matchLabels": {"app": "t"}},
                    "template": {
                        "metadata": {"labels": {"app": "t"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "busybox",
                                    "resources": {"limits": {"memory": "1Gi"}},
                                }
                            ]
                        },
                    },
                },
            }
        )
    )
    ran = Ran(1, "", "")
    deadline = time.monotonic() + 30  # until the webhook's namespace watch has the annotation
    while time.monotonic() < deadline:
        ran = run_check(
            control_plane.kubeconfig, "--webhook-config", CONFIG, "-f", str(manifest), "-o", "json"
        )
        if ran.code == 0:
            break
    assert ran.code == 0, ran.stdout
    probe = ran.json()["probe"]
    assert (probe["namespace"], probe["sizeLimit"]) == (team, "128Mi")
    assert probe["memory"] == [
        {"container": "main", "request": ["1Gi", "1152Mi"], "limit": ["1Gi", "1152Mi"]}
    ]
    assert f"{team}: default 128Mi, ceiling none" in ran.checks()["namespace policy"]["details"]


@pytest.mark.usefixtures("release")
def test_a_namespace_default_without_its_label_is_named_with_the_fix(
    kube: Kubectl, control_plane: ControlPlane, tmp_path: Path
) -> None:
    namespace = "shm-check-unlabelled-default"
    kube.apply(cluster.namespace(namespace, SCOPE))
    assert kube("annotate", "namespace", namespace, "shm-injection/default-size=1Gi").code == 0
    unannotated = tmp_path / "pod.yaml"
    unannotated.write_text(json.dumps(pod("mine", namespace=namespace)))
    try:
        ran = run_check(
            control_plane.kubeconfig,
            "--webhook-config",
            CONFIG,
            "-f",
            str(unannotated),
            "-o",
            "json",
        )
    finally:
        kube("annotate", "namespace", namespace, "shm-injection/default-size-")

    assert ran.code == 1
    problem = ran.checks()[f"namespace {namespace}"]
    assert (problem["level"], problem["hint"]) == (
        "fail",
        f"kubectl label namespace {namespace} shm-injection/defaults=true",
    )
    assert "its pods without the annotation never reach the webhook" in problem["message"]
    probe = ran.checks()[f"pod of {unannotated} in namespace {namespace}"]
    assert (
        probe["message"]
        == "not changed: the pod has no shm-size annotation and no default size applies"
    )


@pytest.mark.usefixtures("release")
def test_unavailable_replicas_fail_with_where_to_look(
    kube: Kubectl, control_plane: ControlPlane
) -> None:
    set_status(kube, "deployment", SERVICE, RELEASE_NS, {**AVAILABLE, "availableReplicas": 1})
    try:
        ran = run_check(
            control_plane.kubeconfig,
            "--webhook-config",
            CONFIG,
            "--namespace",
            PODS_NS,
            "-o",
            "json",
        )
    finally:
        set_status(kube, "deployment", SERVICE, RELEASE_NS, AVAILABLE)

    assert ran.code == 1
    deployment = ran.checks()[f"Deployment {RELEASE_NS}/{SERVICE}"]
    assert (deployment["level"], deployment["message"]) == ("fail", "1/2 replicas available")
    assert deployment["hint"].startswith(
        f"kubectl -n {RELEASE_NS} rollout status deployment/{SERVICE}"
    )


@pytest.mark.usefixtures("release")
def test_endpoints_are_read_from_endpoint_slices_and_none_ready_fails(
    kube: Kubectl, control_plane: ControlPlane
) -> None:
    for name in ("shm-check-slices", "shm-check-empty"):
        kube.apply(cluster_ip_service(name, RELEASE_NS))
    kube.apply(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "shm-check-slices-1",
                "namespace": RELEASE_NS,
                "labels": {"kubernetes.io/service-name": "shm-check-slices"},
            },
            "addressType": "IPv4",
            "ports": [{"name": "https", "port": 8443, "protocol": "TCP"}],
            "endpoints": [
                {
                    "addresses": ["10.0.0.77"],
                    "conditions": {"ready": True},
                    "targetRef": {"kind": "Pod", "name": "webhook-a", "namespace": RELEASE_NS},
                },
                {"addresses": ["10.0.0.78"], "conditions": {"ready": False}},
            ],
        }
    )
    nowhere = {"matchLabels": {"shm-e2e-check": "nowhere"}}  # the probe never calls these
    name = "shm-check-endpoints"
    webhooks = [
        entry(f"{service}.shm-check.e2e.test", RELEASE_NS, selector=nowhere, port=443,
              service=f"shm-check-{service}")
        for service in ("slices", "empty")
    ]  # fmt: skip
    kube.apply(configuration(name, webhooks))
    try:
        ran = run_check(
            control_plane.kubeconfig, "--webhook-config", name, "--namespace", PODS_NS, "-o", "json"
        )
    finally:
        kube("delete", "mutatingwebhookconfiguration", name)

    assert ran.code == 1
    checks = ran.checks()
    assert checks[f"endpoints of Service {RELEASE_NS}/shm-check-slices"]["message"] == (
        "1 ready, 1 not ready: 10.0.0.77:8443 (pod webhook-a)"
    )
    empty = checks[f"endpoints of Service {RELEASE_NS}/shm-check-empty"]
    assert (empty["level"], empty["message"]) == (
        "fail",
        "no ready endpoint (0 not ready): nothing answers the webhook's calls",
    )
