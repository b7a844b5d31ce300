"""`shm-webhook certs bootstrap` against the real API, as the chart runs it (SPEC §6).

The chart is rendered with `helm template` (for Kubernetes 1.27, its lowest supported version:
the objects used here are the same in 1.24). Its certificate RBAC (both identities) and its
MutatingWebhookConfiguration are applied as rendered, with two changes the lack of a pod
network forces: the Service is an ExternalName one resolving to 127.0.0.1, and the webhook's
service port is the free port `shm-webhook serve` listens on. The kube-apiserver still dials
`<service>.<namespace>.svc` and verifies that name against the bootstrapped caBundle.

The two Jobs' arguments are taken from the rendered chart and run with `--kubeconfig` holding a
token the apiserver issues for the Job's ServiceAccount (TokenRequest), so the chart's
least-privilege RBAC is what is exercised. The chart is installed cluster-scoped, excluding the
namespace of the other e2e modules, and only for the duration of this module.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e import cluster
from tests.e2e.cluster import NAMESPACE as OTHER_MODULES_NAMESPACE
from tests.e2e.cluster import Kubectl, pod, status
from tests.e2e.controlplane import ControlPlane
from tests.e2e.served import ServedWebhook, cli
from tests.processes import free_port

pytestmark = pytest.mark.e2e

RELEASE = "e2e"
RELEASE_NAMESPACE = "shm-boot"
PODS_NAMESPACE = "shm-boot-pods"  # no label: covered by the cluster-scoped chart only
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
BOOTSTRAP_TIMEOUT_S = 120
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Step:
    """One of the chart's certificate Jobs: its ServiceAccount and `certs bootstrap` args."""

    service_account: str
    args: list[str]


@dataclass(frozen=True)
class Release:
    secret: str
    service: str
    webhook_config: str
    port: int
    pre_install: Step
    post_install: Step


