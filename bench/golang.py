"""Building the Go reference (bench/goref) with Debian's Go toolchain, into a cache directory.

Owns: `find_go` (the `go` command: Debian's golang-1.19-go, else the one on PATH), `build`
(compile bench/goref once per version of its sources and of the toolchain, into
`~/.cache/shm-webhook/bench/`; never into the checkout) and `go_env` (the environment every
`go` run of the bench uses). The reference has no dependencies: the build runs offline
(`GOPROXY=off`), with the toolchain it was given (`GOTOOLCHAIN=local`), reproducibly
(`-trimpath`, no VCS stamp) and without cgo, so no C compiler is needed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).parent / "goref"
DEBIAN_GO = Path("/usr/lib/go-1.19/bin/go")
INSTALL_HINT = "install it with: sudo apt-get install golang-1.19-go (Debian/Ubuntu)"


class GoError(RuntimeError):
    """No Go toolchain, or the reference did not build; the message says which and why."""


def find_go() -> Path | None:
    """The `go` command the bench builds with, None when there is none."""
    if DEBIAN_GO.is_file() and os.access(DEBIAN_GO, os.X_OK):
        return DEBIAN_GO
    found = shutil.which("go")
    return Path(found) if found else None


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "shm-webhook" / "bench"


def go_env(go: Path) -> dict[str, str]:
    """The environment of the bench's `go build` and `go test` runs."""
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(go.parent), os.environ.get("PATH", "")]),
        "GOFLAGS": "-trimpath -buildvcs=false",  # no VCS stamp: no `git` call, same bytes
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "CGO_ENABLED": "0",
        "GOCACHE": str(cache_dir() / "go-build"),
        "GOPATH": str(cache_dir() / "gopath"),
    }


def build(go: Path | None = None) -> Path:
    """The reference's binary, built now unless this version of it already is."""
    go = go or find_go()
    if go is None:
        raise GoError(f"no Go toolchain ({DEBIAN_GO} or `go` on PATH); {INSTALL_HINT}")
    version = _run([str(go), "version"], go=go).strip()
    digest = hashlib.sha256(version.encode())
    for path in sorted(SOURCE.iterdir()):
        if path.suffix in (".go", ".mod") and not path.name.endswith("_test.go"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    binary = cache_dir() / f"goref-{digest.hexdigest()[:16]}"
    if binary.is_file():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    # Built beside its final name, then renamed: a concurrent build never sees half a file.
    partial = binary.with_name(f"{binary.name}.{os.getpid()}.partial")
    try:
        _run([str(go), "build", "-o", str(partial), "."], go=go)
        partial.replace(binary)
    finally:
        partial.unlink(missing_ok=True)
    return binary


def _run(command: list[str], *, go: Path) -> str:
    completed = subprocess.run(
        command, cwd=SOURCE, env=go_env(go), capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise GoError(
            f"{' '.join(command[1:3])} of {SOURCE} failed ({completed.returncode}):\n"
            f"{completed.stderr.strip()}"
        )
    return completed.stdout
