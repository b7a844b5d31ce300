"""The built image run for real: runc runs it as a pod would (tests/image/build.py builds it).

runc runs the image's own configuration (ENTRYPOINT, CMD, Env, User, WorkingDir, read from the
built image) on a read-only root with a tmpfs at /tmp, no capabilities, and the host's network
namespace, so a test reaches the server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

from tests.image import build
from tests.image.build import Built, buildah

VENV_PYTHON = "opt/venv/bin/python"
_ids = count()


@dataclass(frozen=True)
class Image:
    image_id: str
    root: Path  # the image's files, mounted (read-write here; runc mounts it read-only)
    config: dict[str, Any]  # the OCI image configuration: Entrypoint, Cmd, Env, User...
    labels: dict[str, str]
    size: int  # bytes, the sum of the uncompressed layers
    build_seconds: float


@contextmanager
def mounted(built: Built) -> Iterator[Image]:
    """The built image's files, through a buildah working container removed afterwards."""
    inspected = json.loads(buildah("inspect", "--type", "image", built.image_id))
    config = inspected["OCIv1"]["config"]
    layers = json.loads(inspected["Manifest"])["layers"]
    # Layers buildah commits are stored as plain tar: their sizes are the unpacked image's.
    assert {layer["mediaType"] for layer in layers} == {"application/vnd.oci.image.layer.v1.tar"}
    container = buildah("from", "--pull=never", built.image_id).strip()
    try:
        root = Path(buildah("mount", container).strip())
        yield Image(
            image_id=built.image_id,
            root=root,
            config=config,
            labels=config.get("Labels") or {},
            size=sum(int(layer["size"]) for layer in layers),
            build_seconds=built.seconds,
        )
    finally:
        buildah("rm", container)


def user_ids(user: str) -> tuple[int, int]:
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


@dataclass(frozen=True)
class Mount:
    """A host directory bind-mounted read-only into the container."""

    source: Path
    destination: str


def bundle(
    image: Image,
    directory: Path,
    *,
    args: Sequence[str] | None = None,
    command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    mounts: Sequence[Mount] = (),
) -> Path:
    """A runc bundle running `args` (default: the image's CMD) after the image's ENTRYPOINT, or
    else `command`, as its USER, in its WorkingDir, with its Env plus `env`; runc's own `spec`
    is the starting point."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["runc", "spec", "--bundle", str(directory)], check=True)
    spec = json.loads((directory / "config.json").read_text())
    config = image.config
    uid, gid = user_ids(config.get("User", "0"))
    if command is None:
        command = [
            *config.get("Entrypoint", []),
            *(config.get("Cmd", []) if args is None else args),
        ]
    process = spec["process"]
    process.update(
        terminal=False,
        user={"uid": uid, "gid": gid},
        args=list(command),
        env=[*config.get("Env", []), *(f"{k}={v}" for k, v in (env or {}).items())],
        cwd=config.get("WorkingDir") or "/",
        # What a pod's securityContext gives it: capabilities dropped, no privilege gain.
        capabilities={kind: [] for kind in process["capabilities"]},
        noNewPrivileges=True,
    )
    spec["root"] = {"path": str(image.root), "readonly": True}
    spec["hostname"] = "shm-webhook"
    # The host's network namespace: the test reaches the server on 127.0.0.1.
    linux = spec["linux"]
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"]
    spec["mounts"].append(
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]}
    )  # fmt: skip
    for mount in mounts:
        spec["mounts"].append(
            {"destination": mount.destination, "type": "bind", "source": str(mount.source),
             "options": ["rbind", "ro", "nosuid", "nodev"]}
        )  # fmt: skip
    (directory / "config.json").write_text(json.dumps(spec, indent=1))
    return directory


def container_id() -> str:
    return f"shm-webhook-test-{os.getpid()}-{next(_ids)}"


def run(
    image: Image,
    scratch: Path,
    *,
    args: Sequence[str] | None = None,
    command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    mounts: Sequence[Mount] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the image to completion; its exit code, stdout and stderr."""
    ident = container_id()
    directory = bundle(image, scratch / ident, args=args, command=command, env=env, mounts=mounts)
    try:
        return subprocess.run(
            ["runc", "run", "--bundle", str(directory), ident],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        subprocess.run(["runc", "delete", "--force", ident], capture_output=True, check=False)


def run_python(
    image: Image, scratch: Path, code: str, *, verbose: bool = False
) -> subprocess.CompletedProcess[str]:
    """The image's virtualenv python running `code`, in the image's runtime conditions."""
    flags = ["-v"] if verbose else []
    return run(image, scratch, command=[f"/{VENV_PYTHON}", *flags, "-c", code])


@dataclass
class Running:
    ident: str
    process: subprocess.Popen[bytes]
    log: Path

    def pid(self) -> int:
        """The container's first process as this machine sees it (for /proc/PID/root)."""
        state = subprocess.run(
            ["runc", "state", self.ident], capture_output=True, text=True, check=True
        )
        return int(json.loads(state.stdout)["pid"])

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def started(
    image: Image,
    scratch: Path,
    *,
    args: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Running]:
    """The image running in the foreground of `runc run`, which passes signals on to it."""
    ident = container_id()
    directory = bundle(image, scratch / ident, args=args, env=env)
    log = scratch / f"{ident}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["runc", "run", "--bundle", str(directory), ident],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Running(ident=ident, process=process, log=log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        subprocess.run(["runc", "delete", "--force", ident], capture_output=True, check=False)


def missing_tools() -> list[str]:
    return [*build.missing_tools(), *(["runc"] if shutil.which("runc") is None else [])]


def scratch_dir() -> Path:
    # Not under pytest's tmp_path: its 0700 parents would bar the image's user from a bind mount.
    scratch = Path(tempfile.mkdtemp(prefix="shm-webhook-image-"))
    scratch.chmod(0o755)
    return scratch
