"""The end-to-end proof of `shm-webhook check`: a pod created in a server-side dry run, and
what the kube-apiserver made of it, or why it made nothing.

Owns: `probe_pod` (the generated pod: annotated with the configured key and `64Mi`, one tiny
pause container meeting the restricted Pod Security Standard), `user_pod` (the pod of `-f`: a
Pod, or the pod template of a workload, stripped of what a dry-run create would trip on),
`Outcome` (what the dry run returned), `verdict` (the check and the JSON result: the /dev/shm
volume, the memory each container got and the status annotation; or, for a pod left alone,
which selector, label or annotation kept it from the webhook; or the refusal, classified:
denied, webhook not callable, no right to create pods) and `parse_warning` (a `Warning:`
header's text). Pure: the stored pod, the namespace and the entries are parameters.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.diagnose.report import Check, failed, passed
from webhook.diagnose.scope import labels_of, name_of, role
from webhook.diagnose.selectors import explain, first_unmet, remedy
from webhook.policy import Policy
from webhook.preview import POD_PATHS
from webhook.quantity import parse, to_bytes
from webhook.status import STATUS_ANNOTATION, read_status

PROBE_PREFIX = "shm-webhook-check-"
PROBE_SIZE = "64Mi"
PROBE_IMAGE = "registry.k8s.io/pause:3.10"
_WARNING = re.compile(r'^\d{3} \S+ "((?:[^"\\]|\\.)*)"')
_UNREACHABLE = ("connection refused", "no endpoints", "i/o timeout", "deadline exceeded",
                "no route to host", "not found", "no such host", "context canceled")  # fmt: skip

Json = Mapping[str, Any]


@dataclass(frozen=True)
class Outcome:
    """The dry run's answer: the pod as stored, or the refusal's HTTP code and message."""

    stored: dict[str, Any] | None = None
    code: int = 0
    message: str = ""
    warnings: tuple[str, ...] = ()


def probe_pod(*, namespace: str, annotation: str) -> dict[str, Any]:
    container = {
        "name": "probe",
        "image": PROBE_IMAGE,
        "resources": {"requests": {"cpu": "1m", "memory": "16Mi"}, "limits": {"memory": "16Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": PROBE_PREFIX,
            "namespace": namespace,
            "annotations": {annotation: PROBE_SIZE},
        },
        "spec": {
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65535,
                "runAsGroup": 65535,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
        },
    }


def user_pod(document: Json, *, source: str) -> tuple[dict[str, Any], str | None]:
    """The pod a manifest makes, named `shm-webhook-check-...` so the dry run never collides
    with a real pod, and the namespace it names; ValueError for an object that makes none."""
    kind = str(document.get("kind"))
    path = POD_PATHS.get(kind)
    if path is None or kind == "AdmissionReview":
        raise ValueError(f"{source}: a {kind} makes no pod; -f takes a Pod or a workload")
    found: Any = document
    for key in path:
        found = found.get(key) if isinstance(found, Mapping) else None
    if not isinstance(found, Mapping) or not isinstance(found.get("spec"), Mapping):
        raise ValueError(f"{source}: {'.'.join((*path, 'spec')) or 'spec'} is missing")
    given = _mapping(found.get("metadata"))
    metadata: dict[str, Any] = {
        key: copy.deepcopy(given[key]) for key in ("labels", "annotations") if key in given
    }
    metadata["generateName"] = PROBE_PREFIX
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata}
    pod["spec"] = copy.deepcopy(dict(found["spec"]))
    namespace = given.get("namespace") or _mapping(document.get("metadata")).get("namespace")
    return pod, str(namespace) if namespace else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_warning(header: str) -> str:
    """The text of a `Warning` header (`299 - "text"`); the header as is when not in form."""
    match = _WARNING.match(header)
    return re.sub(r"\\(.)", r"\1", match.group(1)) if match else header


def verdict(
    submitted: Json,
    outcome: Outcome,
    *,
    namespace: Json | None,
    entries: Sequence[Json],
    policy: Policy,
    name: str,
) -> tuple[Check, dict[str, Any]]:
    """The probe's check and its JSON result: `namespace`, `mutated`, `warnings`, then either
    `error` (the refusal verbatim), `reason` (why the stored pod is unchanged) or what it got:
    `volume`, `sizeLimit`, `memory` (per container) and `status` (the status annotation)."""
    where = str(submitted["metadata"].get("namespace", ""))
    result: dict[str, Any] = {"namespace": where, "mutated": False}
    result["warnings"] = list(outcome.warnings)
    if outcome.stored is None:
        message, hint = _refusal(outcome, namespace=where)
        result["error"] = outcome.message
        return failed(name, message, hint=hint), result
    stored = outcome.stored
    result["pod"] = stored["metadata"].get("name", "")
    text = _annotations(stored).get(STATUS_ANNOTATION)
    status = read_status(text)
    if status is None or text == _annotations(submitted).get(STATUS_ANNOTATION):
        sent = _sent(entries, namespace=namespace, pod=submitted)
        message, hint = _unchanged(submitted, outcome, namespace, entries, sent, policy)
        result["reason"] = message
        return failed(name, f"not changed: {message}", hint=hint), result
    volumes = {v.get("name"): v for v in stored["spec"].get("volumes") or []}
    empty_dir = (volumes.get(status["volume"]) or {}).get("emptyDir") or {}
    size, memory = empty_dir.get("sizeLimit", ""), _memory(submitted, stored)
    result.update(volume=status["volume"], sizeLimit=size, memory=memory, status=text)
    result["mutated"] = True
    changes = "; ".join(_change(change) for change in memory)
    message = (
        f"{policy.mount_path} {size} (emptyDir {status['volume']}, medium"
        f" {empty_dir.get('medium')}), mounted in {', '.join(status['mounted'])}; memory:"
        f" {changes or 'unchanged'}"
    )
    details = (f"{STATUS_ANNOTATION}: {text}", *(f"warning: {w}" for w in outcome.warnings))
    return passed(name, message, details=details), result


def _change(change: Mapping[str, Any]) -> str:
    """`probe request 16Mi → 80Mi, limit 16Mi → 80Mi`."""
    moves = [
        f"{kind} {change[kind][0] or 'none'} → {change[kind][1]}"
        for kind in ("request", "limit")
        if kind in change
    ]
    return f"{change['container']} {', '.join(moves)}"


def _annotations(pod: Json) -> dict[str, str]:
    return dict((pod.get("metadata") or {}).get("annotations") or {})


def _memory(submitted: Json, stored: Json) -> list[dict[str, Any]]:
    """Per container whose memory changed: {container, request: (before, after), limit: ...}."""
    old = {c.get("name"): c for c in submitted["spec"].get("containers") or []}
    changed = []
    for container in stored["spec"].get("containers") or []:
        was = old.get(container.get("name"), {})
        entry: dict[str, Any] = {"container": container.get("name")}
        limit = ((was.get("resources") or {}).get("limits") or {}).get("memory")
        for key, kind in (("requests", "request"), ("limits", "limit")):
            before = ((was.get("resources") or {}).get(key) or {}).get("memory")
            # The kube-apiserver defaults a missing request to the limit before admission.
            before = limit if before is None and kind == "request" else before
            after = ((container.get("resources") or {}).get(key) or {}).get("memory")
            if after is not None and after != before:
                entry[kind] = (before, after)
        if len(entry) > 1:
            changed.append(entry)
    return changed


def _refusal(outcome: Outcome, *, namespace: str) -> tuple[str, str]:
    message = outcome.message
    if "denied the request" in message:
        return f"denied: {message}", "the webhook refuses this pod: change what the message names"
    if "failed calling webhook" in message:
        said = f"the kube-apiserver could not call the webhook: {message}"
        if "x509" in message or "certificate" in message:
            return said, (
                "the kube-apiserver does not accept the certificate the webhook serves: see the"
                " caBundle and certificate checks above"
            )
        if any(cause in message for cause in _UNREACHABLE):
            return said, (
                "the webhook cannot be reached: see the Service, endpoint and Deployment checks"
                " above (is the process running, are its pods ready?)"
            )
        return said, ""
    if outcome.code == 403 and "cannot create resource" in message:
        return f"cannot dry-run a pod in namespace {namespace}: {message}", (
            f"the end-to-end probe needs create on pods in {namespace} (a dry run still needs"
            f" RBAC): kubectl auth can-i create pods -n {namespace}"
        )
    if outcome.code == 404 and "namespaces" in message:
        return f"namespace {namespace} does not exist: {message}", "name another with --namespace"
    return f"the kube-apiserver refused the pod: {message}", ""


def _sent(entries: Sequence[Json], *, namespace: Json | None, pod: Json) -> list[Json]:
    """The entries whose selectors send the pod (a namespace not read counts as matching)."""
    labels = labels_of(pod)
    return [
        entry
        for entry in entries
        if (
            namespace is None
            or not first_unmet(entry.get("namespaceSelector"), labels_of(namespace))
        )
        and first_unmet(entry.get("objectSelector"), labels) is None
    ]


def _unchanged(
    submitted: Json,
    outcome: Outcome,
    namespace: Json | None,
    entries: Sequence[Json],
    sent: Sequence[Json],
    policy: Policy,
) -> tuple[str, str]:
    """Why a stored pod did not get its /dev/shm, and what to do about it."""
    main = next((e for e in entries if role(e) == "main"), entries[0] if entries else None)
    if not sent and main is not None:
        unselected = _unselected(main, namespace=namespace, pod=submitted)
        if unselected is not None:
            return unselected
    key = policy.annotation
    annotation = _annotations(submitted).get(key)
    by_default = policy.default_size is not None or any(role(e) == "defaults" for e in sent)
    if annotation is None and not by_default:
        return (
            f"the pod has no {key} annotation and no default size applies",
            f"annotate the pod: {key}: 1Gi (in a workload: spec.template.metadata.annotations)",
        )
    if annotation is not None and _is_zero(annotation):
        return f"the pod asks for no shm ({key}: {annotation})", ""
    if outcome.warnings:
        return f"the webhook left it alone: {'; '.join(outcome.warnings)}", ""
    ignoring = [str(e.get("name")) for e in sent if e.get("failurePolicy") == "Ignore"]
    hint = (
        f"failurePolicy Ignore on {', '.join(ignoring)}: when the webhook cannot be called the"
        " pod is created unchanged, silently; see the checks above"
        if ignoring
        else "see the checks above; the kube-apiserver may not have loaded a just-changed"
        " configuration yet"
    )
    names = ", ".join(str(e.get("name")) for e in sent) or "no webhook of the configuration"
    return f"{names} should have changed it", hint


def _unselected(main: Json, *, namespace: Json | None, pod: Json) -> tuple[str, str] | None:
    """Why the main entry's selectors leave the pod out, when they do."""
    entry = main.get("name")
    if namespace is not None:
        labels = labels_of(namespace)
        unmet = first_unmet(main.get("namespaceSelector"), labels)
        if unmet is not None:
            name = name_of(namespace)
            return (
                f"namespace {name} is not in scope of {entry}: it {explain(unmet, labels)}",
                remedy(unmet, kind="namespace", name=name, labels=labels),
            )
    labels = labels_of(pod)
    unmet = first_unmet(main.get("objectSelector"), labels)
    if unmet is None:
        return None
    return (
        f"the pod is not sent by {entry}: it {explain(unmet, labels)} (objectSelector)",
        "the pod opted out; remove the label to opt it in",
    )


def _is_zero(text: str) -> bool:
    try:
        return to_bytes(parse(text)) == 0
    except ValueError:  # not a quantity: the webhook denies it or warns
        return False
