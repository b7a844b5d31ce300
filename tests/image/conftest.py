"""The image, built once per session from the working tree (tests/image/build.py) and mounted
for runc (tests/image/engine.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _unavailable
from tests.image import build, engine


@pytest.fixture(scope="session")
def scratch() -> Iterator[Path]:
    directory = engine.scratch_dir()
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


@pytest.fixture(scope="session")
def image(scratch: Path) -> Iterator[engine.Image]:
    missing = engine.missing_tools()
    if missing:
        _unavailable(
            f"{', '.join(missing)} not installed: scripts/test installs them with apt-get as root"
        )
    if os.geteuid() != 0:
        _unavailable("building and running the image needs root (buildah --isolation chroot, runc)")
    build.provide_base()
    built = build.build(scratch)
    with engine.mounted(built) as mounted:
        yield mounted
