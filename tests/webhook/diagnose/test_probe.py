"""Why a pod did or did not get its /dev/shm: `check`'s verdict on what a dry run stored, given
the namespace's labels and the webhook entries the chart renders (`helm template`, so the
selectors are the chart's own), and its reading of the refusals the kube-apiserver sends."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.chart.render import NAMESPACE, Chart, of_kind
from tests.pods import apply_patch
from webhook.diagnose.probe import (
    PROBE_PREFIX,
    PROBE_SIZE,
    Outcome,
    parse_warning,
    probe_pod,
    user_pod,
    verdict,
)
from webhook.mutation import plan
from webhook.policy import Policy

MAIN = f"rel-shm-webhook.{NAMESPACE}.svc"
DEFAULTS = f"namespace-defaults.{MAIN}"


@pytest.fixture(scope="module")
def chart(helm: str) -> Chart:
    return Chart(helm)


def entries(chart: Chart, *values: str) -> list[dict[str, Any]]:
    (configuration,) = of_kind(chart.render(*values), "MutatingWebhookConfiguration")
    return list(configuration["webhooks"])


def namespace(name: str, **labels: str) -> dict[str, Any]:
    # The kube-apiserver labels every namespace with its name.
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def submitted(
    *, annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    pod = probe_pod(namespace="ml", annotation="shm-size")
    pod["metadata"]["annotations"] = (
        {"shm-size": PROBE_SIZE} if annotations is None else annotations
    )
    if labels:
        pod["metadata"]["labels"] = labels
    return pod


def stored_unchanged(pod: dict[str, Any]) -> dict[str, Any]:
    """What a dry run stores for a pod no webhook touched: the pod, named."""
    stored = copy.deepcopy(pod)
    stored["metadata"]["name"] = PROBE_PREFIX + "x7k2p"
    return stored


@pytest.mark.parametrize(
    ("values", "labels", "pod_labels", "annotations", "reason", "hint"),
    [
        pytest.param(
            (), {}, {}, None,
            f"namespace ml is not in scope of {MAIN}: it lacks the label shm-injection=enabled",
            "kubectl label namespace ml shm-injection=enabled",
            id="scope=namespace: a namespace without the label",
        ),
        pytest.param(
            (), {"shm-injection": "yes"}, {}, None,
            f"namespace ml is not in scope of {MAIN}: it is labelled shm-injection=yes, not"
            " shm-injection=enabled",
            "kubectl label namespace ml shm-injection=enabled --overwrite",
            id="scope=namespace: the label with another value",
        ),
        pytest.param(
            ("scope=cluster",), {"shm-injection": "disabled"}, {}, None,
            f"namespace ml is not in scope of {MAIN}: it is labelled shm-injection=disabled",
            "kubectl label namespace ml shm-injection-",
            id="scope=cluster: a namespace that opted out",
        ),
        pytest.param(
            ("scope=cluster", "excludeNamespaces[0]=ml"), {}, {}, None,
            f"namespace ml is not in scope of {MAIN}: it is excluded by name"
            " (kubernetes.io/metadata.name NotIn (shm-system, kube-system, kube-public,"
            " kube-node-lease, ml))",
            "the webhook never serves namespace ml",
            id="scope=cluster: a namespace in excludeNamespaces",
        ),
        pytest.param(
            (), {"shm-injection": "enabled"}, {"shm-injection": "disabled"}, None,
            f"the pod is not sent by {MAIN}: it is labelled shm-injection=disabled"
            " (objectSelector)",
            "the pod opted out",
            id="a pod labelled shm-injection=disabled",
        ),
        pytest.param(
            (), {"shm-injection": "enabled"}, {}, {},
            "the pod has no shm-size annotation and no default size applies",
            "annotate the pod: shm-size: 1Gi",
            id="a pod without the annotation",
        ),
        pytest.param(
            (), {"shm-injection": "enabled"}, {}, {"shm-size": "0"},
            "the pod asks for no shm (shm-size: 0)", "",
            id="a pod asking for a size of 0",
        ),
        pytest.param(
            ("namespacePolicy.enabled=true",),
            {"shm-injection": "enabled", "shm-injection/defaults": "true"}, {}, {},
            f"{DEFAULTS} should have changed it",
            "see the checks above",
            id="a namespace with a default size whose entry sent the pod, unchanged",
        ),
        pytest.param(
            ("defaultSize=1Gi",), {"shm-injection": "enabled"}, {}, None,
            f"{MAIN} should have changed it",
            f"failurePolicy Ignore on {MAIN}: when the webhook cannot be called the pod is"
            " created unchanged, silently",
            id="failurePolicy Ignore (a defaultSize) hides a webhook that could not be called",
        ),
    ],
)  # fmt: skip
def test_an_unchanged_pod_is_explained_by_the_first_reason_it_was_left_out(
    chart: Chart,
    values: tuple[str, ...],
    labels: dict[str, str],
    pod_labels: dict[str, str],
    annotations: dict[str, str] | None,
    reason: str,
    hint: str,
) -> None:
    pod = submitted(annotations=annotations, labels=pod_labels)

    check, result = verdict(
        pod,
        Outcome(stored=stored_unchanged(pod)),
        namespace=namespace("ml", **labels),
        entries=entries(chart, *values),
        policy=Policy(),
        name="probe pod in namespace ml",
    )

    assert check.level == "fail"
    assert check.message == f"not changed: {reason}"
    assert check.hint.startswith(hint)
    assert result == {
        "namespace": "ml",
        "mutated": False,
        "warnings": [],
        "pod": PROBE_PREFIX + "x7k2p",
        "reason": reason,
    }


def test_an_unchanged_pod_the_webhook_warned_about_quotes_the_warning(chart: Chart) -> None:
    pod = submitted()
    pod["spec"]["hostIPC"] = True
    warning = "shm-size ignored: hostIPC pods share the host's /dev/shm"

    check, _ = verdict(
        pod,
        Outcome(stored=stored_unchanged(pod), warnings=(warning,)),
        namespace=namespace("ml", **{"shm-injection": "enabled"}),
        entries=entries(chart),
        policy=Policy(),
        name="probe",
    )

    assert check.message == f"not changed: the webhook left it alone: {warning}"


def test_a_mutated_pod_reports_its_volume_memory_and_status_annotation(chart: Chart) -> None:
    pod = submitted()
    pod["metadata"]["name"] = "shm-webhook-check-q8v4z"
    stored = apply_patch(pod, plan(pod, Policy()).ops)  # what the webhook's patch makes of it

    check, result = verdict(
        pod,
        Outcome(stored=stored),
        namespace=namespace("ml", **{"shm-injection": "enabled"}),
        entries=entries(chart),
        policy=Policy(),
        name="probe",
    )

    assert check.level == "ok"
    assert check.message == (
        "/dev/shm 64Mi (emptyDir dshm, medium Memory), mounted in probe; memory: probe"
        " request 16Mi → 80Mi, limit 16Mi → 80Mi"
    )
    status = stored["metadata"]["annotations"]["shm-injection-status"]
    assert check.details == (f"shm-injection-status: {status}",)
    assert result == {
        "namespace": "ml",
        "mutated": True,
        "warnings": [],
        "pod": "shm-webhook-check-q8v4z",
        "volume": "dshm",
        "sizeLimit": "64Mi",
        "memory": [{"container": "probe", "request": ("16Mi", "80Mi"), "limit": ("16Mi", "80Mi")}],
        "status": status,
    }


@pytest.mark.parametrize(
    ("code", "message", "said", "hint"),
    [
        pytest.param(
            400,
            'admission webhook "w" denied the request: shm-size "8GB" is not a Kubernetes'
            " quantity; write 8Gi or 8G",
            'denied: admission webhook "w" denied the request: shm-size "8GB"',
            "the webhook refuses this pod",
            id="denied by the webhook",
        ),
        pytest.param(
            500,
            'Internal error occurred: failed calling webhook "w": failed to call webhook: Post'
            ' "https://127.0.0.1:1/mutate?timeout=3s": dial tcp 127.0.0.1:1: connect: connection'
            " refused",
            "the kube-apiserver could not call the webhook: Internal error occurred: failed"
            ' calling webhook "w"',
            "the webhook cannot be reached",
            id="the webhook unreachable",
        ),
        pytest.param(
            500,
            'Internal error occurred: failed calling webhook "w": failed to call webhook: Post'
            ' "https://127.0.0.1:1/mutate?timeout=3s": tls: failed to verify certificate: x509:'
            " certificate signed by unknown authority",
            "the kube-apiserver could not call the webhook:",
            "the kube-apiserver does not accept the certificate",
            id="the served certificate not trusted",
        ),
        pytest.param(
            403,
            'pods is forbidden: User "alice" cannot create resource "pods" in API group "" in'
            ' the namespace "ml"',
            'cannot dry-run a pod in namespace ml: pods is forbidden: User "alice"',
            "the end-to-end probe needs create on pods in ml (a dry run still needs RBAC)",
            id="no right to create pods",
        ),
        pytest.param(
            404,
            'namespaces "ml" not found',
            'namespace ml does not exist: namespaces "ml" not found',
            "name another with --namespace",
            id="no such namespace",
        ),
    ],
)
def test_a_refused_dry_run_quotes_the_apiserver_and_says_what_to_look_at(
    code: int, message: str, said: str, hint: str
) -> None:
    check, result = verdict(
        submitted(),
        Outcome(code=code, message=message),
        namespace=None,
        entries=[],
        policy=Policy(),
        name="probe",
    )

    assert check.level == "fail"
    assert check.message.startswith(said)
    assert message in check.message  # verbatim
    assert check.hint.startswith(hint)
    assert result["error"] == message


def test_the_probe_pod_asks_for_64mi_under_the_configured_annotation() -> None:
    pod = probe_pod(namespace="ml", annotation="example.com/shm-size")

    assert pod["metadata"] == {
        "generateName": "shm-webhook-check-",
        "namespace": "ml",
        "annotations": {"example.com/shm-size": "64Mi"},
    }
    assert [c["name"] for c in pod["spec"]["containers"]] == ["probe"]


@pytest.mark.parametrize(
    ("document", "namespace_named"),
    [
        pytest.param(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "trainer",
                    "namespace": "ml",
                    "uid": "1234",
                    "resourceVersion": "99",
                    "labels": {"app": "t"},
                    "annotations": {"shm-size": "1Gi"},
                },
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
                "status": {"phase": "Running"},
            },
            "ml",
            id="a Pod as kubectl get prints it",
        ),
        pytest.param(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "trainer"},
                "spec": {
                    "template": {
                        "metadata": {"labels": {"app": "t"}, "annotations": {"shm-size": "1Gi"}},
                        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
                    }
                },
            },
            None,
            id="a Deployment's pod template",
        ),
    ],
)
def test_a_user_pod_keeps_labels_annotations_and_spec_and_gets_a_generated_name(
    document: dict[str, Any], namespace_named: str | None
) -> None:
    pod, named = user_pod(document, source="pod.yaml")

    assert named == namespace_named
    assert pod == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "labels": {"app": "t"},
            "annotations": {"shm-size": "1Gi"},
            "generateName": PROBE_PREFIX,
        },
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }


def test_an_object_that_makes_no_pod_is_refused_naming_the_file() -> None:
    with pytest.raises(ValueError, match=r"pod\.yaml: a Service makes no pod"):
        user_pod({"kind": "Service", "metadata": {"name": "s"}}, source="pod.yaml")


@pytest.mark.parametrize(
    ("header", "text"),
    [
        pytest.param('299 - "shm-size ignored: x"', "shm-size ignored: x", id="a warning"),
        pytest.param('299 - "say \\"hi\\""', 'say "hi"', id="escaped quotes"),
        pytest.param("not a warning header", "not a warning header", id="kept as it is"),
    ],
)
def test_warning_headers_are_read_as_kubectl_prints_them(header: str, text: str) -> None:
    assert parse_warning(header) == text
