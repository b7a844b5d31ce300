"""The project image the cluster runs: a reference it already can start, or the working tree
built (tests/image/build.py), exported as a docker-archive and loaded by the user's command.

The built image is named `localhost/shm-webhook:cluster-<first 12 hex of its id>`: a tag per
content, so `IfNotPresent` never runs a stale image left on the nodes by an earlier run, and no
`:latest` (which would make the kubelet pull).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.environment import ARCHIVE_FIELD, IMAGE_LOAD, Environment
from tests.image import build

LOAD_TIMEOUT_S = 900
REPOSITORY = "localhost/shm-webhook"


@dataclass(frozen=True)
class Provided:
    reference: str
    how: str  # one line for the report: where the image came from, what it took


def provide(environment: Environment) -> Provided:
    if environment.image is not None:
        return Provided(environment.image, f"{environment.image} (SHM_WEBHOOK_IMAGE)")
    assert environment.image_load is not None
    return build_and_load(environment.image_load)


def build_and_load(template: str) -> Provided:
    missing = build.missing_tools()
    assert not missing, f"{IMAGE_LOAD} is set but {', '.join(missing)} is not installed"
    assert os.geteuid() == 0, f"{IMAGE_LOAD} is set but building the image needs root (buildah)"
    build.provide_base()
    with tempfile.TemporaryDirectory(prefix="shm-webhook-cluster-image-") as scratch:
        built = build.build(Path(scratch))
        reference = f"{REPOSITORY}:cluster-{built.image_id[:12]}"
        archive = Path(scratch) / "shm-webhook.tar"
        started = time.monotonic()
        build.export(built.image_id, archive, reference=reference)
        exported = time.monotonic()
        command = template.replace(ARCHIVE_FIELD, shlex.quote(str(archive)))
        done = subprocess.run(
            command,
            shell=True,  # the user's command line, as they would type it
            capture_output=True,
            text=True,
            timeout=LOAD_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, (
            f"{IMAGE_LOAD}: `{command}` exited {done.returncode}: {done.stderr.strip()}"
        )
        size_mib = archive.stat().st_size / 2**20
    loaded = time.monotonic()
    return Provided(
        reference,
        f"{reference}: built in {built.seconds:.0f} s, exported ({size_mib:.0f} MiB) in "
        f"{exported - started:.0f} s, loaded in {loaded - exported:.0f} s",
    )
