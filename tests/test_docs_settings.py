"""docs/configuration.md's settings table is true: every setting the server has is a row, and
each row's flag, environment variable, YAML key, Helm value, default and accepted form are
what `shm-webhook`, its config-file reader and the chart actually do."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import Chart, of_kind
from tests.conftest import REPO
from webhook.cli import main
from webhook.settings import SettingsError, load_settings

CONFIGURATION = REPO / "docs" / "configuration.md"
ROW = re.compile(
    r"^\| `(?P<flag>--[a-z-]+)` \| `(?P<env>SHM_WEBHOOK_[A-Z_]+)` \| `(?P<key>[A-Za-z]+)` "
    r"\| (?P<helm>[^|]+) \| (?P<default>[^|]+) \| (?P<accepted>[^|]+) \|$"
)


@dataclass(frozen=True)
class Sample:
    """A valid value other than the default, an invalid one, and settings it needs beside it."""

    valid: str
    invalid: str
    with_: tuple[tuple[str, str], ...] = ()


SAMPLES = {
    "host": Sample("127.0.0.1", " "),
    "port": Sample("9443", "x"),
    "tls_cert_file": Sample("/etc/tls/tls.crt", " ", (("tls_key_file", "/etc/tls/tls.key"),)),
    "tls_key_file": Sample("/etc/tls/tls.key", " ", (("tls_cert_file", "/etc/tls/tls.crt"),)),
    "metrics_port": Sample("9102", "70000"),
    "annotation": Sample("example.com/shm", "bad key"),
    "default_size": Sample("25%", "101%"),
    "max_size": Sample("64Gi", "0"),
    "memory_policy": Sample("all", "some"),
    "on_invalid": Sample("warn", "ignore"),
    "volume_name": Sample("shm", "Shm"),
    "mount_path": Sample("/shm", "shm"),
    "namespace_policy": Sample("true", "maybe"),
    "kubeconfig": Sample("/etc/kube/config", " "),
    "max_body_bytes": Sample("1048576", "0"),
    "shutdown_grace": Sample("7", "-1"),
    "log_level": Sample("debug", "verbose"),
}


def rows() -> dict[str, dict[str, str]]:
    section = CONFIGURATION.read_text(encoding="utf-8").split("## Settings", 1)[1]
    found: dict[str, dict[str, str]] = {}
    for line in section.split("\n## ", 1)[0].splitlines():
        match = ROW.match(line)
        if match:
            name = match["flag"].removeprefix("--").replace("-", "_")
            assert name not in found, f"{match['flag']} is listed twice"
            found[name] = {key: value.strip() for key, value in match.groupdict().items()}
    return found


ROWS = rows()


def documented_default(cell: str) -> Any:
    """`8443` is the YAML value in backticks; text starting with "none" is no value."""
    if cell.startswith("none"):
        return None
    literal = re.fullmatch(r"`([^`]*)`", cell)
    assert literal is not None, f"default {cell!r} is neither `value` nor none..."
    return yaml.safe_load(literal.group(1))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("SHM_WEBHOOK_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_the_table_lists_every_setting_once() -> None:
    assert set(ROWS) == set(load_settings().model_dump())
    assert set(SAMPLES) == set(ROWS), "give the new setting a Sample here"


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("name", list(ROWS))
def test_the_documented_default_is_the_servers(name: str) -> None:
    assert load_settings().model_dump()[name] == documented_default(ROWS[name]["default"])


@pytest.mark.parametrize("name", list(ROWS))
def test_the_variable_and_the_yaml_key_set_the_setting(
    name: str, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sample, row = SAMPLES[name], ROWS[name]
    for other, value in sample.with_:
        clean_env.setenv(ROWS[other]["env"], value)
    clean_env.setenv(row["env"], sample.valid)
    from_env = load_settings().model_dump()[name]
    assert from_env != documented_default(row["default"])

    for other, _ in sample.with_:
        clean_env.delenv(ROWS[other]["env"])
    clean_env.delenv(row["env"])
    config = tmp_path / "settings.yaml"
    values = {ROWS[other]["key"]: value for other, value in sample.with_}
    config.write_text(yaml.safe_dump({row["key"]: sample.valid, **values}), encoding="utf-8")
    assert load_settings(config_file=config).model_dump()[name] == from_env


@pytest.mark.parametrize("name", list(ROWS))
def test_the_accepted_form_is_what_the_error_quotes(
    name: str, clean_env: pytest.MonkeyPatch
) -> None:
    sample, row = SAMPLES[name], ROWS[name]
    for other, value in sample.with_:
        clean_env.setenv(ROWS[other]["env"], value)
    clean_env.setenv(row["env"], sample.invalid)
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith(f"{row['flag']} ({row['env']}) ")
    assert message.endswith(f"expected {row['accepted']}")


def test_serve_has_every_documented_flag_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    help_text = capsys.readouterr().out
    for row in ROWS.values():
        assert row["flag"] in help_text
        assert row["env"] in help_text


@pytest.mark.parametrize(
    "name", [name for name, row in ROWS.items() if row["helm"].startswith("`")]
)
def test_the_helm_value_reaches_the_server_as_its_variable(helm: str, name: str) -> None:
    row, sample = ROWS[name], SAMPLES[name]
    match = re.match(r"`([A-Za-z.]+)`", row["helm"])
    assert match is not None
    [deployment] = of_kind(Chart(helm).render(f"{match.group(1)}={sample.valid}"), "Deployment")
    [container] = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "webhook"
    ]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env[row["env"]] == sample.valid


def test_settings_without_a_helm_value_are_left_alone_or_set_as_the_row_says(helm: str) -> None:
    [deployment] = of_kind(Chart(helm).render(), "Deployment")
    [container] = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "webhook"
    ]
    env = {item["name"]: item.get("value") for item in container["env"]}
    for row in ROWS.values():
        cell = row["helm"]
        if not cell.startswith("—"):
            continue
        fixed = re.search(r"the chart sets (\S+?)\)", cell)
        mounted = re.search(r"the chart mounts the TLS Secret's `([\w.]+)`", cell)
        if fixed:
            assert env.get(row["env"]) == fixed.group(1), cell
        elif mounted:
            assert Path(env.get(row["env"]) or "").name == mounted.group(1), cell
        else:
            assert row["env"] not in env, f"{row['env']} is set by the chart: document how"
