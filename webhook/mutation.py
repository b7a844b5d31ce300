"""What the webhook does to a pod: every rule of docs/behaviour.md, as one pure function.

Owns: `plan(pod, policy) -> Plan` (the JSONPatch ops, warnings and outcome) and the status
annotation. The policy and the reasons are declared in `webhook.policy`, memory accounting
lives in `webhook.memory`, typed field reads in `webhook.podfields`; the API server's limits on
warnings are the envelope's (`webhook.review`). Must not import the web framework, the server
or the Kubernetes client (checked by import-linter).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from webhook import memory, patches
from webhook.podfields import (
    InvalidObject,
    Json,
    mapping,
    objects,
    optional_quantity,
    string_entry,
)
from webhook.policy import NamespacePolicy, Percent, Policy, Reason
from webhook.quantity import Format, Quantity, SizeError, format_bytes, parse_size, to_bytes
from webhook.status import STATUS_ANNOTATION, read_status, status_op
from webhook.volumes import (
    append,
    container_name,
    free_volume_name,
    kept_warning,
    memory_volume,
    mount_ops,
    volume_names,
)

__all__ = ["InvalidObject", "Plan", "plan"]

PlanOutcome = Literal["mutated", "skipped", "denied"]

INJECTION_LABEL = "shm-injection"
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True, slots=True)
class Plan:
    """The decision for one pod."""

    outcome: PlanOutcome
    reason: Reason
    ops: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    message: str = ""  # the denial, when outcome == "denied"
    size: int | None = None  # bytes of /dev/shm this plan gives the pod
    status: Mapping[str, Any] | None = None  # what the status annotation records, when mutated


@dataclass(frozen=True, slots=True)
class _Size:
    bytes: int
    format: Format
    carved: bool  # taken out of the existing memory budget (percentage mode): charge nothing


def plan(pod: Mapping[str, Any], policy: Policy, namespace: NamespacePolicy | None = None) -> Plan:
    """Decide what to do with a pod being created: the ops that give it its /dev/shm, or why not.
    `namespace` is what the pod's namespace says of sizes, when it says anything."""
    metadata = mapping(pod.get("metadata"), "metadata")
    annotations = mapping(metadata.get("annotations"), "metadata.annotations")
    labels = mapping(metadata.get("labels"), "metadata.labels")
    spec = mapping(pod.get("spec"), "spec")
    where = "metadata.annotations"
    requested = string_entry(annotations, policy.annotation, where)
    default_container = string_entry(annotations, DEFAULT_CONTAINER_ANNOTATION, where)

    status = read_status(string_entry(annotations, STATUS_ANNOTATION, where))
    if status is not None:
        return _reinvoke(pod, spec, status, policy)
    reason = _left_alone(labels, annotations, spec)
    if reason is not None:
        warnings = [f"{policy.annotation} ignored: {LEFT_ALONE[reason]}"] if requested else []
        return Plan("skipped", reason, warnings=warnings)
    size = _resolve_size(requested, spec, default_container, _limits(policy, namespace), policy)
    if isinstance(size, Plan):
        return size
    return _inject(pod, spec, default_container, size, policy)


# Why each left-alone pod is left alone, in the warning a pod that asked gets (also the policy
# engine's words, webhook/admission_variables.py).
LEFT_ALONE = {
    Reason.LABEL_OPT_OUT: f"the pod is labelled {INJECTION_LABEL}=disabled",
    Reason.HOST_IPC: "hostIPC pods share the host's /dev/shm",
    Reason.WINDOWS: "Windows pods have no memory-backed emptyDir",
    Reason.MIRROR_POD: "static (mirror) pods cannot be changed",
}


def _left_alone(labels: Json, annotations: Json, spec: Json) -> Reason | None:
    if string_entry(labels, INJECTION_LABEL, "metadata.labels") == "disabled":
        return Reason.LABEL_OPT_OUT
    if spec.get("hostIPC") is True:
        return Reason.HOST_IPC
    if mapping(spec.get("os"), "spec.os").get("name") == "windows":
        return Reason.WINDOWS
    if MIRROR_ANNOTATION in annotations:
        return Reason.MIRROR_POD
    return None


@dataclass(frozen=True, slots=True)
class _Limits:
    """The default size and the ceiling that apply to a pod, and who set the ceiling."""

    default_size: Quantity | Percent | None
    max_size: int | None
    ceiling_of: str  # "" for the cluster's, else "namespace NAME"


def _limits(policy: Policy, namespace: NamespacePolicy | None) -> _Limits:
    if namespace is None:
        return _Limits(policy.default_size, policy.max_size, "")
    default = policy.default_size if namespace.default_size is None else namespace.default_size
    ceiling, owner = policy.max_size, ""
    if namespace.max_size is not None and (ceiling is None or namespace.max_size < ceiling):
        ceiling, owner = namespace.max_size, f"namespace {namespace.name}"
    return _Limits(default, ceiling, owner)


def _resolve_size(
    requested: str | None,
    spec: Json,
    default_container: str | None,
    limits: _Limits,
    policy: Policy,
) -> _Size | Plan:
    if requested is None:
        default = limits.default_size
        if default is None:
            return Plan("skipped", Reason.NOT_REQUESTED)
        if isinstance(default, Quantity):
            # A namespace's default above its ceiling is capped (and reported by the cache).
            size = to_bytes(default)
            if limits.max_size is not None and size > limits.max_size:
                return _Size(limits.max_size, Format.BINARY_SI, carved=False)
            return _Size(size, default.format, carved=False)
        return _percent_of_memory(default, spec, default_container, limits.max_size)
    try:
        quantity = parse_size(requested, field=policy.annotation)
    except SizeError as error:
        return _invalid(str(error), policy)
    size = to_bytes(quantity)
    if size == 0:
        return Plan("skipped", Reason.OPTED_OUT)
    if limits.max_size is not None and size > limits.max_size:
        cap = format_bytes(limits.max_size, Format.BINARY_SI)
        shown = requested if len(requested) <= 24 else requested[:23] + "…"
        of = f" set for {limits.ceiling_of}" if limits.ceiling_of else ""
        return _invalid(
            f'{policy.annotation} "{shown}" exceeds the maximum of {cap}{of}; write at most {cap}',
            policy,
        )
    return _Size(size, quantity.format, carved=False)


