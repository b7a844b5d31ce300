"""`shm-webhook mutate`: what the webhook would do to the objects of manifests, without a cluster.

Owns: reading manifests (files or directories of JSON or YAML, `-` for stdin), finding the pod
of each object (a Pod, the pod template of a workload, the object of an AdmissionReview, the
items of a `List` or `PodList`), previewing it with the same `review.respond` step as
`/mutate` under the policy of its namespace when a Namespace object is given, the one-line
report per object, and writing the objects back. Imports `yaml` and
`jsonpatch` only when it needs them; must not import the server or the Kubernetes client.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from webhook import patches
from webhook.mutation import InvalidObject, Plan, plan
from webhook.namespaces import NamespaceReading, read_namespace
from webhook.podfields import object_name
from webhook.policy import NamespacePolicy, Percent, Policy, Reason
from webhook.quantity import Format, Quantity, format_bytes, to_bytes
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
MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")


class InputError(ValueError):
    """The manifests cannot be previewed; the message is one line naming the file or object."""


@dataclass
class Preview:
    """One object's result: the object as the webhook leaves it (as it came when skipped or
    denied), the ops relative to the input, and the report lines, the summary first."""

    document: dict[str, Any]
    ops: list[dict[str, Any]] = field(default_factory=list)
    report: list[str] = field(default_factory=list)
    denied: bool = False


def read(names: Sequence[str]) -> tuple[list[dict[str, Any]], bool]:
    """The objects of every named file (a directory: its manifests, by name), and whether all
    the input was JSON (then the output is too)."""
    documents: list[dict[str, Any]] = []
    all_json = True
    for name in names:
        for source, text in _texts(name):
            found, as_json = decode(text, source)
            documents += found
            all_json = all_json and as_json
    return documents, all_json


def decode(text: bytes, filename: str) -> tuple[list[dict[str, Any]], bool]:
    """The documents of one input, and whether it was JSON (else YAML, maybe several)."""
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


class Namespaces:
    """The Namespace objects given to `mutate`, read as the webhook reads them."""

    def __init__(self, documents: list[dict[str, Any]], policy: Policy) -> None:
        self.readings = {
            reading.name: reading
            for reading in (
                read_namespace(d, policy) for d in documents if d["kind"] == "Namespace"
            )
        }

    def policy_for(self, document: Mapping[str, Any]) -> NamespacePolicy | None:
        """The policy of the object's namespace; an object that names none gets the policy of
        the only Namespace given, if only one was."""
        metadata = document.get("metadata")
        name = metadata.get("namespace") if isinstance(metadata, dict) else None
        if name is None and len(self.readings) == 1:
            name = next(iter(self.readings))
        reading = self.readings.get(name) if isinstance(name, str) else None
        return None if reading is None else reading.policy


def preview(
    document: dict[str, Any], policy: Policy, namespaces: Namespaces | None = None
) -> Preview:
    """What the webhook would answer for the pod (or pods, for a list) this object makes."""
    namespaces = namespaces or Namespaces([], policy)
    items = document.get("items")
    if document["kind"].endswith("List") and isinstance(items, list):
        return _preview_list(document, items, policy, namespaces)
    kind = document["kind"]
    who = f"{kind.lower()}/{_name(document)}"
    if kind == "Namespace" and _name(document) in namespaces.readings:
        return Preview(document, report=_namespace_report(namespaces.readings[_name(document)]))
    path = POD_PATHS.get(kind)
    if path is None:
        return Preview(document, report=[f"{who}: skipped: not a pod or pod template"])
    pod = _pod(document, path, who=who)
    if pod is None:
        return Preview(document, report=[f"{who}: skipped: {Reason.NOT_A_POD_CREATE.description}"])
    try:
        result = plan(pod, policy, namespaces.policy_for(document))
    except InvalidObject as error:
        raise InputError(f"{who}: {error}") from None
    response = respond(result)
    report = [f"{who}: {_summary(result, document, path, policy)}"]
    report += [f"{who}: warning: {warning}" for warning in response.warnings]
    if not response.allowed:
        return Preview(document, report=report, denied=True)
    prefix = patches.pointer(*path)
    ops = [{**op, "path": prefix + op["path"]} for op in response.patch]
    return Preview(_apply(document, ops) if ops else document, ops=ops, report=report)


def encode(documents: list[dict[str, Any]], *, as_json: bool) -> str:
    """The documents as the input was written: indented JSON, or YAML documents."""
    if as_json:
        return "".join(
            orjson.dumps(d, option=orjson.OPT_INDENT_2).decode() + "\n" for d in documents
        )
    import yaml

    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True) if documents else ""


def _texts(name: str) -> list[tuple[str, bytes]]:
    if name == "-":
        return [("stdin", sys.stdin.buffer.read())]
    path = Path(name)
    try:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in MANIFEST_SUFFIXES)
            if not files:
                raise InputError(f"{name} holds no .json, .yaml or .yml file")
            return [(str(file), file.read_bytes()) for file in files]
        return [(name, path.read_bytes())]
    except OSError as error:
        raise InputError(f"cannot read {error.filename or name}: {error.strerror}") from None


def _preview_list(
    document: dict[str, Any], items: list[Any], policy: Policy, namespaces: Namespaces
) -> Preview:
    """A `List` (what `kubectl get -o yaml` prints) or a typed list such as `PodList`, whose
    items may omit their kind."""
    item_kind = document["kind"].removesuffix("List") or None
    result = Preview(document={**document, "items": []})
    for index, item in enumerate(items):
        kindless = isinstance(item, dict) and "kind" not in item and item_kind is not None
        if kindless:
            item = {"kind": item_kind, **item}
        if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
            raise InputError(f"{document['kind']} item {index} is not a Kubernetes object")
        one = preview(item, policy, namespaces)
        base = patches.pointer("items", index)
        printed = dict(one.document)
        if kindless:
            del printed["kind"]  # printed as it came; no op touches /kind
        result.document["items"].append(printed)
        result.ops += [{**op, "path": base + op["path"]} for op in one.ops]
        result.report += one.report
        result.denied = result.denied or one.denied
    return result


def _namespace_report(reading: NamespaceReading) -> list[str]:
    who = f"namespace/{reading.name}"
    said = reading.policy
    parts = []
    if said is not None and said.default_size is not None:
        default = said.default_size
        shown = f"{float(default.value):g}%" if isinstance(default, Percent) else _quantity(default)
        parts.append(f"default {shown}")
    if said is not None and said.max_size is not None:
        parts.append(f"ceiling {format_bytes(said.max_size, Format.BINARY_SI)}")
    summary = f"{who}: " + (", ".join(parts) if parts else "no size policy of its own")
    return [summary, *(f"{who}: warning: {problem}" for problem in reading.problems)]


def _quantity(quantity: Quantity) -> str:
    return format_bytes(to_bytes(quantity), quantity.format)


def _summary(
    result: Plan, document: Mapping[str, Any], path: tuple[str, ...], policy: Policy
) -> str:
    status = result.status or {}
    if result.outcome == "denied":
        return f"denied: {result.message}"
    if result.reason is Reason.INJECTED:
        charged = status["charged"]
        memory = (
            f"memory +{status['size']} on {', '.join(charged)}" if charged else "memory unchanged"
        )
        return f"{policy.mount_path} {status['size']}, {memory}"
    if result.reason is Reason.REINVOKED:
        return f"{policy.mount_path} {status['size']} kept; mounted in containers added since"
    if result.reason is Reason.NOT_REQUESTED and path and _annotated(document, policy):
        template = ".".join((*path, "metadata", "annotations"))
        return (
            f"skipped: the {policy.annotation} annotation is on the {document['kind']}'s own"
            f" metadata, where the webhook never sees it; move it to {template}"
        )
    return f"skipped: {result.reason.description}"


def _annotated(document: Mapping[str, Any], policy: Policy) -> bool:
    metadata = document.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    return isinstance(annotations, dict) and policy.annotation in annotations


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
