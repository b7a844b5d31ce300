"""`shm-webhook mutate`: what the webhook would do to the objects of a manifest, without a cluster.

Owns: reading a manifest (JSON, or YAML of one or more documents), finding the pod in each
object (a Pod, the pod template of a workload, the object of an AdmissionReview), previewing it
with the same `review.respond` step as `/mutate`, and writing the result. Imports `yaml` and
`jsonpatch` only when it needs them; must not import the server or the Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from webhook import patches
from webhook.mutation import InvalidObject, plan
from webhook.podfields import object_name
from webhook.policy import Policy
from webhook.review import WebhookError, check_review, planned_pod, respond

# Where each kind keeps the pod it makes: the whole object for a Pod, else its template.
POD_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "PodTemplate": ("template",),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "AdmissionReview": ("request", "object"),
}


class InputError(ValueError):
    """The manifest cannot be previewed; the message is one line naming the object."""


@dataclass
class Preview:
    """One document's result: the object to print, the ops relative to it, what to say."""

    document: dict[str, Any]
    ops: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    denial: str | None = None


def decode(text: bytes, filename: str) -> tuple[list[dict[str, Any]], bool]:
    """The documents of the input, and whether it was JSON (else YAML, maybe several)."""
    try:
        documents, as_json = [orjson.loads(text)], True
    except orjson.JSONDecodeError:
        import yaml  # only for YAML input

        try:
            documents = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise InputError(f"{filename} is neither JSON nor YAML{where}") from None
        as_json = False
    if not documents:
        raise InputError(f"{filename} holds no object")
    for number, document in enumerate(documents, start=1):
        if not isinstance(document, dict) or not isinstance(document.get("kind"), str):
            raise InputError(f"{filename}: document {number} is not a Kubernetes object (no kind)")
    return documents, as_json


def preview(document: dict[str, Any], policy: Policy) -> Preview:
    """What the webhook would answer for the pod this object makes."""
    kind = document["kind"]
    who = f"{kind}/{_name(document)}"
    path = POD_PATHS.get(kind)
    if path is None:
        return Preview(document, warnings=[f"{who}: not a pod or pod template; left unchanged"])
    pod = _pod(document, path, who=who)
    if pod is None:
        return Preview(document, warnings=[f"{who}: not a Pod CREATE; the webhook allows it as is"])
    try:
        response = respond(plan(pod, policy))
    except InvalidObject as error:
        raise InputError(f"{who}: {error}") from None
    warnings = [f"{who}: {warning}" for warning in response.warnings]
    if not response.allowed:
        return Preview(document, warnings=warnings, denial=f"{who}: {response.message}")
    prefix = patches.pointer(*path)
    ops = [{**op, "path": prefix + op["path"]} for op in response.patch]
    return Preview(_apply(document, ops), ops=ops, warnings=warnings)


def encode(documents: list[dict[str, Any]], *, as_json: bool) -> str:
    """The documents as the input was written: indented JSON, or YAML documents."""
    if as_json:
        return "".join(
            orjson.dumps(d, option=orjson.OPT_INDENT_2).decode() + "\n" for d in documents
        )
    import yaml

    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True) if documents else ""


def _pod(document: dict[str, Any], path: tuple[str, ...], *, who: str) -> Mapping[str, Any] | None:
    """The pod (or pod template, with its metadata) that the webhook would see."""
    if document["kind"] == "AdmissionReview":
        try:
            return planned_pod(check_review(document))
        except WebhookError as error:
            raise InputError(f"{who}: {error.message}") from None
    pod: object = document
    for key in path:
        pod = pod.get(key) if isinstance(pod, dict) else None
    if not isinstance(pod, dict):
        raise InputError(f"{who}: {'.'.join(path)} is missing or not an object")
    return pod


def _apply(document: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    import jsonpatch  # the same RFC 6902 semantics the kube-apiserver applies

    return jsonpatch.apply_patch(document, ops)  # type: ignore[no-any-return]


def _name(document: Mapping[str, Any]) -> str:
    if document.get("kind") == "AdmissionReview":
        request = document.get("request")
        pod = request.get("object") if isinstance(request, dict) else None
        return _name(pod) if isinstance(pod, dict) else "(no object)"
    return object_name(document) or "(unnamed)"
