"""`helm lint --strict` of the chart, and the Kubernetes versions it accepts."""

from __future__ import annotations

import subprocess

import pytest

from tests.chart.render import CHART_DIR, MODE_VALUES, NAMESPACE, SCOPE_VALUES, Chart, helm_args

COMBINATIONS = [
    pytest.param(
        (*MODE_VALUES[mode], *SCOPE_VALUES[scope]),
        id=f"{mode} mode in {scope} scope lints clean in strict mode",
    )
    for mode in MODE_VALUES
    for scope in SCOPE_VALUES
]


def lint(helm: str, values: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    command = [helm, "lint", "--strict", str(CHART_DIR), "--namespace", NAMESPACE]
    return subprocess.run(
        [*command, *helm_args(values)], capture_output=True, text=True, check=False, timeout=60
    )


def test_default_values_lint_clean_in_strict_mode(helm: str) -> None:
    done = lint(helm, ())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout
    assert "[ERROR]" not in done.stdout


@pytest.mark.parametrize("values", COMBINATIONS)
def test_every_tls_mode_and_scope_lint_clean(helm: str, values: tuple[str, ...]) -> None:
    done = lint(helm, values)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout


def test_kubernetes_older_than_1_27_is_refused(chart: Chart) -> None:
    message = chart.error(kube="1.26")
    assert ">=1.27.0-0" in message
