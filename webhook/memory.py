"""Memory accounting for the tmpfs pages of /dev/shm (docs/behaviour.md#memory-accounting).

Owns: the ops that raise a container's (or the pod-level) memory request and limit by the
shm size, and the pod memory limit the kubelet will cap a memory-backed emptyDir at.
Pure: standard library and the webhook's pure modules only.
"""

from __future__ import annotations

from collections.abc import Sequence

from webhook import patches
from webhook.podfields import Json, mapping, objects, optional_quantity
from webhook.quantity import Format, Quantity, add_bytes, format_bytes, to_bytes


def charge(resources: object, *, path: str, where: str, size: int, fmt: Format) -> list[patches.Op]:
    """Ops adding `size` bytes to the memory request and limit found at `path`.

    A limit is raised only when there is one: creating a limit would cap a pod that had none.
    A missing request becomes the limit plus the size when a limit exists (what Kubernetes
    defaulting would have made of it) and the size otherwise, so the scheduler counts the
    tmpfs pages either way.
    """
    if resources is None:
        return [patches.add(path, {"requests": {"memory": format_bytes(size, fmt)}})]
    fields = mapping(resources, where)
    limits = mapping(fields.get("limits"), f"{where}.limits")
    requests = mapping(fields.get("requests"), f"{where}.requests")
    limit = optional_quantity(limits.get("memory"), f"{where}.limits.memory")
    request = optional_quantity(requests.get("memory"), f"{where}.requests.memory")

    ops = []
    if limit is not None:
        ops.append(patches.replace(f"{path}/limits/memory", add_bytes(limit, size)))
    if request is not None:
        ops.append(patches.replace(f"{path}/requests/memory", add_bytes(request, size)))
        return ops
    new_request = add_bytes(limit, size) if limit is not None else format_bytes(size, fmt)
    if fields.get("requests") is None:
        ops.append(patches.add(f"{path}/requests", {"memory": new_request}))
    else:
        ops.append(patches.add(f"{path}/requests/memory", new_request))
    return ops


def has_memory(resources: object, where: str) -> bool:
    """Whether a pod-level `resources` block sets a memory request or limit."""
    fields = mapping(resources, where)
    return any(
        mapping(fields.get(kind), f"{where}.{kind}").get("memory") is not None
        for kind in ("limits", "requests")
    )


def memory_limit(resources: object, where: str) -> Quantity | None:
    fields = mapping(resources, where)
    limits = mapping(fields.get("limits"), f"{where}.limits")
    return optional_quantity(limits.get("memory"), f"{where}.limits.memory")


def pod_memory_limit(spec: Json, *, added: int = 0) -> int | None:
    """Bytes the kubelet caps the pod's memory at, or None when the pod is unbounded.

    The pod-level limit when set; otherwise, when every container declares a limit, the larger
    of the regular containers' sum (restartable sidecars run beside them) and the largest
    init container, as the kubelet's pod cgroup computes it. `added` is what the patch adds to
    the limits that exist (the charged containers', or the pod-level one).
    """
    pod_level = memory_limit(spec.get("resources"), "spec.resources")
    if pod_level is not None:
        return to_bytes(pod_level) + added
    running: list[int] = []
    init_peaks: list[int] = []
    for field in ("initContainers", "containers"):
        for index, container in enumerate(objects(spec.get(field), f"spec.{field}")):
            limit = memory_limit(container.get("resources"), f"spec.{field}[{index}].resources")
            if limit is None:
                return None
            sidecar = field == "initContainers" and container.get("restartPolicy") == "Always"
            (running if field == "containers" or sidecar else init_peaks).append(to_bytes(limit))
    return max([sum(running) + added, *init_peaks]) if running or init_peaks else None


def charged_indices(*, policy: str, default_index: int | None, mounted: Sequence[int]) -> list[int]:
    """Indices in spec.containers whose memory is raised, among those that got the mount.

    `default-container` charges the default container, or the first mounted regular container
    when the default one kept a /dev/shm of its own: the pages are used by some container
    and the pod's accounting must include them.
    """
    if policy == "none" or not mounted:
        return []
    if policy == "all":
        return list(mounted)
    return (
        [default_index] if default_index is not None and default_index in mounted else [mounted[0]]
    )
