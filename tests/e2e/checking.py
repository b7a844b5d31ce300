"""Running `shm-webhook check` in the e2e tier as a user runs it, reading its report, and the
objects of a release shaped as the chart makes one.

Owns: `run_check` (the CLI in a subprocess, the cluster found through `KUBECONFIG`, which may
list several files), `Ran` (its exit code and output; the JSON report's checks by name), the
release's manifests (`release_objects`: an ExternalName Service to 127.0.0.1 carrying the
chart's selector, a Deployment mounting the serving Secret as the chart's `tls` volume, a
PodDisruptionBudget; `entry` and `configuration` for its webhooks) and `set_status`, which
writes what a controller would (none runs in this tier).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e import cluster
from tests.e2e.cluster import Kubectl
from tests.e2e.served import cli

CHECK_TIMEOUT_S = 120
AVAILABLE = {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}
HEALTHY_BUDGET = {
    "disruptionsAllowed": 1,
    "currentHealthy": 2,
    "desiredHealthy": 1,
    "expectedPods": 2,
}
# As the chart renders it for Kubernetes 1.28+: only annotated pods reach the main entry.
ASKS_FOR_SHM = {
    "matchConditions": [
        {
            "name": "asks-for-shm",
            "expression": "has(object.metadata.annotations) && 'shm-size' in"
            " object.metadata.annotations",
        }
    ]
}


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.stdout))

    def checks(self) -> dict[str, dict[str, Any]]:
        """The checks by name (the last of a name wins; names are unique where tests look)."""
        return {check["name"]: check for check in self.json()["checks"]}

    def failed(self) -> list[str]:
        return [c["name"] for c in self.json()["checks"] if c["level"] == "fail"]


def run_check(kubeconfigs: Path | Sequence[Path], *args: str) -> Ran:
    """`shm-webhook check ARGS` with KUBECONFIG listing `kubeconfigs`."""
    files = [kubeconfigs] if isinstance(kubeconfigs, Path) else list(kubeconfigs)
    env = {**os.environ, "KUBECONFIG": os.pathsep.join(map(str, files))}
    done = subprocess.run(
        [*cli(), "check", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def release_objects(
    namespace: str, *, name: str, selector: Mapping[str, str], port: int
) -> list[dict[str, Any]]:
    """The Service, Deployment and PodDisruptionBudget of a release, named `name`."""
    meta = {"name": name, "namespace": namespace}
    service_spec = {
        "type": "ExternalName",
        "externalName": "127.0.0.1",
        "selector": dict(selector),
        "ports": [{"name": "https", "port": port}],
    }
    container = {
        "name": "webhook",
        "image": "ghcr.io/shm-webhook/shm-webhook:dev",
        "env": [{"name": "SHM_WEBHOOK_ANNOTATION", "value": "shm-size"}],
    }
    template = {
        "metadata": {"labels": {**selector, "shm-injection": "disabled"}},
        "spec": {
            "containers": [container],
            "volumes": [{"name": "tls", "secret": {"secretName": f"{name}-tls"}}],
        },
    }
    deployment_spec = {
        "replicas": 2,
        "selector": {"matchLabels": dict(selector)},
        "template": template,
    }
    budget_spec = {"minAvailable": 1, "selector": {"matchLabels": dict(selector)}}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": service_spec},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": deployment_spec},
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta,
            "spec": budget_spec,
        },
    ]


def cluster_ip_service(name: str, namespace: str) -> dict[str, Any]:
    ports = [{"name": "https", "port": 443, "targetPort": 8443}]
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"ports": ports}}


def entry(
    name: str, namespace: str, *, selector: dict[str, Any], port: int, service: str = "shm-webhook"
) -> dict[str, Any]:
    """One webhook of the chart's shape, calling `service` in `namespace` at `port`."""
    called = {"name": service, "namespace": namespace, "port": port, "path": "/mutate"}
    (webhook,) = cluster.webhook_configuration(
        name, client_config={"service": called}, namespace_selector=selector
    )["webhooks"]
    webhook["name"] = name
    return webhook


def configuration(name: str, webhooks: list[dict[str, Any]], **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": labels},
        "webhooks": webhooks,
    }


def set_status(
    kube: Kubectl, kind: str, name: str, namespace: str, status: Mapping[str, Any]
) -> None:
    """Write an object's status through its status subresource."""
    patch = json.dumps({"status": status})
    done = kube(
        *("patch", kind, name, "-n", namespace, "--subresource=status", "--type=merge", "-p"),
        patch,
    )
    assert done.code == 0, done.stderr
