"""The fake apiserver of every tests/certs module, and a kubeconfig file that reaches it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.certs.fake_apiserver import FakeApiServer, kubeconfig, serve


@pytest.fixture
def fake() -> FakeApiServer:
    return FakeApiServer()


@pytest.fixture
def kubeconfig_file(
    fake: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    # The client takes proxies from the environment; the fake is local.
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")
    path = tmp_path / "kubeconfig"
    with serve(fake) as url:
        path.write_text(yaml.safe_dump(kubeconfig(url)))
        yield path