def _invalid(message: str, policy: Policy) -> Plan:
    if policy.on_invalid == "deny":
        return Plan("denied", Reason.INVALID_SIZE, message=message)
    return Plan("skipped", Reason.INVALID_SIZE, warnings=[message])


def _percent_of_memory(
    percent: Percent, spec: Json, default_container: str | None, max_size: int | None
) -> _Size | Plan:
    containers = objects(spec.get("containers"), "spec.containers")
    index = _default_container(containers, default_container)
    if index is None:
        return Plan("skipped", Reason.NO_CONTAINERS)
    where = f"spec.containers[{index}].resources"
    resources = mapping(containers[index].get("resources"), where)
    basis = memory.memory_limit(resources, where)
    if basis is None:
        requests = mapping(resources.get("requests"), f"{where}.requests")
        basis = optional_quantity(requests.get("memory"), f"{where}.requests.memory")
    size = math.floor(to_bytes(basis) * percent.value / 100) if basis is not None else 0
    if max_size is not None:
        size = min(size, max_size)
    if basis is None or size <= 0:
        return Plan("skipped", Reason.NO_MEMORY_BASIS)
    return _Size(size, basis.format, carved=True)


def _default_container(containers: Sequence[Json], named: str | None) -> int | None:
    """The container `kubectl.kubernetes.io/default-container` names, else the first one."""
    for index, container in enumerate(containers):
        if container.get("name") == named:
            return index
    return 0 if containers else None


def _inject(
    pod: Mapping[str, Any], spec: Json, default_container: str | None, size: _Size, policy: Policy
) -> Plan:
    containers = objects(spec.get("containers"), "spec.containers")
    volume = free_volume_name(spec, policy.volume_name)
    size_text = format_bytes(size.bytes, size.format)
    mounts, mounted, kept = mount_ops(spec, volume, policy.mount_path)
    if not mounted:
        reason = Reason.ALREADY_MOUNTED if kept else Reason.NO_CONTAINERS
        return Plan("skipped", reason, warnings=kept_warning(kept, policy.mount_path))

    ops = [append(spec, "volumes", memory_volume(volume, size_text), base="/spec"), *mounts]
    charged = (
        []
        if size.carved
        else memory.charged_indices(
            policy=policy.memory_policy,
            default_index=_default_container(containers, default_container),
            mounted=[index for kind, index in mounted if kind == "containers"],
        )
    )
    ops += _charge_ops(spec, containers, charged, size)
    status = {
        "size": size_text,
        "volume": volume,
        "mounted": [container_name(spec, kind, index) for kind, index in mounted],
        "charged": [container_name(spec, "containers", index) for index in charged],
    }
    ops.append(status_op(pod, status))
    limit = memory.pod_memory_limit(spec, added=size.bytes * len(charged))
    warnings = kept_warning(kept, policy.mount_path)
    if limit is not None and limit < size.bytes:
        capped = format_bytes(limit, Format.BINARY_SI)
        warnings.append(
            f"{policy.mount_path} will be capped at {capped} by the pod's memory limit"
            f" (asked {size_text})"
        )
    return Plan(
        "mutated", Reason.INJECTED, ops=ops, warnings=warnings, size=size.bytes, status=status
    )


def _charge_ops(
    spec: Json, containers: Sequence[Json], charged: list[int], size: _Size
) -> list[patches.Op]:
    ops: list[patches.Op] = []
    for index in charged:
        ops += memory.charge(
            containers[index].get("resources"),
            path=f"/spec/containers/{index}/resources",  # nothing to escape (patches.pointer)
            where=f"spec.containers[{index}].resources",
            size=size.bytes,
            fmt=size.format,
        )
    # Pod-level resources bound the containers' sum: they grow by every container's share.
    if charged and memory.has_memory(spec.get("resources"), "spec.resources"):
        ops += memory.charge(
            spec.get("resources"),
            path="/spec/resources",
            where="spec.resources",
            size=size.bytes * len(charged),
            fmt=size.format,
        )
    return ops


def _reinvoke(pod: Mapping[str, Any], spec: Json, status: dict[str, Any], policy: Policy) -> Plan:
    """A pod this webhook already mutated: mount the volume in containers added since, nothing
    more (the memory was charged once, and the status annotation says so)."""
    volume = status["volume"]
    if pod.get("spec") is None:  # nothing to mount into, and nowhere to put a volume
        return Plan("skipped", Reason.ALREADY_INJECTED)
    ops = []
    if volume not in volume_names(spec):
        ops.append(append(spec, "volumes", memory_volume(volume, status["size"]), base="/spec"))
    mounts, mounted, _ = mount_ops(spec, volume, policy.mount_path)
    if not ops and not mounts:
        return Plan("skipped", Reason.ALREADY_INJECTED)
    names = [container_name(spec, kind, index) for kind, index in mounted]
    status = {**status, "mounted": status["mounted"] + names}
    ops += [*mounts, status_op(pod, status)]
    return Plan("mutated", Reason.REINVOKED, ops=ops, status=status)
