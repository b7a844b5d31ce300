"""/dev/shm measured inside running pods: the size the kubelet gave the volume, a write beyond
the container runtime's 64 MiB, and the SIGBUS a too small /dev/shm gives shared memory.

Each pod runs to its end (restartPolicy Never) in the release's in-scope namespace (labelled
`shm-injection: enabled`) or its out-of-scope one, and prints what it measured
(tests/cluster/probes.py). The container's end state is read from the API: exit code,
reason, restart count.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster import probes, report
from tests.cluster.kube import Tools, container_state, finished
from tests.cluster.release import Release

pytestmark = pytest.mark.cluster

RUNTIME_DEFAULT_KIB = 65536  # the 64 MiB /dev/shm containerd, CRI-O and Docker give a pod
WRITE_MIB = 900
SHARED_MIB = 400
ONE_GI = {"shm-size": "1Gi"}


def brief(state: dict[str, Any]) -> str:
    """A container's end as `exit 0 (Completed)`."""
    ended = state.get("terminated")
    return f"exit {ended['exitCode']} ({ended.get('reason')})" if ended else str(state)


def fill(image: str) -> dict[str, Any]:
    """A container with a 512Mi limit writing WRITE_MIB into /dev/shm."""
    return probes.container(
        "fill", image, program=probes.FILL, args=("/dev/shm", str(WRITE_MIB)),
        memory_limit="512Mi",
    )  # fmt: skip


def shared_memory(image: str) -> dict[str, Any]:
    """A container with a 1Gi limit filling SHARED_MIB of shared memory."""
    return probes.container(
        "shm", image, program=probes.SHARED_MEMORY, args=(str(SHARED_MIB),), memory_limit="1Gi"
    )


def run_to_end(tools: Tools, pod: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """`pod` created and run to its end: as stored then, and its log."""
    tools.create(pod).ok()
    name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
    ended = finished(tools, name, namespace=namespace)
    return ended, tools.logs(name, namespace=namespace)


def test_an_annotated_pod_gets_1gi_of_dev_shm_and_takes_900_mib_within_its_raised_limit(
    tools: Tools, chart: Release, test_image: str
) -> None:
    spec = probes.pod_spec([fill(test_image)])
    pod = probes.pod("fill-1gi", namespace=chart.in_scope, spec=spec, annotations=ONE_GI)
    ended, log = run_to_end(tools, pod)
    found = probes.findings(log)
    state, restarts = container_state(ended, "fill")
    report.note(f"shm-size 1Gi, limit 512Mi: {found}, {brief(state)}, {restarts} restarts")
    [stored] = ended["spec"]["containers"]
    assert stored["resources"]["limits"]["memory"] == "1536Mi"  # 512Mi + 1Gi
    assert found["fstype"] == "tmpfs"
    assert found["kib"] == 1048576
    assert found["written"] == WRITE_MIB * probes.MIB
    assert found["error"] is None
    assert restarts == 0
    assert state["terminated"]["exitCode"] == 0, state
    assert state["terminated"]["reason"] == "Completed", state


def test_without_the_raised_limit_the_same_write_into_a_1gi_memory_volume_is_oom_killed(
    tools: Tools, chart: Release, test_image: str
) -> None:
    # The control: the volume the webhook injects, made by hand out of scope, with the limit
    # left at 512Mi. The written pages are charged to the container, so the write needs the
    # limit the webhook adds.
    container = fill(test_image)
    container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    spec = probes.pod_spec([container])
    spec["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}]
    ended, _ = run_to_end(
        tools, probes.pod("fill-unraised", namespace=chart.out_of_scope, spec=spec)
    )
    state, _ = container_state(ended, "fill")
    report.note(f"a 1Gi memory volume by hand, limit 512Mi, the same write: {brief(state)}")
    assert state["terminated"]["reason"] == "OOMKilled", state
    assert state["terminated"]["exitCode"] == 128 + 9


def test_the_same_pod_out_of_scope_has_the_runtimes_64_mib_and_the_write_stops_there(
    tools: Tools, chart: Release, test_image: str
) -> None:
    spec = probes.pod_spec([fill(test_image)])
    pod = probes.pod("fill-1gi", namespace=chart.out_of_scope, spec=spec, annotations=ONE_GI)
    ended, log = run_to_end(tools, pod)
    found = probes.findings(log)
    report.note(f"the same pod out of scope: {found}")
    [stored] = ended["spec"]["containers"]
    assert stored["resources"]["limits"]["memory"] == "512Mi"
    assert probes.shm_volume(ended) is None
    assert found["kib"] == RUNTIME_DEFAULT_KIB
    assert found["written"] == 64 * probes.MIB
    assert found["error"] == "ENOSPC"


def test_400_mib_of_shared_memory_fill_under_shm_size_512mi(
    tools: Tools, chart: Release, test_image: str
) -> None:
    spec = probes.pod_spec([shared_memory(test_image)])
    pod = probes.pod(
        "shared-512mi", namespace=chart.in_scope, spec=spec, annotations={"shm-size": "512Mi"}
    )
    ended, log = run_to_end(tools, pod)
    state, restarts = container_state(ended, "shm")
    report.note(
        f"shared_memory {SHARED_MIB} MiB, shm-size 512Mi: filled {probes.filled_mib(log)} MiB, "
        f"then {brief(state)}"
    )
    assert probes.filled_mib(log) == SHARED_MIB
    assert log.splitlines()[-1] == "done"
    assert (state["terminated"]["exitCode"], restarts) == (0, 0), state


def test_without_the_annotation_the_same_fill_dies_of_sigbus_at_64_mib(
    tools: Tools, chart: Release, test_image: str
) -> None:
    # The failure from the field: DataLoader workers killed by a "bus error" on the 64 MiB
    # /dev/shm the runtime gives every pod.
    spec = probes.pod_spec([shared_memory(test_image)])
    ended, log = run_to_end(tools, probes.pod("shared-none", namespace=chart.in_scope, spec=spec))
    state, _ = container_state(ended, "shm")
    report.note(
        f"shared_memory {SHARED_MIB} MiB, no annotation: filled {probes.filled_mib(log)} MiB, "
        f"then {brief(state)}"
    )
    assert probes.shm_volume(ended) is None
    assert probes.filled_mib(log) == 64
    assert state["terminated"]["exitCode"] == 128 + 7  # SIGBUS
