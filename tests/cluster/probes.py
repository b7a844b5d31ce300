"""What runs inside the measuring pods, and the pods themselves.

The programs are Python run by `python3 -c`, standard library only, so the project image
(python3, no shell, no coreutils) can run them; any image with `python3` on PATH can
(SHM_WEBHOOK_TEST_IMAGE). Each prints its findings as JSON lines on stdout, read back with
`kubectl logs`:

- `FILL`: the size of the mount (`statvfs`: f_blocks * f_frsize / 1024, what `df -k` prints),
  its filesystem type (/proc/self/mounts), then `os.write` of 1 MiB blocks up to a target,
  counting the bytes the kernel took, and the errno that stopped it, if any.
- `SHARED_MEMORY`: what a PyTorch DataLoader worker does: a `multiprocessing.shared_memory`
  block, created (ftruncate: sparse, always succeeds) and then filled a MiB at a time, one
  line per MiB. Past the mount's size the kernel has no page to give the mapping and sends
  SIGBUS, which nothing catches: the container ends with 128 + 7.
- `MEASURE_AND_WAIT`: `FILL`'s measurement without writing, then waits (Deployment and
  StatefulSet containers must keep running); exits 0 on SIGTERM.

Pure: builds strings and dicts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

MIB = 1 << 20
GRACE_S = 1  # every measuring pod: a python PID 1 would otherwise make deletion wait 30 s

_MEASURE = """
import errno, json, os, sys
path = sys.argv[1]
with open("/proc/self/mounts") as mounts:
    types = [f[2] for f in map(str.split, mounts) if len(f) > 2 and f[1] == path]
stat = os.statvfs(path)
found = {"kib": stat.f_blocks * stat.f_frsize // 1024, "fstype": types[-1] if types else None}
"""

FILL = (
    _MEASURE
    + """
target = int(sys.argv[2]) << 20
written, error = 0, None
block = bytes(1 << 20)
fd = os.open(os.path.join(path, "fill"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
try:
    while written < target:
        written += os.write(fd, block[: target - written])
except OSError as e:
    error = errno.errorcode[e.errno]
finally:
    os.close(fd)
print(json.dumps({**found, "written": written, "error": error}), flush=True)
"""
)

SHARED_MEMORY = """
import sys
from multiprocessing import shared_memory
mib = int(sys.argv[1])
block = shared_memory.SharedMemory(create=True, size=mib << 20)
print("created", block.name, flush=True)
chunk = b"\\1" * (1 << 20)
for i in range(mib):
    block.buf[i << 20 : (i + 1) << 20] = chunk
    print("filled", i + 1, flush=True)
block.close()
block.unlink()
print("done", flush=True)
"""

MEASURE_AND_WAIT = (
    _MEASURE
    + """
import signal, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(json.dumps(found), flush=True)
while True:
    time.sleep(3600)
"""
)


def container(
    name: str,
    image: str,
    *,
    program: str = "pass",
    args: Sequence[str] = (),
    memory_limit: str | None = None,
) -> dict[str, Any]:
    """A container running `program` with `args` (its sys.argv[1:])."""
    spec: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", program, *args],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
    }
    if memory_limit is not None:
        spec["resources"]["limits"] = {"memory": memory_limit}
    return spec


def pod_spec(
    containers: list[dict[str, Any]],
    *,
    init_containers: list[dict[str, Any]] | None = None,
    restart_policy: str = "Never",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": restart_policy,
        "terminationGracePeriodSeconds": GRACE_S,
        "automountServiceAccountToken": False,
        "containers": containers,
    }
    if init_containers:
        spec["initContainers"] = init_containers
    return spec


def pod(
    name: str,
    *,
    namespace: str,
    spec: dict[str, Any],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def findings(log: str) -> dict[str, Any]:
    """The last JSON line a program printed."""
    lines = [line for line in log.splitlines() if line.startswith("{")]
    assert lines, f"no findings in the log:\n{log}"
    return dict(json.loads(lines[-1]))


def filled_mib(log: str) -> int:
    """How many MiB `SHARED_MEMORY` filled before it ended (or was killed)."""
    counts = [int(line.split()[1]) for line in log.splitlines() if line.startswith("filled ")]
    return counts[-1] if counts else 0


def shm_volume(stored: Mapping[str, Any]) -> dict[str, Any] | None:
    """The memory-backed emptyDir mounted at /dev/shm in the stored pod, if there is one."""
    spec = stored["spec"]
    mounted = {
        m["name"]
        for c in [*spec.get("initContainers", []), *spec["containers"]]
        for m in c.get("volumeMounts", [])
        if m["mountPath"] == "/dev/shm"
    }
    for volume in spec.get("volumes") or []:
        if volume["name"] in mounted and (volume.get("emptyDir") or {}).get("medium") == "Memory":
            return dict(volume)
    return None
