"""The `helm test` pod's check, as rendered, run against real tmpfs mounts.

Each run gets its own mount namespace (`unshare`), mounts a tmpfs of the size under test and
runs the pod's `python3 -c` script with the pod's environment: the same statvfs, /proc/self/mounts
and write the pod performs on the kubelet's memory-backed emptyDir. As root `unshare --mount`
suffices; otherwise a user namespace maps the caller to root (`--map-root-user`). Where neither
is allowed the tests skip, except under CI=true.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chart.render import Chart, of_kind

# Mount a tmpfs of size $1 on $2 (or nothing when $1 is empty), run the script, then list what
# it left behind on stderr.
RUN = """
if [ -n "$1" ]; then mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99; fi
"$3" -c "$4"
status=$?
ls -A "$2" >&2
exit $status
"""


def unshare_command() -> list[str]:
    if os.geteuid() == 0:
        return ["unshare", "--mount", "--propagation", "private"]
    return ["unshare", "--user", "--map-root-user", "--mount"]


@pytest.fixture(scope="module")
def namespaces() -> list[str]:
    """The unshare prefix, once it is known to allow a tmpfs mount here."""
    command = [*unshare_command(), "--", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        problem = done.stderr.strip() if done.returncode else ""
    except OSError as error:
        problem = str(error)
    if problem:
        message = f"cannot mount a tmpfs in a private mount namespace: {problem}"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{message} (CI=true: failing rather than skipping)", pytrace=False)
        pytest.skip(message)
    return unshare_command()


@pytest.fixture(scope="module")
def check(chart: Chart) -> tuple[str, dict[str, str]]:
    """The script and the environment of the default test pod."""
    (pod,) = of_kind(chart.render(), "Pod")
    (container,) = pod["spec"]["containers"]
    environment = {item["name"]: item["value"] for item in container["env"]}
    return container["command"][2], environment


def run(
    namespaces: list[str], script: str, *, size: str, path: Path, **environment: str
) -> subprocess.CompletedProcess[str]:
    path.mkdir()
    command = [*namespaces, "--", "sh", "-c", RUN, "sh", size, str(path), sys.executable, script]
    env = {**os.environ, **environment, "MOUNT_PATH": str(path)}
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_a_tmpfs_of_the_asked_size_passes_and_is_left_empty(
    namespaces: list[str], check: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    script, environment = check
    done = run(namespaces, script, size="256m", path=tmp_path / "shm", **environment)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == f"OK: {tmp_path / 'shm'} is a 262144 KiB tmpfs and took a 100 MiB write\n"
    assert done.stderr == ""  # nothing left on the volume


def test_a_tmpfs_of_another_size_fails_with_both_sizes(
    namespaces: list[str], check: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    script, environment = check
    done = run(namespaces, script, size="200m", path=tmp_path / "shm", **environment)
    assert done.returncode == 1
    assert done.stdout == f"FAIL: {tmp_path / 'shm'} is 204800 KiB, expected 262144 KiB\n"


def test_a_directory_on_disk_fails_as_not_memory_backed(
    namespaces: list[str], check: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    script, environment = check
    done = run(namespaces, script, size="", path=tmp_path / "shm", **environment)
    assert done.returncode == 1
    assert done.stdout.startswith(f"FAIL: {tmp_path / 'shm'} is not memory-backed")


def test_a_tmpfs_too_small_for_the_write_fails_and_is_left_empty(
    namespaces: list[str], check: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """64 MiB, what container runtimes give /dev/shm: the size matches, the write cannot."""
    script, environment = check
    done = run(
        namespaces,
        script,
        size="64m",
        path=tmp_path / "shm",
        **{**environment, "EXPECTED_KIB": "65536"},
    )
    assert done.returncode == 1
    assert done.stdout.startswith(f"FAIL: writing 100 MiB to {tmp_path / 'shm'} failed near MiB")
    assert "No space left on device" in done.stdout
    assert done.stderr == ""
