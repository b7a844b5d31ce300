"""`shm-webhook check` against the real kube-apiserver, on the session's webhook registered by
URL (so the Service, Deployment and Secret checks are skipped): it passes when the
registration is healthy, and names the cause of each thing broken on purpose: a namespace
out of scope, a caBundle of another CA, the webhook process stopped, an expired serving
certificate, no right to create pods. Each broken case has a webhook configuration and a
namespace of its own, so no other test meets it. The release-shaped install is checked in
test_check_release.py.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certs.describe import fetch_served
from certs.generate import Bundle, dns_names, generate_bundle, issue_serving_cert
from tests.e2e import cluster
from tests.e2e.checking import run_check
from tests.e2e.cluster import WEBHOOK_CONFIG, Kubectl, pod
from tests.e2e.controlplane import ADMIN, ControlPlane
from tests.e2e.served import ServedWebhook
from tests.webhook.diagnose.test_selectors import TABLE
from webhook.diagnose.selectors import Requirement, matches, requirements

pytestmark = pytest.mark.e2e

HOOK = f"{WEBHOOK_CONFIG}.shm-webhook.e2e.test"
CASE_LABEL = "shm-e2e-check-case"


def isolated(kube: Kubectl, case: str, *, url: str, ca_pem: bytes) -> str:
    """A namespace and a webhook configuration (named `shm-check-<case>`) that serves it only,
    calling `url` and trusting `ca_pem`; the namespace's name."""
    name = f"shm-check-{case}"
    kube.apply(cluster.namespace(name, {CASE_LABEL: case}))
    client_config = {"url": url, "caBundle": base64.b64encode(ca_pem).decode()}
    kube.apply(
        cluster.webhook_configuration(
            name,
            client_config=client_config,
            namespace_selector={"matchLabels": {CASE_LABEL: case}},
        )
    )
    return name


def probe(namespace: str) -> dict[str, Any]:
    return pod("probe", namespace=namespace, annotations={"shm-size": "1Mi"})


def refused_with(kube: Kubectl, namespace: str, text: str) -> bool:
    """Whether a dry run in `namespace` is refused saying `text` (the configuration's effect
    reaches the apiserver through an informer, a moment after it is written)."""
    answer = kube.create(probe(namespace), "--dry-run=server")
    return answer.code != 0 and text in answer.stderr


def served_at(served: ServedWebhook) -> str:
    return f"certificate served at 127.0.0.1:{served.port}"


def test_check_passes_on_the_healthy_registration_and_skips_the_service_checks(
    control_plane: ControlPlane, webhook: ServedWebhook, injected_namespace: str
) -> None:
    ran = run_check(
        control_plane.kubeconfig,
        *("--webhook-config", WEBHOOK_CONFIG, "--namespace", injected_namespace, "-o", "json"),
    )

    assert ran.code == 0, ran.stdout
    levels = [(c["name"], c["level"]) for c in ran.json()["checks"]]
    assert levels == [
        (f"MutatingWebhookConfiguration {WEBHOOK_CONFIG}", "ok"),
        (f"webhook {HOOK}", "ok"),
        (f"webhook {HOOK}", "skip"),
        (f"caBundle of {HOOK}", "ok"),
        (served_at(webhook), "ok"),
        (f"scope of {HOOK}", "ok"),
        (f"probe pod in namespace {injected_namespace}", "ok"),
    ]
    skipped = ran.json()["checks"][2]["message"]
    assert skipped.startswith("calls a URL, not a Service: Service, endpoint, Deployment")
    assert ran.checks()[served_at(webhook)]["message"].startswith("for 127.0.0.1, ")
    probe_result = ran.json()["probe"]
    assert (probe_result["mutated"], probe_result["sizeLimit"]) == (True, "64Mi")


def test_a_namespace_without_the_label_is_named_as_out_of_scope(
    control_plane: ControlPlane, plain_namespace: str, injected_namespace: str
) -> None:
    ran = run_check(
        control_plane.kubeconfig, "--webhook-config", WEBHOOK_CONFIG, "--namespace", plain_namespace
    )

    assert ran.code == 1
    lines = ran.stdout.splitlines()
    failure = next(index for index, line in enumerate(lines) if line.startswith("✘"))
    assert lines[failure : failure + 2] == [
        f"✘ probe pod in namespace {plain_namespace}: not changed: namespace {plain_namespace} is"
        f" not in scope of {HOOK}: it lacks the label shm-injection=enabled",
        f"    hint: kubectl label namespace {plain_namespace} shm-injection=enabled",
    ]
    scope = next(line for line in lines if line.startswith(f"✔ scope of {HOOK}: "))
    assert injected_namespace in scope


