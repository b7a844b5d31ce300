"""The corpus' shapes of the rule tables of docs/behaviour.md: volumes and mounts, memory,
sizes, pods left alone, repeats (tests/e2e/parity_corpus.py assembles the corpus)."""

from __future__ import annotations

from typing import Any

from tests.e2e.cluster import container
from tests.e2e.parity_shapes import (
    DSHM,
    MOUNTED,
    OWN,
    SIDECAR_LABEL,
    STATUS,
    Shape,
    at,
    mem,
    pod,
    shm,
)


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


RULES = [*_volumes_and_mounts(), *_memory(), *_sizes(), *_left_alone(), *_repeats()]
