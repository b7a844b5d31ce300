"""Checks every test applies to a patched pod: the Kubernetes schema plus the cross-field
rules the schema cannot express (the kube-apiserver's own validation would reject these)."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import kubernetes_validate

from webhook.quantity import parse, to_bytes

KUBERNETES_VERSION = "1.35"


def apply_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply RFC 6902 ops to a copy of obj, failing as the kube-apiserver would."""
    return jsonpatch.apply_patch(copy.deepcopy(obj), ops)  # type: ignore[no-any-return]


def all_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod.get("spec") or {}
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def assert_valid_pod(pod: dict[str, Any]) -> None:
    """Schema-valid for Kubernetes 1.35 (strict), unique names and paths, no dangling mounts."""
    obj = {"apiVersion": "v1", "kind": "Pod", **pod}
    obj.setdefault("metadata", {}).setdefault("name", "generated")
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    spec = pod["spec"]
    volume_names = [v["name"] for v in spec.get("volumes") or []]
    assert len(volume_names) == len(set(volume_names)), f"duplicate volume names: {volume_names}"
    for container in all_containers(pod):
        mounts = container.get("volumeMounts") or []
        paths = [m["mountPath"] for m in mounts]
        assert len(paths) == len(set(paths)), f"{container['name']}: duplicate mountPaths {paths}"
        for mount in mounts:
            assert mount["name"] in volume_names, (
                f"{container['name']} mounts missing {mount['name']}"
            )
        assert_request_within_limit(container.get("resources"), container["name"])
    assert_request_within_limit(spec.get("resources"), "pod-level resources")


def assert_request_within_limit(resources: dict[str, Any] | None, where: str) -> None:
    """The API server rejects a memory request above the memory limit."""
    resources = resources or {}
    request = (resources.get("requests") or {}).get("memory")
    limit = (resources.get("limits") or {}).get("memory")
    if request is not None and limit is not None:
        assert to_bytes(parse(request)) <= to_bytes(parse(limit)), f"{where}: request > limit"
