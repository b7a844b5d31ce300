"""Typed reads of the Pod fields the webhook looks at.

Owns: `InvalidObject` and the accessors that turn a decoded JSON pod into checked values.
The kube-apiserver only ever sends well-typed pods; anything else (a fuzzer, a hand-written
review, a broken manifest given to `shm-webhook mutate`) gets an error naming the field.
Pure: standard library and `webhook.quantity` only.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from webhook import quantity
from webhook.quantity import Quantity

Json = Mapping[str, Any]
# dict first: a decoded pod holds nothing else, and isinstance against the Mapping ABC alone
# costs a Python-level call each time (~30 times per pod).
_MAPPINGS = (dict, Mapping)


class InvalidObject(ValueError):
    """A field the webhook reads has the wrong type or form; the request is malformed."""


def mapping(value: object, where: str) -> Json:
    """An object field; absent or null reads as empty."""
    if value is None:
        return {}
    if not isinstance(value, _MAPPINGS):
        raise InvalidObject(f"{where} must be an object")
    return value


def objects(value: object, where: str) -> Sequence[Json]:
    """An array of objects; absent or null reads as empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidObject(f"{where} must be an array")
    for index, item in enumerate(value):
        if not isinstance(item, _MAPPINGS):
            raise InvalidObject(f"{where}[{index}] must be an object")
    return value


def string_entry(fields: Json, key: str, where: str) -> str | None:
    """One entry of a labels or annotations map: a string, or None when absent.

    Only the entries the webhook reads are checked, so an odd entry elsewhere in the map (not
    something the API server would send) does not stop the pod.
    """
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidObject(f"{where}[{key!r}] must be a string")
    return value


def string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidObject(f"{where} must be a string")
    return value


def optional_quantity(value: object, where: str) -> Quantity | None:
    """A resource quantity as the API serializes it (a string; JSON numbers are accepted too)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidObject(f"{where} must be a quantity string such as 8Gi")
    try:
        return quantity.parse(str(value))
    except quantity.QuantityError:
        raise InvalidObject(f"{where} {str(value)[:40]!r} is not a Kubernetes quantity") from None


def uses_path(container: Json, path: str, where: str) -> bool:
    """Whether the container already has a volume mount or block device at `path`.

    Paths compare after normalisation: `/dev/shm/` and `/dev//shm` are the same directory to
    the container runtime, even though the API server would accept both beside `/dev/shm`.
    """
    wanted = posixpath.normpath(path)
    for field, key in (("volumeMounts", "mountPath"), ("volumeDevices", "devicePath")):
        for index, item in enumerate(objects(container.get(field), f"{where}.{field}")):
            found = string(item.get(key), f"{where}.{field}[{index}].{key}")
            if posixpath.normpath(found) == wanted:
                return True
    return False


def object_name(document: object) -> str | None:
    """How logs and reports name an object: its name, else its generateName prefix (a
    controller-made pod has no name until the API server gives it one), else None."""
    metadata = document.get("metadata") if isinstance(document, dict) else None
    if not isinstance(metadata, dict):
        return None
    name = metadata.get("name") or metadata.get("generateName")
    return name if isinstance(name, str) else None


def object_owner(document: object) -> str | None:
    """`Kind/name` of the object's controller (the ownerReference with `controller: true`, else
    the first one): the workload a controller-made pod belongs to, or None."""
    metadata = document.get("metadata") if isinstance(document, dict) else None
    references = metadata.get("ownerReferences") if isinstance(metadata, dict) else None
    if not isinstance(references, list):
        return None
    owners = [ref for ref in references if isinstance(ref, dict)]
    owner = next((ref for ref in owners if ref.get("controller") is True), None)
    if owner is None and owners:
        owner = owners[0]
    if (
        owner is None
        or not isinstance(owner.get("kind"), str)
        or not isinstance(owner.get("name"), str)
    ):
        return None
    return f"{owner['kind']}/{owner['name']}"
