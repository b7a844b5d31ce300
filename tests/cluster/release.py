"""A release of the chart the tier installs, in namespaces of its own, and everything needed
to remove it again whatever failed.

Owns: the names (a random suffix per release, so runs never meet an earlier run's objects),
the values given to helm (the image, nothing else: a default install), the install with its
bootstrap Jobs and Ready webhook pods, the wait until the API server calls the webhook, and
`remove`, which runs every cleanup step even when an earlier one fails: helm uninstall, the
cluster-scoped objects of the release if uninstall left any, the TLS Secret uninstall leaves
(docs: chart README), and the namespaces.
"""

from __future__ import annotations

import base64
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import probes
from tests.cluster.environment import split
from tests.cluster.kube import Result, Tools, ready, wait_for

CHART = Path(__file__).resolve().parents[2] / "charts" / "shm-webhook"
INSTALL_TIMEOUT = "300s"
SERVES_TIMEOUT_S = 60
# Cluster-scoped kinds the chart can make (webhook configuration, namespace-policy RBAC).
CLUSTER_KINDS = "mutatingwebhookconfigurations,clusterroles,clusterrolebindings"
PSS = {"pod-security.kubernetes.io/enforce": "restricted"}
IN_SCOPE = {"shm-injection": "enabled"}
# A webhook pod may take its whole termination grace (the chart's shutdownGrace plus the time
# it gives clients to go quiet) before its namespace is gone.
NAMESPACES_GONE_S = 300


@dataclass
class Release:
    """One release; `fullname` is the release name (it contains the chart's name)."""

    tools: Tools
    image: str
    name: str = field(default_factory=lambda: f"shm-webhook-{secrets.token_hex(3)}")
    installed_seconds: float = 0.0

    @property
    def namespace(self) -> str:
        return f"{self.name}-system"

    @property
    def fullname(self) -> str:
        return self.name

    @property
    def in_scope(self) -> str:
        """A namespace labelled shm-injection: enabled."""
        return f"{self.name}-in"

    @property
    def out_of_scope(self) -> str:
        """A namespace without the label."""
        return f"{self.name}-out"

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.namespace, self.in_scope, self.out_of_scope)

    @property
    def tls_secret(self) -> str:
        return f"{self.fullname}-tls"

    @property
    def cronjob(self) -> str:
        return f"{self.fullname}-certs"

    @property
    def test_pod(self) -> str:
        return f"{self.fullname}-test-shm"

    @property
    def selector(self) -> str:
        return f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component=webhook"

    def values(self) -> dict[str, Any]:
        reference = split(self.image)
        return {
            "image": {
                "registry": "",
                "repository": reference.repository,
                "tag": reference.tag,
                "digest": reference.digest,
                "pullPolicy": "IfNotPresent",
            }
        }

    def create_namespaces(self) -> None:
        for name, labels in (
            (self.namespace, PSS),
            (self.in_scope, IN_SCOPE),
            (self.out_of_scope, {}),
        ):
            self.tools.apply(
                {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": name, "labels": labels}}
            )  # fmt: skip

    def helm(self, *args: str) -> Result:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="values-") as values:
            yaml.safe_dump(self.values(), values)
            values.flush()
            return self.tools.helm(
                *args, self.name, str(CHART), "--namespace", self.namespace,
                "--values", values.name, "--wait", "--timeout", INSTALL_TIMEOUT,
            )  # fmt: skip

    def install(self) -> None:
        started = time.monotonic()
        self.helm("install").ok()
        self.tools.kubectl(
            "rollout", "status", f"deployment/{self.fullname}", "-n", self.namespace,
            "--timeout", INSTALL_TIMEOUT,
        ).ok()  # fmt: skip
        assert self.ca_bundle(), "the post-install Job wrote no caBundle"
        self.installed_seconds = time.monotonic() - started

    def webhook_configuration(self) -> dict[str, Any]:
        found = self.tools.get("mutatingwebhookconfiguration", self.fullname)
        assert found is not None, f"no MutatingWebhookConfiguration {self.fullname}"
        return found

    def ca_bundle(self) -> bytes:
        """The caBundle of the main entry, decoded (empty when missing)."""
        [main, *_] = self.webhook_configuration()["webhooks"]
        return base64.b64decode(main["clientConfig"].get("caBundle", ""))

    def webhook_pods(self) -> list[dict[str, Any]]:
        return self.tools.items("pods", "-l", self.selector, namespace=self.namespace)

    def ready_pods(self) -> list[dict[str, Any]]:
        return [p for p in self.webhook_pods() if ready(p)]

    def wait_until_serving(self, namespace: str | None = None) -> float:
        """Seconds until a dry-run of an annotated pod in `namespace` (default: the in-scope
        one) comes back mutated: the API server has the configuration and reaches a pod."""
        started = time.monotonic()
        probe = probes.pod(
            "probe", namespace=namespace or self.in_scope,
            spec=probes.pod_spec([probes.container("c", self.image)]),
            annotations={"shm-size": "1Mi"},
        )  # fmt: skip

        def mutated() -> bool:
            answer = self.tools.create(probe, "--dry-run=server")
            return answer.code == 0 and probes.shm_volume(answer.json()) is not None

        wait_for(mutated, what="the webhook mutating a dry-run pod", timeout=SERVES_TIMEOUT_S)
        return time.monotonic() - started

    def remove(self) -> list[str]:
        """Every cleanup step, each attempted whatever the others did; what failed."""
        failures: list[str] = []
        steps: list[tuple[str, ...]] = [
            ("helm", "uninstall", self.name, "--namespace", self.namespace, "--wait",
             "--timeout", "120s", "--ignore-not-found"),
            ("kubectl", "delete", CLUSTER_KINDS, "-l", f"app.kubernetes.io/instance={self.name}",
             "--ignore-not-found"),
            ("kubectl", "delete", "secret", self.tls_secret, "-n", self.namespace,
             "--ignore-not-found"),
            ("kubectl", "delete", "namespace", *self.namespaces, "--ignore-not-found",
             "--timeout", f"{NAMESPACES_GONE_S}s"),
        ]  # fmt: skip
        for tool, *args in steps:
            run = self.tools.helm if tool == "helm" else self.tools.kubectl
            try:
                done = run(*args, timeout=NAMESPACES_GONE_S + 60)
            except Exception as error:  # a timeout must not stop the next step
                failures.append(f"{tool} {' '.join(args)}: {error}")
                continue
            if done.code != 0:
                failures.append(f"{tool} {' '.join(args)}: {done.stderr.strip()}")
        return failures


@dataclass(frozen=True)
class Installed:
    """The session's release and the `helm test --logs` run right after its install."""

    release: Release
    first_test: Result
    first_test_seconds: float


@contextmanager
def installed(tools: Tools, image: str) -> Iterator[Release]:
    """A default install in fresh namespaces, removed afterwards whatever happened."""
    release = Release(tools, image)
    try:
        release.create_namespaces()
        release.install()
        release.wait_until_serving()
        yield release
    finally:
        failures = release.remove()
        assert not failures, "cleanup of the release failed:\n" + "\n".join(failures)
