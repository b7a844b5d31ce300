"""The image built for real and run for real: buildah builds the Dockerfile, runc runs the result.

buildah works in a storage of its own under `~/.cache/shm-webhook/image/` (the stand-in base,
the layer cache of warm builds, the image under test), so nothing here touches the machine's
other images. It builds from the repository root with `--pull=never`: the one base image is the
stand-in scripts/image_base.py imports, under the name the Dockerfile's FROM line uses (the
digest pin is emptied; a stand-in cannot have the real image's digest). pip inside the build
reaches PyPI as this machine's pip does: its index, proxy and CA bundle settings become the
build's optional `pip.conf` / `pip-cert` secrets, read at run time and never written down.

runc runs the image's own configuration (ENTRYPOINT, CMD, Env, User, WorkingDir, read from the
built image) on a read-only root with a tmpfs at /tmp, no capabilities, and the host's network
namespace, so a test reaches the server on 127.0.0.1.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "shm-webhook" / "image"
STORAGE = (
    f"--root={CACHE / 'storage'}",
    f"--runroot={Path(os.environ.get('XDG_RUNTIME_DIR') or '/run') / 'shm-webhook' / 'buildah'}",
)
IMAGE = "localhost/shm-webhook:test"
VENV_PYTHON = "opt/venv/bin/python"
# Each build step is an image in the layer cache; past this many, the dangling ones (earlier
# builds' steps) are pruned, and the next build is a cold one.
STORAGE_CAP_IMAGES = 150
BUILD_TIMEOUT_S = 1800
# pip settings the build container can use as they are; paths on this machine (find-links,
# file:// indexes, a constraint file) mean nothing inside it, and the CA bundle goes in as a secret.
PIP_SETTINGS = ("index-url", "extra-index-url", "trusted-host", "proxy", "timeout",
                "default-timeout", "retries")  # fmt: skip
PIP_SCOPES = (":env:", "install", "global")  # pip's precedence, highest first
CERT_TARGET = "/run/secrets/pip-cert"
_ids = count()


def buildah(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        ["buildah", *STORAGE, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"buildah {' '.join(args)}: {done.stderr}"
    return done.stdout


def pip_configuration(listing: str) -> tuple[str, Path | None]:
    """A pip.conf for the build from `pip config list` output, and the CA bundle it names."""
    found: dict[tuple[str, str], str] = {}
    for line in listing.splitlines():
        key, equals, quoted = line.partition("=")
        scope, _, name = key.rpartition(".")
        if equals and scope in PIP_SCOPES:
            found[scope, name] = str(ast.literal_eval(quoted))
    lines = ["[global]"]
    for name in (*PIP_SETTINGS, "cert"):
        value = next((found[s, name] for s in PIP_SCOPES if (s, name) in found), None)
        if value is None:
            continue
        if name == "cert":
            lines.append(f"cert = {CERT_TARGET}")
            continue
        if name.endswith("index-url"):
            value = " ".join(v for v in value.split() if "://" in v and not v.startswith("file:"))
        if value:
            lines.append(f"{name} = {value}")
    cert = next((found[s, "cert"] for s in PIP_SCOPES if (s, "cert") in found), None)
    return "\n".join(lines) + "\n", Path(cert) if cert else None


def pip_secrets(scratch: Path) -> list[str]:
    """`--secret` arguments that give the build this machine's way to PyPI."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    conf, cert = pip_configuration(listing)
    (scratch / "pip.conf").write_text(conf)
    secrets = ["--secret", f"id=pip.conf,src={scratch / 'pip.conf'}"]
    if cert is not None:
        secrets += ["--secret", f"id=pip-cert,src={cert}"]
    return secrets


def provide_base() -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "image_base.py"), *STORAGE],
        stdout=subprocess.PIPE,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, "scripts/image_base.py could not make the stand-in base image"
    return done.stdout.strip()


def _prune_when_full() -> None:
    if len(json.loads(buildah("images", "--all", "--json") or "[]")) > STORAGE_CAP_IMAGES:
        buildah("rmi", "--prune", timeout=600)


@dataclass(frozen=True)
class Built:
    image_id: str
    seconds: float
    log: str


def build(scratch: Path) -> Built:
    """`buildah bud` of the repository, from what .dockerignore lets through."""
    _prune_when_full()
    started = time.monotonic()
    done = subprocess.run(
        ["buildah", *STORAGE, "bud", "--isolation=chroot", "--pull=never", "--layers",
         "--build-arg", "DEBIAN_DIGEST=", *pip_secrets(scratch), "--iidfile", str(scratch / "iid"),
         "--tag", IMAGE, str(REPO)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"buildah bud failed:\n{done.stdout[-6000:]}"
    image_id = (scratch / "iid").read_text().strip().removeprefix("sha256:")
    return Built(image_id=image_id, seconds=time.monotonic() - started, log=done.stdout)


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
    return [tool for tool in ("buildah", "runc", "mmdebstrap") if shutil.which(tool) is None]


def scratch_dir() -> Path:
    # Not under pytest's tmp_path: its 0700 parents would bar the image's user from a bind mount.
    scratch = Path(tempfile.mkdtemp(prefix="shm-webhook-image-"))
    scratch.chmod(0o755)
    return scratch
