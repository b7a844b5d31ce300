"""Fixtures of the benchmark's tests: the Go toolchain that builds the Go reference.

`scripts/test` installs Debian's golang-1.19-go under CI; elsewhere a missing toolchain skips
the tests that need it (and fails them under CI=true, as tests/conftest.py does for helm).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import golang
from tests.conftest import _unavailable


@pytest.fixture(scope="session")
def go() -> Path:
    """The `go` command: /usr/lib/go-1.19/bin/go, else the one on PATH."""
    found = golang.find_go()
    if found is None:
        _unavailable(f"no Go toolchain ({golang.DEBIAN_GO} or `go` on PATH); {golang.INSTALL_HINT}")
    return found


@pytest.fixture(scope="session")
def goref(go: Path) -> Path:
    """The Go reference's binary, built (or found built) in the bench's cache directory."""
    return golang.build(go)
