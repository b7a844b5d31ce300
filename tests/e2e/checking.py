"""Running `shm-webhook check` in the e2e tier as a user runs it, and reading its report.

Owns: `run_check` (the CLI in a subprocess, the cluster found through `KUBECONFIG`, which may
list several files) and `Ran` (its exit code and output; the JSON report's checks by name).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.served import cli

CHECK_TIMEOUT_S = 120


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.stdout))

    def checks(self) -> dict[str, dict[str, Any]]:
        """The checks by name (the last of a name wins; names are unique where tests look)."""
        return {check["name"]: check for check in self.json()["checks"]}

    def failed(self) -> list[str]:
        return [c["name"] for c in self.json()["checks"] if c["level"] == "fail"]


def run_check(kubeconfigs: Path | Sequence[Path], *args: str) -> Ran:
    """`shm-webhook check ARGS` with KUBECONFIG listing `kubeconfigs`."""
    files = [kubeconfigs] if isinstance(kubeconfigs, Path) else list(kubeconfigs)
    env = {**os.environ, "KUBECONFIG": os.pathsep.join(map(str, files))}
    done = subprocess.run(
        [*cli(), "check", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)
