"""The pods the differential test sends through both engines (docs/policy-engine.md).

Owns: `CORPUS`, every shape of the test: the rule tables' pods (`tests.e2e.parity_rules`),
the settings' variants, namespace defaults and ceilings, the corners found hunting for
differences, and the real captured pods in `../shared` when it is checked out. The
vocabulary is `tests.e2e.parity_shapes`'.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.e2e.cluster import container
from tests.e2e.parity_rules import RULES
from tests.e2e.parity_shapes import (
    LONG_VOLUME,
    OWN,
    SIDECAR_LABEL,
    VARIANTS,
    Shape,
    Variant,
    at,
    mem,
    pod,
    shm,
)

__all__ = ["CORPUS", "SIDECAR_LABEL", "VARIANTS", "Shape", "Variant"]

SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real"


def _variants() -> list[Shape]:
    limited = container("main", resources=mem("1Gi", "8Gi"))
    return [
        Shape("12.5% of the limit, carved out", pod(limited), variant="percent"),
        Shape(
            "12.5% of the request when there is no limit",
            pod(container("main", resources=mem("4G"))),
            variant="percent",
        ),
        Shape("no memory to take a percentage of", pod(), variant="percent"),
        Shape(
            "an annotated pod is charged as usual",
            pod(limited, annotations=shm("1Gi")),
            variant="percent",
        ),
        Shape(
            "the percentage of the default container",
            pod(
                container("side", resources=mem(limit="1Gi")),
                limited,
                annotations={"kubectl.kubernetes.io/default-container": "main"},
            ),
            variant="percent",
        ),
        Shape(
            "every mounted container is charged",
            pod(
                container("a", resources=mem("1Gi", "2Gi")),
                container("b", resources=mem("1Gi")),
                container("c", **at("/dev/shm")),
                volumes=OWN,
                resources={"limits": {"memory": "8Gi"}},
                annotations=shm("1Gi"),
            ),
            variant="all",
        ),
        Shape(
            "nothing is charged; the limit caps the tmpfs: a warning",
            pod(container("main", resources=mem("512Mi", "1Gi")), annotations=shm("2Gi")),
            variant="none",
        ),
        Shape(
            "an init container's limit counts in the pod's",
            pod(
                container("main", resources=mem(limit="1Gi")),
                init=[container("setup", resources=mem(limit="3Gi"))],
                annotations=shm("2Gi"),
            ),
            variant="none",
        ),
        Shape(
            "another annotation key and volume name",
            pod(annotations={"example.com/shm-size": "1Gi"}),
            variant="custom",
        ),
        Shape(
            "the setting /dev/shm/ matches a mount at /dev/shm",
            pod(
                container("main"),
                container("side", **at("/dev/shm")),
                volumes=OWN,
                annotations={"example.com/shm-size": "1Gi"},
            ),
            variant="custom",
        ),
        Shape(
            "a 63-character volume name clashes: cut to fit its suffix",
            pod(volumes=[{"name": LONG_VOLUME, "emptyDir": {}}], annotations=shm("1Gi")),
            variant="long",
        ),
    ]


def _namespaces() -> list[Shape]:
    defaults = {"shm-injection/defaults": "true"}

    def ns(
        name: str,
        pod_: dict[str, Any],
        annotations: dict[str, str],
        labelled: bool = True,
        differs: str | None = None,
    ) -> Shape:
        return Shape(
            name,
            pod_,
            variant="namespaces",
            namespace_annotations=annotations,
            namespace_labels=defaults if labelled else {},
            differs=differs,
        )

    default = "shm-injection/default-size"
    ceiling = "shm-injection/max-size"
    return [
        ns("a namespace's default size", pod(), {default: "4Gi"}),
        ns(
            "a namespace default without its label does nothing",
            pod(),
            {default: "4Gi"},
            labelled=False,
        ),
        ns("a namespace's ceiling refuses more", pod(annotations=shm("12Gi")), {ceiling: "8Gi"}),
        ns(
            "a namespace cannot loosen the cluster's ceiling",
            pod(annotations=shm("40Gi")),
            {ceiling: "64Gi"},
        ),
        ns("a namespace default above the ceiling is capped", pod(), {default: "64Gi"}),
        ns(
            "a namespace's percentage default",
            pod(container("main", resources=mem(limit="8Gi"))),
            {default: "25%"},
        ),
        ns("a namespace default that does not parse is ignored", pod(), {default: "lots"}),
        ns("a namespace ceiling of 0 is ignored", pod(annotations=shm("20Gi")), {ceiling: "0"}),
        ns(
            "a pod's own size beats the namespace default",
            pod(annotations=shm("1Gi")),
            {default: "4Gi"},
        ),
        ns(
            "a namespace percentage with more decimals than the engine computes",
            pod(container("main", resources=mem(limit="8Gi"))),
            {default: "12.123456789%"},
            differs="percent-decimals",
        ),
    ]


def _edges() -> list[Shape]:
    """Corners found hunting for differences between the engines."""
    own_mount = {"name": "own", "mountPath": "/dev/shm", "subPath": "x"}

    def one(name: str, resources: dict[str, Any], size: str) -> Shape:
        return Shape(name, pod(container("main", resources=resources), annotations=shm(size)))

    return [
        Shape("a size of 1e1000 exceeds what Kubernetes counts", pod(annotations=shm("1e1000"))),
        Shape("a size of 0.0 opts the pod out", pod(annotations=shm("0.0"))),
        Shape("a size of 0e4294967296 is zero", pod(annotations=shm("0e4294967296"))),
        Shape("a size of 5.Gi", pod(annotations=shm("5.Gi"))),
        Shape("the largest size Kubernetes counts", pod(annotations=shm("9223372036854775807"))),
        Shape(
            "a size whose sum with the request exceeds an int64",
            pod(container("main", resources=mem("1Gi")), annotations=shm("9223372036854775807")),
            differs="int64-bytes",
        ),
        Shape(
            "a number of more than 4,096 digits with a unit",
            pod(annotations=shm("1" * 5000 + "GB")),
            differs="long-texts",
        ),
        Shape(
            "/dev/shm/. and ///dev/shm and /../dev/shm are /dev/shm",
            pod(
                container("a", **at("/dev/shm/.")),
                container("b", **at("///dev/shm")),
                container("c", **at("/../dev/shm")),
                container("d"),
                volumes=OWN,
                annotations=shm(),
            ),
        ),
        Shape(
            "a subPath mount at /dev/shm is kept",
            pod(
                container("a", volumeMounts=[own_mount]),
                container("b"),
                volumes=OWN,
                annotations=shm(),
            ),
        ),
        Shape(
            "a long warning naming many containers is cut to 120 characters",
            pod(
                *(container(f"container-with-a-long-name-{i}", **at("/dev/shm")) for i in range(6)),
                container("m"),
                volumes=OWN,
                annotations=shm(),
            ),
        ),
        one("a request of 100m (a tenth of a byte) rounds up", mem("100m"), "1Gi"),
        one("a request of 1e3 plus 1Ki keeps the exponent form", mem("1e3"), "1Ki"),
        one("a limit of 1.5Gi plus 512Mi", mem("1Gi", "1.5Gi"), "512Mi"),
        one("a limit of 0", mem(limit="0"), "1Gi"),
        one("a limit of 1k plus 1Ki", mem(limit="1k"), "1Ki"),
        Shape(
            "a pod-level limit alone gets a pod-level request",
            pod(
                container("main", resources=mem("1Gi", "1Gi")),
                resources={"limits": {"memory": "4Gi"}},
                annotations=shm("1Gi"),
            ),
        ),
        Shape(
            "12.5% of 3 bytes is no /dev/shm",
            pod(container("main", resources=mem(limit="3"))),
            variant="percent",
        ),
        Shape(
            "12.5% of 1e9 keeps the exponent form",
            pod(container("main", resources=mem(limit="1e9"))),
            variant="percent",
        ),
        Shape(
            "a hostIPC pod with an invalid size: the left-alone warning only",
            pod(hostIPC=True, annotations=shm("8GB")),
            variant="warn",
        ),
        Shape(
            "an invalid size and a container's own /dev/shm: the size's warning only",
            pod(container("a", **at("/dev/shm")), volumes=OWN, annotations=shm("8GB")),
            variant="warn",
        ),
        Shape(
            "a namespace percentage capped by the namespace ceiling",
            pod(container("main", resources=mem(limit="1000Gi"))),
            variant="namespaces",
            namespace_annotations={
                "shm-injection/default-size": "50%",
                "shm-injection/max-size": "10Gi",
            },
            namespace_labels={"shm-injection/defaults": "true"},
        ),
        Shape(
            "a namespace ceiling that does not parse is ignored",
            pod(annotations=shm("40Gi")),
            variant="namespaces",
            namespace_annotations={"shm-injection/max-size": "8GB"},
        ),
    ]


def _captured() -> list[Shape]:
    """The pods of the real AdmissionReviews in ../shared, asking for 1Gi."""
    if not SHARED.is_dir():
        return []
    shapes = []
    for path in sorted([*SHARED.glob("*.json"), *SHARED.glob("requests/*.json")]):
        document = json.loads(path.read_text())
        request = document.get("request", document)
        captured = copy.deepcopy(request["object"])
        metadata = captured["metadata"]
        kept = {key: metadata[key] for key in ("labels", "annotations") if key in metadata}
        kept.setdefault("annotations", {})["shm-size"] = "1Gi"
        captured["metadata"] = kept
        captured.pop("status", None)
        captured["spec"].pop("nodeName", None)
        shapes.append(Shape(f"the captured pod {path.stem}", captured))
    return shapes


CORPUS = [
    *RULES,
    *_variants(),
    *_namespaces(),
    *_edges(),
    *_captured(),
]
