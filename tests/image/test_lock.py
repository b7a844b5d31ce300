"""requirements/runtime.txt and requirements/build.txt, the image's locked dependencies, agree
with pyproject.toml: every requirement is pinned within its specifier (and the caps of
requirements/constraints.txt), with hashes, and pip-compile's "via" annotations name exactly
the project's own requirements as direct ones. A dependency added to or dropped from
pyproject.toml without `scripts/lock` fails here, before any build.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.image.build import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RUNTIME = REPO / "requirements" / "runtime.txt"
BUILD = REPO / "requirements" / "build.txt"
CONSTRAINTS = REPO / "requirements" / "constraints.txt"
DIRECT = {
    RUNTIME: "shm-webhook (pyproject.toml)",
    BUILD: "shm-webhook (pyproject.toml::build-system.requires)",
}


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: tuple[str, ...]
    via: tuple[str, ...]


def read_lock(path: Path) -> dict[str, Pin]:
    """pip-compile's output: `name==version \\` then `--hash=` lines, then `# via` comments."""
    pins: dict[str, Pin] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", path.read_text()):
        match = re.match(r"([A-Za-z0-9][\w.-]*)==(\S+)", block)
        if match is None:
            continue
        via = re.findall(r"#\s+(?:via\s+)?(\S.*?)\s*$", block, re.MULTILINE)
        pins[canonicalize_name(match[1])] = Pin(
            version=match[2],
            hashes=tuple(re.findall(r"--hash=sha256:([0-9a-f]{64})", block)),
            via=tuple(v for v in via if v != "via"),
        )
    return pins


def _requirements(lock: Path) -> list[Requirement]:
    if lock == RUNTIME:
        lines = PYPROJECT["project"]["dependencies"]
    else:
        lines = PYPROJECT["build-system"]["requires"]
    return [Requirement(line) for line in lines]


LOCKS = [
    pytest.param(RUNTIME, id="runtime.txt: pyproject.toml's dependencies"),
    pytest.param(BUILD, id="build.txt: pyproject.toml's build-system.requires"),
]


@pytest.mark.parametrize("lock", LOCKS)
def test_every_requirement_is_pinned_within_its_specifier(lock: Path) -> None:
    pins = read_lock(lock)
    for requirement in _requirements(lock):
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement} is not in {lock.name}: run scripts/lock"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"{lock.name} pins {requirement.name}=={pin.version} outside {requirement}: "
            "run scripts/lock"
        )


@pytest.mark.parametrize("lock", LOCKS)
def test_the_direct_requirements_are_exactly_the_projects(lock: Path) -> None:
    direct = {name for name, pin in read_lock(lock).items() if DIRECT[lock] in pin.via}
    wanted = {canonicalize_name(r.name) for r in _requirements(lock)}
    assert direct == wanted, "pyproject.toml changed since scripts/lock ran"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_has_hashes_and_is_reached_from_the_project(lock: Path) -> None:
    pins = read_lock(lock)
    assert pins
    for name, pin in pins.items():
        assert pin.hashes, f"{name} has no --hash: the build's --require-hashes would refuse it"
        assert pin.via, f"{name} is pinned but nothing requires it"


def test_the_caps_of_constraints_txt_hold() -> None:
    pins = read_lock(RUNTIME)
    caps = [line.split("#")[0].strip() for line in CONSTRAINTS.read_text().splitlines()]
    for cap in [Requirement(line) for line in caps if line]:
        pin = pins[canonicalize_name(cap.name)]
        assert cap.specifier.contains(pin.version), f"{cap.name}=={pin.version} breaks {cap}"


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_names_no_index_or_path_of_the_machine_that_made_it(lock: Path) -> None:
    text = lock.read_text()
    assert not re.search(r"^\s*-{1,2}(index-url|extra-index-url|find-links|trusted-host|f|i)\b",
                         text, re.MULTILINE)  # fmt: skip
    assert "file:" not in text
    assert "scripts/lock" in text, "regenerate with scripts/lock (CUSTOM_COMPILE_COMMAND)"
