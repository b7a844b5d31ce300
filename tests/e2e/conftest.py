"""The e2e tier's session: a real kube-apiserver, `shm-webhook serve`, and the webhook registered.

Follows controller-runtime's envtest: `KUBEBUILDER_ASSETS` names a directory holding `etcd`,
`kube-apiserver` and `kubectl`. Without it every e2e test skips with a message naming the
variable, also under CI (`CI=true`): unlike kubectl and helm, no package registry ships
kube-apiserver, so a CI image cannot be expected to have it. Set but incomplete, it is an
error: whoever set it meant the tier to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import ENABLED, NAMESPACE, PLAIN_NAMESPACE, WEBHOOK_CONFIG, Kubectl
from tests.e2e.controlplane import (
    ASSETS_VARIABLE,
    AssetsError,
    ControlPlane,
    find_assets,
    versions,
)
from tests.e2e.served import ServedWebhook, generate_certs

REPO = Path(__file__).resolve().parents[2]

SKIP_MESSAGE = (
    f"{ASSETS_VARIABLE} is not set; the e2e tier needs it to name a directory holding etcd, "
    "kube-apiserver and kubectl (envtest's layout). Skipped even under CI=true: no package "
    "registry ships kube-apiserver (docs/e2e.md)"
)


def pytest_report_header() -> str | None:
    """Which binaries the tier runs against (shown when tests/e2e is named on the command line)."""
    try:
        found = find_assets(os.environ)
    except AssetsError as error:
        return f"e2e: {error}"
    return None if found is None else f"e2e: {versions(found)} ({ASSETS_VARIABLE}={found})"


@pytest.fixture(scope="session")
def assets() -> Path:
    try:
        found = find_assets(os.environ)
    except AssetsError as error:
        pytest.fail(str(error), pytrace=False)
    if found is None:
        pytest.skip(SKIP_MESSAGE)
    return found


@pytest.fixture(autouse=True)
def _needs_assets(assets: Path) -> Path:
    """Every e2e test skips (one message, from `assets`) when the binaries are not there."""
    return assets


@pytest.fixture(scope="session")
def control_plane(assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(assets, tmp_path_factory.mktemp("control-plane"))
    plane.start()
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def kube(
    assets: Path, control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Kubectl:
    """kubectl from KUBEBUILDER_ASSETS, as the cluster admin."""
    cache = tmp_path_factory.mktemp("kubectl-cache")
    return Kubectl(assets / "kubectl", control_plane.kubeconfig, cache)


@pytest.fixture(scope="session")
def webhook_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.crt, tls.crt and tls.key valid for https://127.0.0.1 (`--extra-name 127.0.0.1`)."""
    return generate_certs(
        tmp_path_factory.mktemp("webhook-certs"),
        service="shm-webhook",
        namespace="shm-system",
        extra_names=["127.0.0.1"],
    )


@pytest.fixture(scope="session")
def webhook(
    webhook_certs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedWebhook]:
    served = ServedWebhook(
        certificates=webhook_certs,
        log=tmp_path_factory.mktemp("webhook") / "serve.log",
        server_name="127.0.0.1",
    )
    yield served
    served.stop()


@pytest.fixture(scope="session")
def injected_namespace(kube: Kubectl, webhook: ServedWebhook, webhook_certs: Path) -> str:
    """A namespace labelled shm-injection: enabled, with the webhook registered by URL and
    already called by the apiserver."""
    kube.apply(cluster.namespace(NAMESPACE, {"shm-injection": "enabled"}))
    kube.apply(
        cluster.webhook_configuration(
            WEBHOOK_CONFIG,
            client_config=cluster.url_client_config(webhook.url, webhook_certs / "ca.crt"),
            namespace_selector=ENABLED,
        )
    )
    probe = cluster.pod("probe", namespace=NAMESPACE, annotations={"shm-size": "1Mi"})
    cluster.wait_until_webhook_serves(kube, probe)
    return NAMESPACE


@pytest.fixture(scope="session")
def plain_namespace(kube: Kubectl) -> str:
    kube.apply(cluster.namespace(PLAIN_NAMESPACE, {}))
    return PLAIN_NAMESPACE


@pytest.fixture(scope="session")
def helm() -> str:
    """helm from PATH, else from scripts/tools.py (what `scripts/test` puts on PATH)."""
    found = shutil.which("helm")
    if found is not None:
        return found
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "tools.py")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"helm is not on PATH and scripts/tools.py could not provide it: {done.stderr}")
    return str(Path(done.stdout.strip()) / "helm")
