"""The volume and mount ops of a mutation, and the names they need.

Owns: `mount_ops` (a mount for every container without something at the mount path),
`append` (an array element, creating the array when missing), `memory_volume`,
`free_volume_name` (the wanted name, or the first free `name-N`), `volume_names`,
`container_name` and `kept_warning`. Pure: the standard library and the pod field readers.
"""

from __future__ import annotations

from typing import Any

from webhook import patches
from webhook.podfields import Json, objects, string, uses_path


def mount_ops(
    spec: Json, volume: str, mount_path: str
) -> tuple[list[patches.Op], list[tuple[str, int]], list[str]]:
    """Mount ops for every container without something at the mount path, the (kind, index)
    of those containers, and the names of the containers that keep their own."""
    ops, mounted, kept = [], [], []
    mount = {"name": volume, "mountPath": mount_path}
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(objects(spec.get(kind), f"spec.{kind}")):
            where = f"spec.{kind}[{index}]"
            name = string(container.get("name"), f"{where}.name")
            if uses_path(container, mount_path, where):
                kept.append(name)
                continue
            base = f"/spec/{kind}/{index}"  # no `~` or `/` to escape (patches.pointer)
            ops.append(append(container, "volumeMounts", mount, base=base))
            mounted.append((kind, index))
    return ops, mounted, kept


def append(obj: Json, key: str, item: Any, *, base: str) -> patches.Op:
    """Append to obj[key], creating the array when it is missing (JSON patch cannot)."""
    if obj.get(key) is None:
        return patches.add(f"{base}/{key}", [item])
    return patches.add(f"{base}/{key}/-", item)


def memory_volume(name: str, size: str) -> dict[str, Any]:
    return {"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": size}}


def volume_names(spec: Json) -> set[str]:
    volumes = objects(spec.get("volumes"), "spec.volumes")
    return {string(v.get("name"), f"spec.volumes[{i}].name") for i, v in enumerate(volumes)}


def free_volume_name(spec: Json, wanted: str) -> str:
    taken = volume_names(spec)
    suffix = 0
    name = wanted
    while name in taken:
        suffix += 1
        # A volume name is a DNS label: at most 63 characters, suffix included.
        name = f"{wanted[: 62 - len(str(suffix))].rstrip('-')}-{suffix}"
    return name


def container_name(spec: Json, kind: str, index: int) -> str:
    return str(spec[kind][index]["name"])


def kept_warning(kept: list[str], mount_path: str) -> list[str]:
    if not kept:
        return []
    if len(kept) == 1:
        return [f"container {kept[0]} already mounts {mount_path}; kept as it is"]
    return [f"containers {', '.join(kept)} already mount {mount_path}; kept as they are"]
