"""Per-namespace policy against the real kube-apiserver: a `serve --namespace-policy true` that
lists and watches namespaces, registered with the chart's two entries (docs/namespaces.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import Kubectl
from tests.e2e.controlplane import ControlPlane
from tests.e2e.served import ServedWebhook

pytestmark = pytest.mark.e2e

CONFIG = "shm-namespace-policy"
SCOPE = {"e2e-namespace-policy": "yes"}  # keeps these entries away from the other tests' pods
DEFAULTS = {"shm-injection/defaults": "true"}
MANY = 5_000
SEEN_WITHIN_S = 2.0


def entries(url: str, ca_file: Path) -> dict[str, Any]:
    """The chart's entries with namespacePolicy: annotated pods of namespaces without defaults,
    every pod of namespaces with defaults (matchConditions as the chart renders them)."""
    client_config = cluster.url_client_config(url, ca_file)
    main = cluster.webhook_configuration(
        CONFIG,
        client_config=client_config,
        namespace_selector={
            "matchLabels": SCOPE,
            "matchExpressions": [
                {"key": "shm-injection/defaults", "operator": "NotIn", "values": ["true"]}
            ],
        },
    )
    defaults = cluster.webhook_configuration(
        CONFIG,
        client_config=client_config,
        namespace_selector={"matchLabels": {**SCOPE, **DEFAULTS}},
    )
    [first], [second] = main["webhooks"], defaults["webhooks"]
    first["matchConditions"] = [
        {
            "name": "asks-for-shm",
            "expression": "has(object.metadata.annotations) && 'shm-size' in"
            " object.metadata.annotations",
        }
    ]
    second["name"] = "namespace-defaults." + first["name"]
    main["webhooks"] = [first, second]
    return main


@pytest.fixture(scope="module")
def served(
    kube: Kubectl,
    control_plane: ControlPlane,
    webhook_certs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServedWebhook]:
    webhook = ServedWebhook(
        certificates=webhook_certs,
        log=tmp_path_factory.mktemp("namespace-policy") / "serve.log",
        server_name="127.0.0.1",
        settings=(
            *("--namespace-policy", "true", "--kubeconfig", str(control_plane.kubeconfig)),
            *("--max-size", "16Gi"),
        ),
    )
    kube.apply(entries(webhook.url, webhook_certs / "ca.crt"))
    yield webhook
    kube("delete", "mutatingwebhookconfiguration", CONFIG)
    webhook.stop()


def team(kube: Kubectl, name: str, annotations: dict[str, str], labels: dict[str, str]) -> str:
    namespace = cluster.namespace(name, {**SCOPE, **labels})
    namespace["metadata"]["annotations"] = annotations
    kube.apply(namespace)
    return name


def dry_run(kube: Kubectl, namespace: str, annotations: dict[str, str] | None = None) -> Any:
    """What the API server would store for a pod created now (or the denial's stderr)."""
    pod = cluster.pod("p", namespace=namespace, annotations=annotations or {})
    answer = kube.create(pod, "--dry-run=server")
    return answer.json() if answer.code == 0 else answer.stderr


def shm(stored: Any) -> str | None:
    if not isinstance(stored, dict):
        return None
    volumes = stored["spec"].get("volumes") or []
    sizes = [v["emptyDir"]["sizeLimit"] for v in volumes if "emptyDir" in v]
    return sizes[0] if sizes else None


def seen(kube: Kubectl, namespace: str, expected: str | None, **pod: Any) -> float:
    """Seconds until a new pod gets `expected` as its /dev/shm size."""
    started = time.monotonic()
    cluster.wait_for(
        lambda: shm(dry_run(kube, namespace, **pod)) == expected,
        what=f"pods of {namespace} getting {expected}",
        timeout=10,
    )
    return time.monotonic() - started


@pytest.mark.usefixtures("served")
def test_a_namespace_default_reaches_new_pods_and_its_removal_restores_the_cluster_policy(
    kube: Kubectl,
) -> None:
    name = team(kube, "team-defaults", {}, DEFAULTS)
    assert shm(dry_run(kube, name)) is None
    team(kube, name, {"shm-injection/default-size": "3Gi"}, DEFAULTS)
    took = seen(kube, name, "3Gi")
    assert took < SEEN_WITHIN_S, f"the default reached new pods after {took:.2f} s"
    assert shm(dry_run(kube, name, {"shm-size": "1Gi"})) == "1Gi"  # the pod's own wins
    team(kube, name, {}, DEFAULTS)
    seen(kube, name, None)
    print(f"namespace default seen by new pods after {took * 1000:.0f} ms")


@pytest.mark.usefixtures("served")
def test_the_namespace_ceiling_is_enforced_and_named_in_the_denial(
    kube: Kubectl,
) -> None:
    name = team(kube, "team-ceiling", {"shm-injection/max-size": "2Gi"}, {})
    cluster.wait_for(
        lambda: isinstance(dry_run(kube, name, {"shm-size": "4Gi"}), str),
        what="the ceiling applying",
        timeout=10,
    )
    denial = dry_run(kube, name, {"shm-size": "4Gi"})
    assert 'shm-size "4Gi" exceeds the maximum of 2Gi set for namespace team-ceiling' in denial
    assert shm(dry_run(kube, name, {"shm-size": "2Gi"})) == "2Gi"
    # A namespace cannot loosen the cluster's 16Gi.
    team(kube, name, {"shm-injection/max-size": "64Gi"}, {})
    cluster.wait_for(
        lambda: "exceeds the maximum of 16Gi;" in str(dry_run(kube, name, {"shm-size": "32Gi"})),
        what="the cluster ceiling applying again",
        timeout=10,
    )


def keeps_match_conditions(kube: Kubectl) -> bool:
    """Whether this kube-apiserver stored the entries' matchConditions: 1.27 has them as an
    alpha field, off by default, and drops them; 1.28 on keep them."""
    stored = kube.get("mutatingwebhookconfiguration", CONFIG).json()
    return "matchConditions" in stored["webhooks"][0]


def test_an_unannotated_pod_of_a_namespace_without_default_never_reaches_the_webhook(
    kube: Kubectl, served: ServedWebhook
) -> None:
    name = team(kube, "team-plain", {"shm-injection/max-size": "8Gi"}, {})
    stored = dry_run(kube, name)
    assert shm(stored) is None
    time.sleep(0.5)
    if keeps_match_conditions(kube):
        assert served.never_saw(namespace=name, name="p")
    else:
        # What the chart README says of 1.27: every pod in scope is sent, and admitted as it is.
        assert not served.never_saw(namespace=name, name="p")


@pytest.mark.usefixtures("served")
def test_the_watch_survives_an_api_server_restart(
    kube: Kubectl, control_plane: ControlPlane
) -> None:
    name = team(kube, "team-restart", {"shm-injection/default-size": "1Gi"}, DEFAULTS)
    seen(kube, name, "1Gi")
    control_plane.restart_apiserver()
    team(kube, name, {"shm-injection/default-size": "5Gi"}, DEFAULTS)
    took = seen(kube, name, "5Gi")
    print(f"after an API server restart, a change reached new pods in {took * 1000:.0f} ms")


def test_a_restart_with_5000_namespaces_is_ready_fast_and_lean(
    control_plane: ControlPlane,
    webhook_certs: Path,
    tmp_path: Path,
) -> None:
    api = cluster.api_client(control_plane.kubeconfig)
    from kubernetes import client

    core = client.CoreV1Api(api)

    def create(index: int) -> None:
        metadata: dict[str, Any] = {"name": f"many-{index:04d}", "labels": {"e2e-many": "yes"}}
        if index % 10 == 0:  # one in ten says something of sizes
            metadata["annotations"] = {"shm-injection/max-size": f"{index % 7 + 1}Gi"}
        try:
            core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
        except client.ApiException as error:
            if error.status != 409:  # already there from an earlier run of the session
                raise

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(MANY)))

    def start(*settings: str) -> ServedWebhook:
        return ServedWebhook(
            certificates=webhook_certs,
            log=tmp_path / f"serve-{len(settings)}.log",
            server_name="127.0.0.1",
            settings=settings,
        )

    plain = start()
    try:
        time.sleep(1)
        plain_rss = plain.rss_bytes()
    finally:
        plain.stop()
    watching = start("--namespace-policy", "true", "--kubeconfig", str(control_plane.kubeconfig))
    try:
        time.sleep(1)
        rss = watching.rss_bytes()
        ready = watching.ready_seconds
        log = watching.log.read_text()
    finally:
        watching.stop()
    grown = (rss - plain_rss) / 2**20
    report = {"namespaces": MANY, "ready_s": round(ready, 2), "rss_mib": round(rss / 2**20, 1),
              "rss_without_namespace_policy_mib": round(plain_rss / 2**20, 1),
              "grown_mib": round(grown, 1)}  # fmt: skip
    print(json.dumps(report))
    assert "namespaces with a policy" in log
    assert ready < 5.0, report
    assert grown <= 10.0, report