@pytest.mark.usefixtures("webhook")
def test_your_pod_left_alone_by_the_webhook_is_explained_by_its_warning(
    control_plane: ControlPlane, injected_namespace: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "host-ipc.json"
    manifest.write_text(
        json.dumps(
            pod("mine", namespace=injected_namespace, annotations={"shm-size": "1Gi"}, hostIPC=True)
        )
    )

    ran = run_check(
        control_plane.kubeconfig,
        "--webhook-config",
        WEBHOOK_CONFIG,
        "-f",
        str(manifest),
        "-o",
        "json",
    )

    assert ran.code == 1
    warning = "shm-size ignored: hostIPC pods share the host's /dev/shm"
    assert ran.json()["probe"]["warnings"] == [warning]  # read from the answer's Warning header
    assert ran.checks()[f"pod of {manifest} in namespace {injected_namespace}"]["message"] == (
        f"not changed: the webhook left it alone: {warning}"
    )


def test_a_cabundle_of_another_ca_is_named_and_the_apiserver_error_quoted(
    kube: Kubectl, control_plane: ControlPlane, webhook: ServedWebhook
) -> None:
    other = generate_bundle(service="shm-webhook", namespace="shm-system", now=datetime.now(UTC))
    namespace = isolated(kube, "wrong-ca", url=webhook.url, ca_pem=other.ca_cert_pem)
    cluster.wait_for(
        lambda: refused_with(kube, namespace, "x509"), what="the apiserver using the caBundle"
    )
    try:
        ran = run_check(
            control_plane.kubeconfig,
            *("--webhook-config", namespace, "--namespace", namespace, "-o", "json"),
        )
    finally:
        kube("delete", "mutatingwebhookconfiguration", namespace)

    assert ran.code == 1
    hook = f"{namespace}.shm-webhook.e2e.test"
    assert ran.failed() == [f"caBundle of {hook}", f"probe pod in namespace {namespace}"]
    assert ran.checks()[f"caBundle of {hook}"]["message"].startswith(
        f"does not verify the {served_at(webhook)}: it was issued by CN=shm-webhook-ca@"
    )
    probe_check = ran.checks()[f"probe pod in namespace {namespace}"]
    assert probe_check["message"].startswith(
        f"the kube-apiserver could not call the webhook: Internal error occurred: failed calling"
        f' webhook "{hook}": failed to call webhook: Post "{webhook.url}?timeout=3s":'
    )
    assert "x509: certificate signed by unknown authority" in probe_check["message"]
    assert probe_check["hint"].startswith("the kube-apiserver does not accept the certificate")


def test_a_stopped_webhook_is_unreachable_in_the_apiservers_words(
    kube: Kubectl,
    control_plane: ControlPlane,
    webhook_certs: Path,
    tmp_path: Path,
) -> None:
    stopped = ServedWebhook(
        cert_file=webhook_certs / "tls.crt",
        key_file=webhook_certs / "tls.key",
        ca_file=webhook_certs / "ca.crt",
        log=tmp_path / "serve.log",
        server_name="127.0.0.1",
    )
    namespace = isolated(
        kube, "stopped", url=stopped.url, ca_pem=(webhook_certs / "ca.crt").read_bytes()
    )
    try:
        cluster.wait_until_webhook_serves(kube, probe(namespace))
    finally:
        stopped.stop()
    try:
        ran = run_check(
            control_plane.kubeconfig,
            *("--webhook-config", namespace, "--namespace", namespace, "-o", "json"),
        )
    finally:
        kube("delete", "mutatingwebhookconfiguration", namespace)

    assert ran.code == 1
    unreachable = ran.checks()[served_at(stopped)]
    assert unreachable["level"] == "warn"  # check may simply not reach what the apiserver can
    assert unreachable["message"].startswith("cannot fetch it from here: ")
    assert "Connection refused" in unreachable["message"]
    probe_check = ran.checks()[f"probe pod in namespace {namespace}"]
    assert probe_check["level"] == "fail"
    assert f'Post "{stopped.url}?timeout=3s"' in probe_check["message"]
    assert "connect: connection refused" in probe_check["message"]
    assert probe_check["hint"].startswith("the webhook cannot be reached")
    assert ran.json()["probe"]["error"] in probe_check["message"]  # verbatim


def expired_pair(ca: Bundle, directory: Path) -> tuple[Path, Path]:
    """tls.crt and tls.key of a certificate from `ca` that expired a day ago."""
    cert, key = issue_serving_cert(
        ca_cert_pem=ca.ca_cert_pem,
        ca_key_pem=ca.ca_key_pem,
        dns_names=[*dns_names(service="shm-webhook", namespace="shm-system"), "127.0.0.1"],
        now=datetime.now(UTC) - timedelta(days=2),
        validity=timedelta(days=1),
    )
    directory.mkdir()
    (directory / "tls.crt").write_bytes(cert)
    (directory / "tls.key").write_bytes(key)
    return directory / "tls.crt", directory / "tls.key"


@pytest.fixture
def expired(tmp_path: Path) -> Iterator[tuple[ServedWebhook, Bundle]]:
    """A webhook that started with a valid certificate and now serves an expired one from the
    same CA (the server reloads its files: the hot reload path a renewal takes, backwards)."""
    ca = generate_bundle(
        service="shm-webhook",
        namespace="shm-system",
        now=datetime.now(UTC) - timedelta(days=3),
        extra_names=["127.0.0.1"],
    )
    (tmp_path / "ca.crt").write_bytes(ca.ca_cert_pem)
    (tmp_path / "tls.crt").write_bytes(ca.cert_pem)
    (tmp_path / "tls.key").write_bytes(ca.key_pem)
    served = ServedWebhook(
        cert_file=tmp_path / "tls.crt",
        key_file=tmp_path / "tls.key",
        ca_file=tmp_path / "ca.crt",
        log=tmp_path / "serve.log",
        server_name="127.0.0.1",
    )
    try:
        cert, key = expired_pair(ca, tmp_path / "expired")
        os.replace(key, tmp_path / "tls.key")
        os.replace(cert, tmp_path / "tls.crt")
        cluster.wait_for(
            lambda: _served_expired(served), what="the server loading the expired certificate"
        )
        yield served, ca
    finally:
        served.stop()


def _served_expired(served: ServedWebhook) -> bool:
    cert = fetch_served(
        host="127.0.0.1", port=served.port, server_name="127.0.0.1", ca_file=None
    ).cert
    return cert.not_valid_after_utc < datetime.now(UTC)


def test_an_expired_serving_certificate_is_named_with_its_date(
    kube: Kubectl, control_plane: ControlPlane, expired: tuple[ServedWebhook, Bundle]
) -> None:
    served, ca = expired
    namespace = isolated(kube, "expired", url=served.url, ca_pem=ca.ca_cert_pem)
    cluster.wait_for(
        lambda: refused_with(kube, namespace, "expired"), what="the apiserver refusing the cert"
    )
    try:
        ran = run_check(
            control_plane.kubeconfig,
            *("--webhook-config", namespace, "--namespace", namespace, "-o", "json"),
        )
    finally:
        kube("delete", "mutatingwebhookconfiguration", namespace)

    assert ran.code == 1
    hook = f"{namespace}.shm-webhook.e2e.test"
    assert ran.failed() == [served_at(served), f"probe pod in namespace {namespace}"]
    assert ran.checks()[f"caBundle of {hook}"]["level"] == "ok"  # the CA is right
    assert ran.checks()[served_at(served)]["message"].startswith("expired at ")
    probe_check = ran.checks()[f"probe pod in namespace {namespace}"]
    assert "x509: certificate has expired or is not yet valid" in probe_check["message"]
    assert probe_check["hint"].startswith("the kube-apiserver does not accept the certificate")


READER = "shm-check-reader"
READER_RULES = [
    {"apiGroups": ["admissionregistration.k8s.io"],
     "resources": ["mutatingwebhookconfigurations"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["services", "secrets"], "verbs": ["get"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["list"]},
]  # fmt: skip


@pytest.fixture(scope="module")
def reader(
    kube: Kubectl, control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A kubeconfig (context `shm-check-reader`) of a service account that may read everything
    `check` reads, but not create pods."""
    kube.apply(cluster.namespace(READER, {}))
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": READER, "namespace": READER},
        }
    )
    kube.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": READER}, "rules": READER_RULES})  # fmt: skip
    kube.apply({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": READER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": READER},
        "subjects": [{"kind": "ServiceAccount", "name": READER, "namespace": READER}],
    })  # fmt: skip
    token = kube("create", "token", READER, "-n", READER)
    assert token.code == 0, token.stderr
    path = tmp_path_factory.mktemp("reader") / "kubeconfig"
    return control_plane.write_kubeconfig(path, user=READER, token=token.stdout.strip())


@pytest.mark.usefixtures("webhook")
def test_without_the_right_to_create_pods_the_probe_says_which_right_it_needs(
    reader: Path, injected_namespace: str
) -> None:
    ran = run_check(
        reader, "--webhook-config", WEBHOOK_CONFIG, "--namespace", injected_namespace, "-o", "json"
    )

    assert ran.code == 1
    assert ran.failed() == [f"probe pod in namespace {injected_namespace}"]  # the rest was read
    probe_check = ran.checks()[f"probe pod in namespace {injected_namespace}"]
    assert probe_check["message"] == (
        f"cannot dry-run a pod in namespace {injected_namespace}: pods is forbidden: User"
        f' "system:serviceaccount:{READER}:{READER}" cannot create resource "pods" in API group'
        f' "" in the namespace "{injected_namespace}"'
    )
    assert probe_check["hint"] == (
        f"the end-to-end probe needs create on pods in {injected_namespace} (a dry run still"
        f" needs RBAC): kubectl auth can-i create pods -n {injected_namespace}"
    )


@pytest.mark.usefixtures("webhook")
def test_context_picks_the_user_from_a_kubeconfig_list(
    control_plane: ControlPlane, reader: Path, injected_namespace: str
) -> None:
    files = [control_plane.kubeconfig, reader]
    args = ("--webhook-config", WEBHOOK_CONFIG, "--namespace", injected_namespace)

    assert run_check(files, *args, "--context", READER).code == 1  # may not create pods
    assert run_check(files, *args, "--context", ADMIN).code == 0


def test_an_unknown_context_is_exit_code_2_with_one_line(control_plane: ControlPlane) -> None:
    ran = run_check(control_plane.kubeconfig, "--context", "nope")

    assert (ran.code, ran.stdout) == (2, "")
    [line] = ran.stderr.splitlines()
    assert line.startswith("error: cannot configure the Kubernetes client from KUBECONFIG=")
    assert "(context nope)" in line


def selector_text(terms: list[Requirement]) -> str:
    """The `labelSelector` query text of the terms, the apiserver's own syntax."""
    said = {
        "In": lambda t: f"{t.key} in ({','.join(t.values)})",
        "NotIn": lambda t: f"{t.key} notin ({','.join(t.values)})",
        "Exists": lambda t: t.key,
        "DoesNotExist": lambda t: f"!{t.key}",
    }
    return ",".join(said[t.operator](t) for t in terms)


def test_selectors_match_the_namespaces_the_apiserver_selects(kube: Kubectl) -> None:
    cases = [param.values for param in TABLE]
    label_sets = list({tuple(sorted(labels.items())): labels for _, labels, _ in cases}.values())
    mark = {"shm-e2e-selectors": "yes"}
    for index, labels in enumerate(label_sets):
        kube.apply(cluster.namespace(f"shm-check-selectors-{index}", {**labels, **mark}))
    listed = kube("get", "namespaces", "-l", "shm-e2e-selectors=yes", "-o", "json")
    namespaces = {
        item["metadata"]["name"]: item["metadata"]["labels"] for item in listed.json()["items"]
    }

    for selector, _, _ in cases:
        terms = requirements(selector)
        query = ",".join(filter(None, ["shm-e2e-selectors=yes", selector_text(terms)]))
        answer = kube("get", "namespaces", "-l", query, "-o", "name")
        assert answer.code == 0, answer.stderr
        by_apiserver = {line.removeprefix("namespace/") for line in answer.stdout.split()}
        by_check = {name for name, labels in namespaces.items() if matches(selector, labels)}
        assert by_check == by_apiserver, query
