"""Writing a bundle: the Secret-style file names, owner-only keys, atomic replacement."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs.files import write_bundle
from certs.generate import Bundle

# write_bundle never parses what it writes, so recognisable bytes make the assertions plain.
BUNDLE = Bundle(
    ca_cert_pem=b"ca certificate\n",
    ca_key_pem=b"ca key\n",
    cert_pem=b"serving certificate\n",
    key_pem=b"serving key\n",
)


def _modes(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {
        path.name: (stat.S_IMODE(path.stat().st_mode), path.read_bytes())
        for path in directory.iterdir()
    }


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """A umask of 0, so modes come from write_bundle and not from the environment."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.parametrize(
    ("include_ca_key", "expected"),
    [
        pytest.param(
            False,
            {
                "ca.crt": (0o644, b"ca certificate\n"),
                "tls.crt": (0o644, b"serving certificate\n"),
                "tls.key": (0o600, b"serving key\n"),
            },
            id="writes the CA certificate, the serving pair and no CA key by default",
        ),
        pytest.param(
            True,
            {
                "ca.crt": (0o644, b"ca certificate\n"),
                "ca.key": (0o600, b"ca key\n"),
                "tls.crt": (0o644, b"serving certificate\n"),
                "tls.key": (0o600, b"serving key\n"),
            },
            id="writes the CA key owner-only when asked",
        ),
    ],
)
@pytest.mark.usefixtures("permissive_umask")
def test_file_names_modes_and_contents(
    tmp_path: Path, include_ca_key: bool, expected: dict[str, tuple[int, bytes]]
) -> None:
    out_dir = tmp_path / "not" / "there" / "yet"
    write_bundle(BUNDLE, out_dir, include_ca_key=include_ca_key)
    assert _modes(out_dir) == expected


@pytest.mark.usefixtures("permissive_umask")
def test_rewriting_replaces_each_file_so_an_open_reader_keeps_the_old_one(tmp_path: Path) -> None:
    old_key = tmp_path / "tls.key"
    old_key.write_bytes(b"old serving key\n")
    old_key.chmod(0o644)
    with old_key.open("rb") as reader:
        write_bundle(BUNDLE, tmp_path)
        assert reader.read() == b"old serving key\n"
        assert os.fstat(reader.fileno()).st_ino != old_key.stat().st_ino
    assert _modes(tmp_path)["tls.key"] == (0o600, b"serving key\n")


def test_leaves_no_temporary_files_and_keeps_unrelated_ones(tmp_path: Path) -> None:
    (tmp_path / "ca.key").write_bytes(b"kept from an earlier run\n")
    write_bundle(BUNDLE, tmp_path)
    write_bundle(BUNDLE, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert (tmp_path / "ca.key").read_bytes() == b"kept from an earlier run\n"
