"""Twenty restarts of `shm-webhook serve` behind a real kube-apiserver, under a stream of pod
creations through it: not one admission fails (docs/reliability.md#shutdown). The run is
`tests/reliability/rollout.py`, with its own control plane; it takes a few minutes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import rollout

pytestmark = pytest.mark.e2e


def test_twenty_rolling_restarts_cost_no_admission(
    assets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = rollout.run(assets, tmp_path, restarts=20, quiet=False, grace=5.0)
    printed = capsys.readouterr().out
    print(printed)  # the per-restart lines and the summary, for the run's log
    assert code == 0, printed
    assert '"failed_admissions": 0' in printed