def render(helm: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [
            *(helm, "template", RELEASE, str(REPO / "charts" / "shm-webhook")),
            *("--namespace", RELEASE_NAMESPACE, "--kube-version", "1.27.0"),
            *(
                "--set",
                "scope=cluster",
                "--set",
                f"excludeNamespaces={{{OTHER_MODULES_NAMESPACE}}}",
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [document for document in yaml.safe_load_all(done.stdout) if document]


def step(job: dict[str, Any]) -> Step:
    spec = job["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    return Step(spec["serviceAccountName"], list(only["args"]))


@pytest.fixture(scope="module")
def release(kube: Kubectl, helm: str) -> Iterator[Release]:
    objects = render(helm)
    jobs = {
        each["metadata"]["annotations"]["helm.sh/hook"]: each
        for each in objects
        if each["kind"] == "Job"
    }
    (config,) = [each for each in objects if each["kind"] == "MutatingWebhookConfiguration"]
    hooks = config["webhooks"]  # the main entry and the helm test one: the same Service
    service = hooks[0]["clientConfig"]["service"]
    port = free_port()
    for hook in hooks:
        hook["clientConfig"]["service"]["port"] = port
        assert "caBundle" not in hook["clientConfig"]

    for name in (RELEASE_NAMESPACE, PODS_NAMESPACE):
        kube.apply(cluster.namespace(name, {}))
    for each in objects:
        if each["kind"] in RBAC_KINDS:
            kube.apply(each)
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": service["name"], "namespace": RELEASE_NAMESPACE},
            "spec": {"type": "ExternalName", "externalName": "127.0.0.1"},
        }
    )
    kube.apply(config)
    pre_install = step(jobs["pre-install,pre-upgrade,pre-rollback"])
    yield Release(
        secret=pre_install.args[pre_install.args.index("--secret") + 1],
        service=service["name"],
        webhook_config=config["metadata"]["name"],
        port=port,
        pre_install=pre_install,
        post_install=step(jobs["post-install,post-upgrade,post-rollback"]),
    )
    kube("delete", "mutatingwebhookconfiguration", config["metadata"]["name"])
    # The apiserver learns of the deletion through an informer: wait until it has, so no later
    # module's pod is sent (failurePolicy: Fail) to the server this module has stopped.
    probe = pod("unhooked-probe", namespace=PODS_NAMESPACE, annotations={"shm-size": "1Mi"})

    def forgotten() -> bool:  # refused while the apiserver still calls the stopped server
        answer = kube.create(probe, "--dry-run=server")
        return answer.code == 0 and status(answer.json()) is None

    cluster.wait_for(forgotten, what=f"the apiserver forgetting {config['metadata']['name']}")


def bootstrap(
    control_plane: ControlPlane, kube: Kubectl, tmp_path: Path, the_step: Step
) -> subprocess.CompletedProcess[str]:
    """Run the Job's `certs bootstrap` as its ServiceAccount, with a token the apiserver made."""
    token = kube("create", "token", the_step.service_account, "--namespace", RELEASE_NAMESPACE)
    assert token.code == 0, token.stderr
    kubeconfig = control_plane.write_kubeconfig(
        tmp_path / f"{the_step.service_account}.kubeconfig",
        user=the_step.service_account,
        token=token.stdout.strip(),
    )
    return subprocess.run(
        [*cli(), *the_step.args, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=BOOTSTRAP_TIMEOUT_S,
        check=False,
    )


def read(kube: Kubectl, release: Release) -> tuple[dict[str, Any], dict[str, Any]]:
    secret = kube.get("secret", release.secret, RELEASE_NAMESPACE).json()
    config = kube.get("mutatingwebhookconfiguration", release.webhook_config).json()
    return secret, config


@pytest.fixture(scope="module")
def bootstrapped(
    control_plane: ControlPlane,
    kube: Kubectl,
    release: Release,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """The chart's two steps in order; what each printed and left in the cluster."""
    tokens = tmp_path_factory.mktemp("tokens")
    first = bootstrap(control_plane, kube, tokens, release.pre_install)
    after_first = read(kube, release) if first.returncode == 0 else None
    second = bootstrap(control_plane, kube, tokens, release.post_install)
    return {"first": first, "after_first": after_first, "second": second}


@pytest.fixture(scope="module")
def served_from_secret(
    kube: Kubectl,
    release: Release,
    bootstrapped: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServedWebhook]:
    """`shm-webhook serve` from the files of the bootstrapped Secret, as the chart mounts it."""
    assert bootstrapped["second"].returncode == 0, bootstrapped["second"].stderr
    files = tmp_path_factory.mktemp("secret-files")
    secret, _ = read(kube, release)
    for key in ("tls.crt", "tls.key", "ca.crt"):
        (files / key).write_bytes(base64.b64decode(secret["data"][key]))
    served = ServedWebhook(
        certificates=files,
        log=files / "serve.log",
        server_name=f"{release.service}.{RELEASE_NAMESPACE}.svc",
        port=release.port,
    )
    yield served
    served.stop()


def test_the_chart_s_two_bootstrap_steps_create_the_secret_then_trust_its_ca(
    kube: Kubectl, release: Release, bootstrapped: dict[str, Any]
) -> None:
    first, second = bootstrapped["first"], bootstrapped["second"]
    assert first.returncode == 0, first.stdout + first.stderr
    secret, config = bootstrapped["after_first"]
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) >= {"ca.crt", "tls.crt", "tls.key"}
    assert "caBundle" not in config["webhooks"][0]["clientConfig"]  # --skip-ca-bundle

    assert second.returncode == 0, second.stdout + second.stderr
    secret_now, config_now = read(kube, release)
    assert secret_now["metadata"]["resourceVersion"] == secret["metadata"]["resourceVersion"]
    for hook in config_now["webhooks"]:
        assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"], hook["name"]


def test_pods_are_mutated_through_the_bootstrapped_configuration(
    kube: Kubectl, served_from_secret: ServedWebhook
) -> None:
    probe = pod("bootstrap-probe", namespace=PODS_NAMESPACE, annotations={"shm-size": "1Mi"})
    cluster.wait_until_webhook_serves(kube, probe)

    manifest = pod("through-bootstrap", namespace=PODS_NAMESPACE, annotations={"shm-size": "256Mi"})
    stored = kube.create(manifest).json()

    assert status(stored) == {
        "size": "256Mi",
        "volume": "dshm",
        "mounted": ["app"],
        "charged": ["app"],
    }
    logged = served_from_secret.admission_of(namespace=PODS_NAMESPACE, name="through-bootstrap")
    assert logged["outcome"] == "mutated"


@pytest.mark.usefixtures("bootstrapped")
def test_running_the_post_install_step_again_changes_nothing(
    control_plane: ControlPlane,
    kube: Kubectl,
    release: Release,
    tmp_path: Path,
) -> None:
    before = read(kube, release)

    again = bootstrap(control_plane, kube, tmp_path, release.post_install)

    assert again.returncode == 0, again.stdout + again.stderr
    after = read(kube, release)
    for old, new in zip(before, after, strict=True):
        assert new["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"]


@pytest.mark.usefixtures("bootstrapped")
def test_the_pre_install_identity_cannot_touch_the_webhook_configuration(
    control_plane: ControlPlane,
    kube: Kubectl,
    release: Release,
    tmp_path: Path,
) -> None:
    before = read(kube, release)
    args = [arg for arg in release.pre_install.args if arg != "--skip-ca-bundle"]

    refused = bootstrap(
        control_plane, kube, tmp_path, Step(release.pre_install.service_account, args)
    )

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "403" in refused.stderr, refused.stderr
    after = read(kube, release)
    for old, new in zip(before, after, strict=True):
        assert new["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"]


@pytest.mark.usefixtures("bootstrapped")
def test_a_ca_bundle_patch_whose_test_op_is_stale_is_refused_with_422(
    control_plane: ControlPlane, release: Release
) -> None:
    """`certs.cabundle` relies on this: a `test` op failing makes the apiserver answer 422."""
    admission = client.AdmissionregistrationV1Api(cluster.api_client(control_plane.kubeconfig))
    stale = base64.b64encode(b"not the current bundle").decode()
    ops = [
        {"op": "test", "path": "/webhooks/0/clientConfig/caBundle", "value": stale},
        {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": stale},
    ]

    with pytest.raises(ApiException) as refused:
        admission.patch_mutating_webhook_configuration(release.webhook_config, ops)

    assert refused.value.status == 422
    assert json.loads(refused.value.body or "")["reason"] == "Invalid"


@pytest.mark.usefixtures("served_from_secret")
def test_in_the_release_namespace_only_the_chart_s_test_pod_reaches_the_webhook(
    kube: Kubectl, helm: str
) -> None:
    """The chart's `helm test` pod, created as rendered in the release namespace, is mutated
    through the configuration's helm-test entry; the same pod without the test label, and the
    chart's webhook pod, are never sent (the real apiserver evaluating the selectors)."""
    probe = pod("routing-probe", namespace=PODS_NAMESPACE, annotations={"shm-size": "1Mi"})
    cluster.wait_until_webhook_serves(kube, probe)
    objects = render(helm)
    (test_pod,) = [each for each in objects if each["kind"] == "Pod"]
    (deployment,) = [each for each in objects if each["kind"] == "Deployment"]
    unlabelled = json.loads(json.dumps(test_pod))
    del unlabelled["metadata"]["labels"]["shm-webhook/helm-test"]
    unlabelled["metadata"]["name"] = "unlabelled-test-pod"
    webhook_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**deployment["spec"]["template"]["metadata"], "name": "webhook-pod"},
        "spec": deployment["spec"]["template"]["spec"],
    }
    webhook_pod["metadata"]["annotations"] = {"shm-size": "1Gi"}

    stored = kube.create(test_pod, "--dry-run=server").json()
    assert status(stored) == {
        "size": "256Mi",
        "volume": "dshm",
        "mounted": ["check-shm"],
        "charged": ["check-shm"],
    }
    for other in (unlabelled, webhook_pod):
        other["metadata"]["namespace"] = RELEASE_NAMESPACE
        answer = kube.create(other, "--dry-run=server")
        assert answer.code == 0, answer.stderr
        assert status(answer.json()) is None, other["metadata"]["name"]


@pytest.mark.usefixtures("bootstrapped")
def test_an_old_ca_in_the_bundle_is_kept_while_the_job_cannot_tell_what_the_pods_serve(
    control_plane: ControlPlane, kube: Kubectl, release: Release, tmp_path: Path
) -> None:
    """The forget step as the chart's identity: its RBAC lets it read the Service and list
    EndpointSlices (no 403), and an ExternalName Service, whose backends no EndpointSlice
    lists, keeps the old CA trusted (`certs.trust`'s "cannot tell")."""
    secret, _ = read(kube, release)
    ours = base64.b64decode(secret["data"]["ca.crt"])
    old = (tmp_path / "old").resolve()
    assert cli_generate(old, service=release.service) == 0
    old_ca = (old / "ca.crt").read_bytes()
    bundle = base64.b64encode(ours + old_ca).decode()
    op = {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": bundle}
    patched = kube(
        "patch", "mutatingwebhookconfiguration", release.webhook_config, "--type=json",
        "-p", json.dumps([op]),
    )  # fmt: skip
    assert patched.code == 0, patched.stderr

    again = bootstrap(control_plane, kube, tmp_path, release.post_install)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "403" not in again.stdout + again.stderr
    assert "kept CA" in again.stdout
    assert "is an ExternalName Service" in again.stdout
    _, after = read(kube, release)
    assert after["webhooks"][0]["clientConfig"]["caBundle"] == bundle


def cli_generate(out: Path, *, service: str) -> int:
    done = subprocess.run(
        [*cli(), "certs", "generate", "--service", service, "--namespace", RELEASE_NAMESPACE,
         "--out", str(out)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode
