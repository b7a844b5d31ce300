"""Pods made by controllers get the volume and the mounts: a Deployment's, a StatefulSet's and
a Job's, each from an annotated template with an init container and two containers, every
one of which measures its /dev/shm from inside."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster import probes, report
from tests.cluster.kube import Tools, finished, ready, wait_for
from tests.cluster.release import Release

pytestmark = pytest.mark.cluster

SIZE = "256Mi"
KIB = 262144
CONTAINERS = ("prepare", "app", "sidecar")  # the first is the init container
TIMEOUT_S = 300


def template(kind: str, image: str) -> dict[str, Any]:
    waits = kind != "Job"
    main = probes.MEASURE_AND_WAIT if waits else probes.FILL
    args = ("/dev/shm",) if waits else ("/dev/shm", "0")
    spec = probes.pod_spec(
        [probes.container(name, image, program=main, args=args) for name in CONTAINERS[1:]],
        init_containers=[
            probes.container(CONTAINERS[0], image, program=probes.FILL, args=("/dev/shm", "0"))
        ],
        restart_policy="Always" if waits else "Never",
    )
    labels = {"app": f"shm-{kind.lower()}"}
    return {"metadata": {"labels": labels, "annotations": {"shm-size": SIZE}}, "spec": spec}


def workload(kind: str, *, namespace: str, image: str) -> dict[str, Any]:
    pod_template = template(kind, image)
    name = f"shm-{kind.lower()}"
    spec: dict[str, Any] = {"template": pod_template}
    api = "batch/v1" if kind == "Job" else "apps/v1"
    if kind == "Job":
        spec["backoffLimit"] = 0
    else:
        spec["replicas"] = 1
        spec["selector"] = {"matchLabels": pod_template["metadata"]["labels"]}
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace},
            "spec": spec}  # fmt: skip


def the_pod(tools: Tools, kind: str, *, namespace: str) -> dict[str, Any]:
    selector = f"app=shm-{kind.lower()}"

    def one() -> dict[str, Any] | None:
        pods = tools.items("pods", "-l", selector, namespace=namespace)
        return pods[0] if len(pods) == 1 else None

    found = wait_for(one, what=f"the pod of the {kind}", timeout=TIMEOUT_S)
    name = found["metadata"]["name"]
    if kind == "Job":
        return finished(tools, name, namespace=namespace, timeout=TIMEOUT_S)

    def running() -> dict[str, Any] | None:
        pod = tools.get("pod", name, namespace=namespace)
        return pod if pod is not None and ready(pod) else None

    return wait_for(running, what=f"the {kind}'s pod {name} Ready", timeout=TIMEOUT_S)


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "Job"])
def test_a_controllers_pod_gets_the_volume_and_every_container_measures_it(
    tools: Tools, chart: Release, test_image: str, kind: str
) -> None:
    namespace = chart.in_scope
    tools.apply(workload(kind, namespace=namespace, image=test_image))
    pod = the_pod(tools, kind, namespace=namespace)
    name = pod["metadata"]["name"]
    volume = probes.shm_volume(pod)
    assert volume == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SIZE}}
    every = [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]
    assert [c["name"] for c in every] == list(CONTAINERS)
    for container in every:
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    measured = {
        c: probes.findings(tools.logs(name, namespace=namespace, container=c)) for c in CONTAINERS
    }
    report.note(f"{kind} pod {name}: /dev/shm KiB " + ", ".join(
        f"{c} {m['kib']}" for c, m in measured.items()))  # fmt: skip
    assert {c: (m["fstype"], m["kib"]) for c, m in measured.items()} == dict.fromkeys(
        CONTAINERS, ("tmpfs", KIB)
    )
    if kind == "Job":
        assert pod["status"]["phase"] == "Succeeded"
