"""Session fixtures shared by every test package, and the hypothesis profiles.

External tools (kubectl, helm) come from PATH, where `scripts/test` puts the versions the
project supports. When one is missing a test skips on a laptop but fails under CI (`CI=true`),
so a CI run can never go green by skipping the tests that talk to real Kubernetes tooling.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import kubernetes_validate.utils
import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent

# "ci" runs on every `scripts/test`; print_blob makes a failure reproducible from the log.
# "fuzz" is the long hunt: HYPOTHESIS_PROFILE=fuzz scripts/test
settings.register_profile("ci", max_examples=100, deadline=None, print_blob=True)
settings.register_profile("fuzz", parent=settings.get_profile("ci"), max_examples=10_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def _schemas_read_once() -> Iterator[None]:
    """kubernetes-validate re-reads its schema files on every call, a 27 ms JSON load against
    1 ms for the validation itself: the tests validate thousands of pods."""
    with pytest.MonkeyPatch.context() as patch:
        cached = functools.cache(kubernetes_validate.utils.schema_contents)
        patch.setattr(kubernetes_validate.utils, "schema_contents", cached)
        yield


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def _unavailable(message: str) -> NoReturn:
    if _under_ci():
        pytest.fail(f"{message} (CI=true: failing rather than skipping)", pytrace=False)
    pytest.skip(message)


def _on_path(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        _unavailable(f"{name} is not on PATH; run the tests with scripts/test, which provides it")
    return found


@pytest.fixture(scope="session")
def kubectl() -> str:
    """Path of the kubectl binary on PATH."""
    return _on_path("kubectl")


@pytest.fixture(scope="session")
def helm() -> str:
    """Path of the helm binary on PATH."""
    return _on_path("helm")


@pytest.fixture(scope="session")
def wrk() -> str:
    """Path of the wrk binary on PATH (the benchmark's load generator; apt-get install wrk)."""
    return _on_path("wrk")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The team's material beside the repository (`../shared`): real AdmissionReviews captured
    by other projects, which the repository does not redistribute. A clone without it skips
    the few tests that replay them, also under CI=true (a fork's CI has no `../shared`)."""
    shared = REPO.parent / "shared"
    if not shared.is_dir():
        pytest.skip(f"{shared} is not checked out beside the repository: no real captures")
    return shared
