"""The pods the differential test sends through both engines (docs/policy-engine.md).

Owns: `VARIANTS` (the settings each engine pair runs with), `Shape` (a pod, the variant it
runs under, the annotations of its own namespace when it needs some, and the parity-table
case id of the difference it shows, when the table lists one) and `CORPUS`: the rule tables'
pods, sidecars, pod-level resources, existing /dev/shm, name clashes, invalid and capped
sizes, reinvocations, namespace defaults and ceilings, and the real captured pods in
`../shared` when it is checked out.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.cluster import container

SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real"
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


def _volumes_and_mounts() -> list[Shape]:
    return [
        Shape("a single container gets /dev/shm", pod(annotations=shm())),
        Shape(
            "every container and init container gets /dev/shm",
            pod(container("a"), container("b"), init=[container("setup")], annotations=shm()),
        ),
        Shape(
            "a restartable sidecar gets /dev/shm too",
            pod(init=[container("proxy", restartPolicy="Always")], annotations=shm()),
        ),
        Shape(
            "existing mounts and volumes are appended to",
            pod(container("main", **at("/data")), volumes=OWN, annotations=shm()),
        ),
        Shape(
            "a container's own /dev/shm is kept, with a warning",
            pod(
                container("main"),
                container("side", **at("/dev/shm")),
                volumes=OWN,
                annotations=shm(),
            ),
        ),
        Shape(
            "/dev/shm/ with a trailing slash is the same directory",
            pod(
                container("main"),
                container("side", **at("/dev/shm/")),
                volumes=OWN,
                annotations=shm(),
            ),
        ),
        Shape(
            "/dev//shm is the same directory",
            pod(
                container("main"),
                container("side", **at("/dev//shm")),
                volumes=OWN,
                annotations=shm(),
            ),
        ),
        Shape(
            "/dev/x/../shm is the same directory",
            pod(
                container("main"),
                container("side", **at("/dev/x/../shm")),
                volumes=OWN,
                annotations=shm(),
            ),
        ),
        Shape(
            "//dev/shm is another path (POSIX keeps two leading slashes)",
            pod(
                container("main"),
                container("side", **at("//dev/shm")),
                volumes=OWN,
                annotations=shm(),
            ),
        ),
        Shape(
            "a block device at /dev/shm is kept",
            pod(
                container("main"),
                container("raw", volumeDevices=[{"name": "blk", "devicePath": "/dev/shm"}]),
                volumes=[{"name": "blk", "persistentVolumeClaim": {"claimName": "c"}}],
                annotations=shm(),
            ),
        ),
        Shape(
            "every container keeps its own /dev/shm: nothing changes, one warning",
            pod(
                container("a", **at("/dev/shm")),
                container("b", **at("/dev/shm")),
                init=[container("c", **at("/dev/shm"))],
                volumes=OWN,
                annotations=shm(),
            ),
        ),
        Shape(
            "only the init container has its own /dev/shm",
            pod(init=[container("setup", **at("/dev/shm"))], volumes=OWN, annotations=shm()),
        ),
        Shape(
            "a volume named dshm that is not ours: dshm-1",
            pod(volumes=[{"name": "dshm", "emptyDir": {}}], annotations=shm()),
        ),
        Shape(
            "dshm and dshm-1 taken: dshm-2",
            pod(
                volumes=[{"name": "dshm", "emptyDir": {}}, {"name": "dshm-1", "emptyDir": {}}],
                annotations=shm(),
            ),
        ),
        Shape(
            "twelve containers all get the mount",
            pod(*(container(f"c{i}") for i in range(12)), annotations=shm()),
        ),
        Shape(
            "a pod made from a template, with a generateName",
            pod(annotations=shm("1Gi")),
            generate_name=True,
        ),
    ]


def _memory() -> list[Shape]:
    def one(name: str, resources: dict[str, Any], size: str = "2Gi", **spec: Any) -> Shape:
        return Shape(
            name, pod(container("main", resources=resources), annotations=shm(size), **spec)
        )

    return [
        one("a limit and a request both grow (Guaranteed stays Guaranteed)", mem("1Gi", "1Gi")),
        one("a request alone grows", mem("512Mi")),
        one("no resources: a request of the size is created", {}),
        one("a cpu request only: a memory request is added", mem(cpu="100m")),
        one("a decimal limit plus a binary size", mem(limit="2G")),
        one("a size of 1.5Gi is written 1536Mi", mem("1Gi"), size="1.5Gi"),
        one("a size of 1e9 stays in exponent form", mem("1e9"), size="1e9"),
        one("a size of 1500M stays 1500M", mem("1G"), size="1500M"),
        one("a fractional request rounds up", mem("1.5"), size="1Ki"),
        one("a request of 0 becomes the size", mem("0"), size="1Gi"),
        Shape(
            "the default-container annotation names the charged container",
            pod(
                container("side", resources=mem("1Gi")),
                container("main", resources=mem("1Gi")),
                annotations=shm("2Gi", **{"kubectl.kubernetes.io/default-container": "main"}),
            ),
        ),
        Shape(
            "a default-container naming no container: the first is charged",
            pod(
                container("a", resources=mem("1Gi")),
                container("b"),
                annotations=shm("2Gi", **{"kubectl.kubernetes.io/default-container": "zz"}),
            ),
        ),
        Shape(
            "the default container keeps its own /dev/shm: the next mounted one pays",
            pod(
                container("main", **at("/dev/shm")),
                container("worker", resources=mem("1Gi")),
                volumes=OWN,
                annotations=shm("2Gi"),
            ),
        ),
        Shape(
            "pod-level resources grow with the charged container",
            pod(
                container("main", resources=mem("1Gi", "2Gi")),
                resources={"requests": {"memory": "1Gi"}, "limits": {"memory": "4Gi"}},
                annotations=shm("2Gi"),
            ),
        ),
        Shape(
            "pod-level resources without memory stay as they are",
            pod(
                container("main", resources=mem("1Gi")),
                resources={"requests": {"cpu": "1"}},
                annotations=shm("2Gi"),
            ),
        ),
    ]


INVALID = [
    "8GB",
    "8gi",
    " 1Gi",
    "",
    "Gi",
    "100m",
    "-1Gi",
    "0.5",
    "8Ei",
    "1e2000",
    "2.5 g",
    "12_Gi",
    "1u",
    "a-very-long-value-that-is-not-a-size-at-all",
    "\uff18Gi",  # a fullwidth digit
    "  8Gi  ",
    "8Gb",
    "8KB",
    "8kib",
    "1.5.5Gi",
    "+-1Gi",
    "1e",
    "0x10",
    "0.000001",
    "1.5m",
    "1n",
    "\u00a08Gi",
    "\u001c8Gi",
    "e3",
    "1e1001",
    "1" * 1001,
    "8" + "x" * 200_000,
]


def _sizes() -> list[Shape]:
    shapes = [
        Shape(f"the size {value!r} is refused", pod(annotations=shm(value))) for value in INVALID
    ]
    return [
        *shapes,
        Shape(
            "1e4294967301 is 1e5: its exponent wraps to 32 bits, as apimachinery reads it",
            pod(annotations=shm("1e4294967301")),
        ),
        Shape("a size of 1.5 bytes rounds up to 2", pod(annotations=shm("1.5"))),
        Shape("a size of 1E is an exabyte", pod(annotations=shm("1E"))),
        Shape("a size of +512Mi", pod(annotations=shm("+512Mi"))),
        Shape("a size of 0 opts the pod out", pod(annotations=shm("0"))),
        Shape("a size of 0Gi opts the pod out", pod(annotations=shm("0Gi"))),
        Shape("a pod without the annotation is left alone", pod()),
        Shape(
            "a size with a line break",
            pod(annotations=shm("8\nGi")),
            differs="line-break",
        ),
        Shape("above the ceiling is refused", pod(annotations=shm("64Gi")), variant="capped"),
        Shape("the ceiling itself is allowed", pod(annotations=shm("16Gi")), variant="capped"),
        Shape("a decimal size over the ceiling", pod(annotations=shm("17.5G")), variant="capped"),
        Shape("a pod without the annotation gets the default size", pod(), variant="sized"),
        Shape("0 opts out even with a default size", pod(annotations=shm("0")), variant="sized"),
        Shape(
            "an invalid size is refused with a default size",
            pod(annotations=shm("x")),
            variant="sized",
        ),
        Shape(
            "an unannotated hostIPC pod: no warning",
            pod(hostIPC=True),
            variant="sized",
        ),
        Shape(
            "an invalid size is admitted with a warning",
            pod(annotations=shm("8GB")),
            variant="warn",
        ),
        Shape(
            "over the ceiling, admitted with a warning",
            pod(annotations=shm("20Gi")),
            variant="warn",
        ),
        Shape(
            "a long invalid size, warned cut to 120 characters",
            pod(annotations=shm("x" * 100)),
            variant="warn",
        ),
    ]


def _left_alone() -> list[Shape]:
    return [
        Shape("a hostIPC pod is left alone, with a warning", pod(hostIPC=True, annotations=shm())),
        Shape(
            "a hostIPC pod with an invalid size is admitted",
            pod(hostIPC=True, annotations=shm("8GB")),
        ),
        Shape(
            "a Windows pod is left alone",
            pod(os={"name": "windows"}, annotations=shm()),
        ),
        Shape(
            "a mirror pod is left alone",
            pod(nodeName="node-1", annotations=shm("1Gi", **{"kubernetes.io/config.mirror": "x"})),
        ),
        Shape(
            "a pod the API server's validation refuses, with a warning",
            pod(annotations=shm("1Gi", **{"kubernetes.io/config.mirror": "x"})),
            differs="warnings-of-invalid-pods",
        ),
        Shape(
            "a pod labelled shm-injection=disabled reaches neither engine",
            pod(labels={"shm-injection": "disabled"}, annotations=shm("8GB")),
        ),
        Shape(
            "an empty annotation on a hostIPC pod: no warning",
            pod(hostIPC=True, annotations=shm("")),
        ),
    ]


def _repeats() -> list[Shape]:
    status = {"shm-size": "2Gi", "shm-injection-status": STATUS}
    return [
        Shape(
            "a pod created again from its own stored form needs nothing",
            pod(container("main", **MOUNTED), volumes=[DSHM], annotations=status),
        ),
        Shape(
            "a pod that lost its volume gets it back with the recorded size",
            pod(container("main", **MOUNTED), annotations={**status, "shm-size": "4Gi"}),
        ),
        Shape(
            "a container added since gets the mount; the status lists it",
            pod(
                container("main", **MOUNTED), container("late"), volumes=[DSHM], annotations=status
            ),
        ),
        Shape(
            "a status annotation that is not JSON is replaced",
            pod(annotations={"shm-size": "1Gi", "shm-injection-status": "not json"}),
        ),
        Shape(
            "a status annotation in another JSON layout",
            pod(
                container("main", **MOUNTED),
                volumes=[DSHM],
                annotations={**status, "shm-injection-status": STATUS.replace(",", ", ")},
            ),
            differs="status-layout",
        ),
        Shape(
            "a pod arriving with a status and a container keeping its own /dev/shm",
            pod(
                container("main", **MOUNTED),
                container("side", **at("/dev/shm")),
                volumes=[DSHM, *OWN],
                annotations=status,
            ),
            differs="given-status-warnings",
        ),
        Shape(
            "a sidecar added by a later policy gets the mount (reinvocation)",
            pod(
                container("main", resources=mem("1Gi")),
                labels=SIDECAR_LABEL,
                annotations=shm("1Gi"),
            ),
        ),
    ]


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
    one = lambda name, resources, size: Shape(  # noqa: E731
        name, pod(container("main", resources=resources), annotations=shm(size))
    )
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
    *_volumes_and_mounts(),
    *_memory(),
    *_sizes(),
    *_left_alone(),
    *_repeats(),
    *_variants(),
    *_namespaces(),
    *_edges(),
    *_captured(),
]
