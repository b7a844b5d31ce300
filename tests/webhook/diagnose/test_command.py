"""`shm-webhook check`'s usage errors: each is exit code 2 with one line on stderr, found before
any cluster is contacted (the e2e tier runs the command against a real kube-apiserver)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook.cli import main


@pytest.fixture(autouse=True)
def _nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No kubeconfig and no service account: any attempt to reach a cluster fails."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


NO_CLUSTER = "--kubeconfig PATH (and --context NAME), set KUBECONFIG, write ~/.kube/config"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        pytest.param(
            ["-f", "/nonexistent/pod.yaml"],
            "cannot read /nonexistent/pod.yaml",
            id="a missing -f file",
        ),
        pytest.param(["-f", "{service}"], "a Service makes no pod", id="an object making no pod"),
        pytest.param(["-f", "{two}"], "holds 2 objects; -f takes one pod", id="two objects"),
        pytest.param(
            ["--threshold-days", "-1"], "is not a whole number of days", id="a negative threshold"
        ),
        pytest.param(
            ["--webhook-config", "a", "--release-namespace", "b"],
            "not allowed with",
            id="two ways to find the install",
        ),
        pytest.param(["-o", "yaml"], "invalid choice: 'yaml'", id="an unknown output"),
        pytest.param([], NO_CLUSTER, id="no cluster to talk to"),
        pytest.param(
            ["--kubeconfig", "/nonexistent/config"],
            "--kubeconfig /nonexistent/config: no such file",
            id="a missing kubeconfig",
        ),
    ],
)
def test_a_usage_error_is_exit_code_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    service = tmp_path / "service.yaml"
    service.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    two = tmp_path / "two.yaml"
    two.write_text("kind: Pod\nspec: {containers: []}\n---\nkind: Pod\nspec: {containers: []}\n")
    args = [arg.format(service=service, two=two) for arg in args]

    assert main(["check", *args]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("error: ")
    assert said in line
