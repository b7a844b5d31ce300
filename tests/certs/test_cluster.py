"""Where the commands find the cluster (`certs.cluster.api_client`): `--kubeconfig`, else
`KUBECONFIG` (a list of files, merged), else `~/.kube/config`, with `--context`; else the pod's
service account. The resolved client is read back from its configuration; no request is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config

from certs.cluster import api_client
from certs.errors import BadInput


def _kubeconfig(*servers: str, current: int = 0) -> dict[str, Any]:
    """One cluster, user and context per server, named c0, c1, ...; `current` selected."""
    names = [f"c{index}" for index in range(len(servers))]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": n, "cluster": {"server": s}} for n, s in zip(names, servers, strict=True)
        ],
        "users": [{"name": n, "user": {"token": f"token-{n}"}} for n in names],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in names],
        "current-context": names[current],
    }


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    return path


def _host(kubeconfig: Path | None, environ: dict[str, str], context: str | None = None) -> str:
    with api_client(kubeconfig, context=context, environ=environ) as api:
        return str(api.configuration.host)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home directory: no ~/.kube/config unless a test writes one."""
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_the_kubeconfig_flag_wins_over_the_variable_and_the_home_file(
    tmp_path: Path, home: Path
) -> None:
    flag = _write(tmp_path / "flag", _kubeconfig("https://flag.example:6443"))
    listed = _write(tmp_path / "listed", _kubeconfig("https://listed.example:6443"))
    _write(home / ".kube" / "config", _kubeconfig("https://home.example:6443"))

    environ = {"HOME": str(home), "KUBECONFIG": str(listed)}
    assert _host(flag, environ) == "https://flag.example:6443"


def test_kubeconfig_lists_files_that_are_merged(tmp_path: Path, home: Path) -> None:
    # The current context may come from another file than its cluster; a listed file that does
    # not exist is passed over, as kubectl does.
    both = _kubeconfig("https://a.example", "https://b.example")
    del both["current-context"]
    clusters = _write(tmp_path / "clusters", both)
    chosen = _write(tmp_path / "chosen", {"current-context": "c1"})
    listed = f"{tmp_path / 'missing'}:{chosen}:{clusters}"

    environ = {"HOME": str(home), "KUBECONFIG": listed}
    assert _host(None, environ) == "https://b.example"


def test_the_home_kubeconfig_is_used_when_nothing_else_is_given(home: Path) -> None:
    _write(home / ".kube" / "config", _kubeconfig("https://home.example:6443"))

    assert _host(None, {"HOME": str(home)}) == "https://home.example:6443"


def test_context_selects_a_context_of_the_kubeconfig(tmp_path: Path, home: Path) -> None:
    path = _write(tmp_path / "config", _kubeconfig("https://a.example", "https://b.example"))

    environ = {"HOME": str(home), "KUBECONFIG": str(path)}
    assert _host(None, environ) == "https://a.example"
    assert _host(None, environ, context="c1") == "https://b.example"


def test_the_service_account_is_used_when_there_is_no_kubeconfig(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("service-account-token")
    ca.write_text("a CA file the client only names")
    monkeypatch.setattr(config.incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(config.incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    environ = {
        "HOME": str(home),
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
    }

    with api_client(None, environ=environ) as api:
        assert api.configuration.host == "https://10.96.0.1:443"
        assert api.configuration.api_key == {"BearerToken": "bearer service-account-token"}


@pytest.mark.parametrize(
    ("setup", "context", "expected"),
    [
        pytest.param(
            {},
            None,
            [
                "the in-cluster service account",
                "--kubeconfig PATH",
                "--context NAME",
                "KUBECONFIG",
                "~/.kube/config",
                "service account",
            ],
            id="no kubeconfig anywhere and not in a pod: every option is named",
        ),
        pytest.param(
            {"KUBECONFIG": "{tmp}/gone:{tmp}/also-gone"},
            None,
            ["KUBECONFIG={tmp}/gone:{tmp}/also-gone names no file that exists", "--kubeconfig"],
            id="a KUBECONFIG whose files do not exist",
        ),
        pytest.param(
            {"KUBECONFIG": "{tmp}/config"},
            "nope",
            ["KUBECONFIG={tmp}/config (context nope)", "nope"],
            id="a context the kubeconfig does not have",
        ),
        pytest.param(
            {},
            "c0",
            ["--context c0 needs a kubeconfig", "--kubeconfig PATH"],
            id="a context without a kubeconfig",
        ),
    ],
)
def test_an_unusable_source_is_one_line_naming_it(
    tmp_path: Path,
    home: Path,
    setup: dict[str, str],
    context: str | None,
    expected: list[str],
) -> None:
    _write(tmp_path / "config", _kubeconfig("https://a.example"))
    environ = {"HOME": str(home), **{k: v.format(tmp=tmp_path) for k, v in setup.items()}}

    with pytest.raises(BadInput) as raised:
        _host(None, environ, context=context)

    message = str(raised.value)
    assert "\n" not in message
    for part in expected:
        assert part.format(tmp=tmp_path) in message


def test_a_kubeconfig_flag_naming_no_file_says_so(tmp_path: Path, home: Path) -> None:
    with pytest.raises(BadInput, match=r"--kubeconfig .*/absent: no such file"):
        _host(tmp_path / "absent", {"HOME": str(home)})
