"""What `shm-webhook serve` imports: every module loaded is resident in every replica
(PERF-NOTES §7), so the heavy ones stay off its path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

# cryptography alone is ~8 MiB of RSS; certs loads it; yaml and kubernetes are CLI-only.
KEPT_OUT = ("cryptography", "certs", "yaml", "kubernetes")


@pytest.mark.parametrize(
    "module",
    [
        pytest.param("webhook.server", id="the server and its TLS reloader"),
        pytest.param("webhook.cli", id="the command line"),
    ],
)
def test_serving_does_not_import_heavy_packages(module: str) -> None:
    script = (
        f"import sys, {module}; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({KEPT_OUT!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
