"""The image built by buildah from the working tree, and exported for a container runtime.

buildah works in a storage of its own under `~/.cache/shm-webhook/image/` (the stand-in base,
the layer cache of warm builds, the image under test), so nothing here touches the machine's
other images. It builds from the repository root with `--pull=never`: the one base image is the
stand-in scripts/image_base.py imports, under the name the Dockerfile's FROM line uses (the
digest pin is emptied; a stand-in cannot have the real image's digest). pip inside the build
reaches PyPI as this machine's pip does: its index, proxy and CA bundle settings become the
build's optional `pip.conf` / `pip-cert` secrets, read at run time and never written down.

Shared by tests/image (which runs the result with runc, tests/image/engine.py) and
tests/cluster (which loads `export`'s archive into a cluster's runtime). Must not import
anything of the project: it builds the project, it does not run it.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "shm-webhook" / "image"
STORAGE = (
    f"--root={CACHE / 'storage'}",
    f"--runroot={Path(os.environ.get('XDG_RUNTIME_DIR') or '/run') / 'shm-webhook' / 'buildah'}",
)
IMAGE = "localhost/shm-webhook:test"
# Each build step is an image in the layer cache; past this many, the dangling ones (earlier
# builds' steps) are pruned, and the next build is a cold one.
STORAGE_CAP_IMAGES = 150
BUILD_TIMEOUT_S = 1800
EXPORT_TIMEOUT_S = 600
# pip settings the build container can use as they are; paths on this machine (find-links,
# file:// indexes, a constraint file) mean nothing inside it, and the CA bundle goes in as a secret.
PIP_SETTINGS = ("index-url", "extra-index-url", "trusted-host", "proxy", "timeout",
                "default-timeout", "retries")  # fmt: skip
PIP_SCOPES = (":env:", "install", "global")  # pip's precedence, highest first
CERT_TARGET = "/run/secrets/pip-cert"


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


def export(image_id: str, archive: Path, *, reference: str) -> None:
    """The built image as a docker-archive named `reference`: what `ctr images import`,
    `kind load image-archive` and `docker load` take."""
    buildah("push", image_id, f"docker-archive:{archive}:{reference}", timeout=EXPORT_TIMEOUT_S)


def missing_tools() -> list[str]:
    return [tool for tool in ("buildah", "mmdebstrap") if shutil.which(tool) is None]
