"""The vocabulary of the differential test's corpus (tests/e2e/parity_corpus.py).

Owns: `Variant` and `VARIANTS` (the settings each engine pair runs with), `Shape` (a pod, the
variant it runs under, the annotations and labels of its own namespace when it needs some,
and the parity-table case id of the difference it shows, when the table lists one), and the
small builders of pods the shapes are written with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.e2e.cluster import container

SIDECAR_LABEL = {"parity-sidecar": "inject"}  # a later policy adds a container (reinvocation)
LONG_VOLUME = "v" * 63


@dataclass(frozen=True)
class Variant:
    name: str
    flags: tuple[str, ...]  # `shm-webhook serve` / `load_settings` flags


VARIANTS = {
    variant.name: variant
    for variant in (
        Variant("default", ()),
        Variant("capped", ("--max-size", "16Gi")),
        Variant("sized", ("--default-size", "1Gi", "--max-size", "16Gi")),
        Variant("percent", ("--default-size", "12.5%")),
        Variant("all", ("--memory-policy", "all")),
        Variant("none", ("--memory-policy", "none")),
        Variant("warn", ("--on-invalid", "warn", "--max-size", "16Gi")),
        Variant("namespaces", ("--namespace-policy", "true", "--max-size", "32Gi")),
        Variant(
            "custom",
            (
                "--annotation",
                "example.com/shm-size",
                "--volume-name",
                "shm",
                "--mount-path",
                "/dev/shm/",
            ),
        ),
        Variant("long", ("--volume-name", LONG_VOLUME)),
    )
}


@dataclass(frozen=True)
class Shape:
    id: str
    pod: dict[str, Any]
    variant: str = "default"
    namespace_annotations: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)
    differs: str | None = None  # the parity table's case id of the difference it shows
    generate_name: bool = False  # created under a generateName, as a controller does


def pod(
    *containers: dict[str, Any],
    init: list[dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A pod (no name or namespace yet: the test gives each engine its own)."""
    metadata: dict[str, Any] = {}
    if annotations is not None:
        metadata["annotations"] = annotations
    if labels is not None:
        metadata["labels"] = labels
    body: dict[str, Any] = {"containers": list(containers or [container("main")]), **spec}
    if init is not None:
        body["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body}


def shm(size: str = "8Gi", **more: str) -> dict[str, str]:
    return {"shm-size": size, **more}


def mem(request: str | None = None, limit: str | None = None, **extra: str) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if request is not None or extra:
        resources["requests"] = {**({"memory": request} if request else {}), **extra}
    if limit is not None:
        resources["limits"] = {"memory": limit}
    return resources


def at(path: str, volume: str = "own") -> dict[str, Any]:
    return {"volumeMounts": [{"name": volume, "mountPath": path}]}


OWN = [{"name": "own", "emptyDir": {}}]
STATUS = '{"size":"2Gi","volume":"dshm","mounted":["main"],"charged":["main"]}'
DSHM = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}
MOUNTED = {"volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}
