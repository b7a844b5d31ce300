"""Talking to the e2e kube-apiserver the way users and the chart do: kubectl and the client.

Owns: the tier's names (namespaces, webhook configuration), `Kubectl` (the real kubectl with
the tier's kubeconfig; warnings read from its stderr), the Python `kubernetes` client for exact
HTTP statuses and bodies, the manifests the tests register (namespaces, pods, the
MutatingWebhookConfiguration of SPEC §4 by URL), `planned` (the unit-level expectation for a
pod: `webhook.mutation.plan` applied to the pod as the apiserver hands it to webhooks), and the
bounded waits for the apiserver to act on a configuration it has just been given (it reads
webhook configurations from an informer, so there is a short lag).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from tests import builders
from tests.pods import apply_patch
from webhook.mutation import plan
from webhook.policy import Policy

IMAGE = "registry.k8s.io/pause:3.9"
KUBECTL_TIMEOUT_S = 60
WEBHOOK_READY_TIMEOUT_S = 30
STATUS_ANNOTATION = "shm-injection-status"
MOUNT = {"name": "dshm", "mountPath": "/dev/shm"}

NAMESPACE = "shm-e2e"  # labelled shm-injection: enabled, the webhook registered by URL
PLAIN_NAMESPACE = "shm-e2e-plain"  # no shm-injection label: the webhook is never called
WEBHOOK_CONFIG = "shm-webhook-e2e"
HOOK = f"{WEBHOOK_CONFIG}.shm-webhook.e2e.test"  # the webhook's name, as denials quote it
ENABLED = {"matchExpressions": [{"key": "shm-injection", "operator": "In", "values": ["enabled"]}]}


@dataclass(frozen=True)
class Result:
    """A finished kubectl: its exit code, stdout, and the `Warning:` lines of its stderr."""

    code: int
    stdout: str
    stderr: str

    @property
    def warnings(self) -> list[str]:
        prefix = "Warning: "
        return [line[len(prefix) :] for line in self.stderr.splitlines() if line.startswith(prefix)]

    def json(self) -> dict[str, Any]:
        assert self.code == 0, self.stderr
        return dict(json.loads(self.stdout))


class Kubectl:
    """The real kubectl binary against the control plane, as the admin or another user."""

    def __init__(self, binary: Path, kubeconfig: Path, cache_dir: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir

    def __call__(self, *args: str, stdin: str | None = None) -> Result:
        done = subprocess.run(
            [
                str(self.binary),
                f"--kubeconfig={self.kubeconfig}",
                f"--cache-dir={self.cache_dir}",
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=KUBECTL_TIMEOUT_S,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def create(self, obj: Mapping[str, Any], *extra: str) -> Result:
        """`kubectl create -f - -o json`: the object as the apiserver answered (stored)."""
        return self("create", "-f", "-", "-o", "json", *extra, stdin=json.dumps(obj))

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        return self("apply", "-f", "-", "-o", "json", stdin=json.dumps(obj)).json()

    def get(self, kind: str, name: str, namespace: str | None = None) -> Result:
        scope = ("--namespace", namespace) if namespace else ()
        return self("get", kind, name, *scope, "-o", "json")


def create_and_read(kube: Kubectl, manifest: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Create through kubectl; the pod then read back from storage, and kubectl's warnings."""
    created = kube.create(manifest)
    answer = created.json()
    stored = kube.get("pod", answer["metadata"]["name"], answer["metadata"]["namespace"]).json()
    assert stored["spec"] == answer["spec"]
    return stored, created.warnings


def as_webhooks_see_it(kube: Kubectl, manifest: Mapping[str, Any], plain: str) -> dict[str, Any]:
    """The pod as the apiserver passes it to mutating webhooks: defaulted, and through the
    built-in admission plugins that run before them (a dry run in `plain`, a namespace no
    webhook covers)."""
    unwebhooked = json.loads(json.dumps(manifest))
    unwebhooked["metadata"]["namespace"] = plain
    return kube.create(unwebhooked, "--dry-run=server").json()


def planned(kube: Kubectl, manifest: Mapping[str, Any], plain: str) -> dict[str, Any]:
    """The unit-level expectation: `plan` (default policy) applied to the pod the webhook
    receives."""
    seen = as_webhooks_see_it(kube, manifest, plain)
    return apply_patch(seen, plan(seen, Policy()).ops)


def api_client(kubeconfig: Path) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    return api


def namespace(name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def pod(
    name: str,
    *,
    namespace: str,
    containers: list[dict[str, Any]] | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Pod manifest (tests/builders.py's pod); `name` ending in `-` becomes a generateName,
    as controllers send."""
    generated = name.endswith("-")
    manifest = builders.pod(
        *(containers or [container("app")]),
        name=None if generated else name,
        namespace=namespace,
        annotations=dict(annotations) if annotations else None,
        labels=dict(labels) if labels else None,
        **spec,
    )
    if generated:
        manifest["metadata"]["generateName"] = name
    return {"apiVersion": "v1", "kind": "Pod", **manifest}


def container(name: str, **fields: Any) -> dict[str, Any]:
    return builders.container(name, image=IMAGE, **fields)


def webhook_configuration(
    name: str,
    *,
    client_config: dict[str, Any],
    namespace_selector: dict[str, Any],
    review_versions: tuple[str, ...] = ("v1", "v1beta1"),
    object_selector: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A MutatingWebhookConfiguration as SPEC §4 and the chart shape it (minus matchConditions,
    which Kubernetes 1.24 lacks)."""
    default_selector = {
        "matchExpressions": [{"key": "shm-injection", "operator": "NotIn", "values": ["disabled"]}]
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": f"{name}.shm-webhook.e2e.test",
                "admissionReviewVersions": list(review_versions),
                "clientConfig": client_config,
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": namespace_selector,
                "objectSelector": object_selector or default_selector,
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "timeoutSeconds": 3,
                "reinvocationPolicy": "IfNeeded",
            }
        ],
    }


def url_client_config(url: str, ca_file: Path) -> dict[str, Any]:
    return {"url": url, "caBundle": base64.b64encode(ca_file.read_bytes()).decode("ascii")}


def status(stored: Mapping[str, Any]) -> dict[str, Any] | None:
    """The webhook's status annotation of a stored pod, decoded; None when absent."""
    text = (stored["metadata"].get("annotations") or {}).get(STATUS_ANNOTATION)
    return None if text is None else dict(json.loads(text))


def wait_until_webhook_serves(kubectl: Kubectl, probe: Mapping[str, Any]) -> None:
    """Dry-run `probe` until the apiserver has the webhook: the answer carries our status
    annotation. Fails after WEBHOOK_READY_TIMEOUT_S with the last error seen."""
    deadline = time.monotonic() + WEBHOOK_READY_TIMEOUT_S
    while True:
        answer = kubectl.create(probe, "--dry-run=server")
        if answer.code == 0 and status(answer.json()) is not None:
            return
        assert time.monotonic() < deadline, (
            f"the webhook was not called within {WEBHOOK_READY_TIMEOUT_S}s: {answer.stderr}"
        )
        time.sleep(0.2)


def wait_for(check: Callable[[], bool], *, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g}s"
        time.sleep(0.2)
