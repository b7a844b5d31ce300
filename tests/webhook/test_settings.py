"""Settings of SPEC §5: flags > environment > `--config` YAML > defaults, and one clear line
naming the flag, the variable and the accepted form for every bad value."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from webhook.policy import Percent, Policy
from webhook.quantity import parse
from webhook.settings import Settings, SettingsError, load_settings

DOCUMENTED_DEFAULTS = {
    "host": "0.0.0.0",
    "port": 8443,
    "tls_cert_file": None,
    "tls_key_file": None,
    "metrics_port": 9090,
    "annotation": "shm-size",
    "default_size": "",
    "max_size": "",
    "memory_policy": "default-container",
    "on_invalid": "deny",
    "volume_name": "dshm",
    "mount_path": "/dev/shm",
    "namespace_policy": False,
    "kubeconfig": None,
    "max_body_bytes": 8388608,
    "shutdown_grace": 5,
    "log_level": "info",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DOCUMENTED_DEFAULTS:
        monkeypatch.delenv(f"SHM_WEBHOOK_{name.upper()}", raising=False)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_the_defaults_are_the_documented_ones() -> None:
    assert load_settings().model_dump() == DOCUMENTED_DEFAULTS


def test_the_settings_table_is_exactly_the_spec_table() -> None:
    assert set(Settings.model_fields) == set(DOCUMENTED_DEFAULTS)


@pytest.mark.parametrize(
    ("flag", "env", "config", "expected"),
    [
        pytest.param("3Gi", "2Gi", "1Gi", "3Gi", id="a flag beats the environment and the file"),
        pytest.param(None, "2Gi", "1Gi", "2Gi", id="the environment beats the file"),
        pytest.param(None, None, "1Gi", "1Gi", id="the file beats the default"),
        pytest.param(None, None, None, "", id="the default applies when nothing is given"),
        pytest.param("3Gi", None, None, "3Gi", id="a flag alone applies"),
    ],
)
def test_precedence_is_flags_environment_file_defaults(
    *,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flag: str | None,
    env: str | None,
    config: str | None,
    expected: str,
) -> None:
    if env is not None:
        monkeypatch.setenv("SHM_WEBHOOK_DEFAULT_SIZE", env)
    config_file = write_config(tmp_path, f"default_size: {config}\n") if config else None
    flags = {"default_size": flag} if flag is not None else {}
    assert load_settings(flags, config_file=config_file).default_size == expected


def test_every_setting_can_come_from_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHM_WEBHOOK_PORT", "9443")
    monkeypatch.setenv("SHM_WEBHOOK_MEMORY_POLICY", "all")
    monkeypatch.setenv("SHM_WEBHOOK_SHUTDOWN_GRACE", "0.5")
    settings = load_settings()
    assert (settings.port, settings.memory_policy, settings.shutdown_grace) == (9443, "all", 0.5)


def test_an_empty_environment_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHM_WEBHOOK_PORT", "")
    assert load_settings().port == 8443


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("max_size", id="config keys may be written as the setting"),
        pytest.param("max-size", id="config keys may be written as the flag"),
        pytest.param("maxSize", id="config keys may be written as the Helm value"),
    ],
)
def test_config_file_keys(tmp_path: Path, key: str) -> None:
    config_file = write_config(tmp_path, f"{key}: 16Gi\n")
    assert load_settings(config_file=config_file).max_size == "16Gi"


def test_a_size_may_be_a_plain_number_in_the_config_file(tmp_path: Path) -> None:
    config_file = write_config(tmp_path, "max_size: 1073741824\n")
    assert load_settings(config_file=config_file).policy().max_size == 2**30


def test_an_empty_config_file_changes_nothing(tmp_path: Path) -> None:
    assert load_settings(config_file=write_config(tmp_path, "")) == load_settings()


BAD_VALUES = [
    ("port", "0", "1 to 65535", "port zero is refused"),
    ("port", "65536", "1 to 65535", "a port above 65535 is refused"),
    ("port", "https", "1 to 65535", "a port that is not a number is refused"),
    ("metrics_port", "-1", "0 for no metrics", "a negative metrics port is refused"),
    ("default_size", "8GB", "write 8Gi or 8G", "a default size in GB is refused"),
    ("default_size", "-1Gi", "negative", "a negative default size is refused"),
    ("default_size", "100m", "100Mi", "a default size below a byte is refused"),
    ("default_size", "0%", "N%", "a zero percentage is refused"),
    ("default_size", "101%", "N%", "a percentage above 100 is refused"),
    ("default_size", "50 %", "N%", "a percentage with a space is refused"),
    ("max_size", "lots", "8Gi", "a cap that is not a size is refused"),
    ("max_size", "0", "empty for no cap", "a zero cap is refused"),
    ("memory_policy", "some", "default-container, all or none", "an unknown memory policy"),
    ("on_invalid", "ignore", "deny or warn", "an unknown invalid-value handling is refused"),
    ("volume_name", "Dshm", "DNS-1123", "a volume name with capitals is refused"),
    ("volume_name", "d" * 64, "DNS-1123", "a volume name of 64 characters is refused"),
    ("mount_path", "dev/shm", "absolute", "a relative mount path is refused"),
    ("annotation", "a/b/c", "annotation key", "an annotation key with two slashes is refused"),
    ("annotation", "", "annotation key", "an empty annotation key is refused"),
    ("max_body_bytes", "0", "at least 1", "a zero body limit is refused"),
    ("shutdown_grace", "-1", "at least 0", "a negative grace is refused"),
    ("shutdown_grace", "nan", "at least 0", "a grace that is not a number is refused"),
    ("log_level", "trace", "debug, info", "an unknown log level is refused"),
    ("host", " ", "address", "a blank host is refused"),
]
SOURCES = ["flag", "environment", "config file"]


@pytest.mark.parametrize(
    ("source", "name", "value", "accepted"),
    [
        pytest.param(source, name, value, accepted, id=f"{why} (from the {source})")
        for name, value, accepted, why in BAD_VALUES
        for source in SOURCES
        # A blank variable counts as unset, so it cannot be a bad value.
        if not (source == "environment" and not value.strip())
    ],
)
def test_a_bad_value_is_one_line_naming_flag_variable_and_accepted_form(
    *,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    name: str,
    value: str,
    accepted: str,
) -> None:
    flags: dict[str, Any] = {}
    config_file = None
    if source == "flag":
        flags[name] = value
    elif source == "environment":
        monkeypatch.setenv(f"SHM_WEBHOOK_{name.upper()}", value)
    else:
        config_file = write_config(tmp_path, f"{name}: {value!r}\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(flags, config_file=config_file)
    message = str(caught.value)
    assert "\n" not in message
    assert f"--{name.replace('_', '-')}" in message
    assert f"SHM_WEBHOOK_{name.upper()}" in message
    assert accepted in message


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param({"tls_cert_file": "tls.crt"}, id="a certificate without its key is refused"),
        pytest.param({"tls_key_file": "tls.key"}, id="a key without its certificate is refused"),
    ],
)
def test_certificate_and_key_come_together(flags: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=r"--tls-cert-file .* and --tls-key-file"):
        load_settings(flags)


def test_a_default_size_above_the_cap_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"--default-size .* exceeds --max-size"):
        load_settings({"default_size": "16Gi", "max_size": "8Gi"})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("port: [1\n", "not valid YAML", id="a config file that is not YAML"),
        pytest.param("- port\n", "mapping", id="a config file that is a list"),
        pytest.param("prot: 1\n", "unknown setting 'prot'", id="a misspelt setting in the file"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_it(
    *, tmp_path: Path, text: str, problem: str
) -> None:
    config_file = write_config(tmp_path, text)
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=config_file)
    assert str(config_file) in str(caught.value)
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"missing\.yaml: cannot read"):
        load_settings(config_file=tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        pytest.param({}, Policy(), id="the defaults make the default policy"),
        pytest.param(
            {"default_size": "1.5Gi", "max_size": "16Gi"},
            Policy(default_size=parse("1.5Gi"), max_size=16 * 2**30),
            id="sizes become a quantity and a byte cap",
        ),
        pytest.param(
            {"default_size": "12.5%"},
            Policy(default_size=Percent(Fraction(25, 2))),
            id="a percentage becomes an exact fraction",
        ),
        pytest.param(
            {
                "annotation": "example.com/shm",
                "memory_policy": "none",
                "on_invalid": "warn",
                "volume_name": "shm",
                "mount_path": "/shm",
            },
            Policy(
                annotation="example.com/shm",
                memory_policy="none",
                on_invalid="warn",
                volume_name="shm",
                mount_path="/shm",
            ),
            id="the other policy settings pass through",
        ),
    ],
)
def test_settings_make_the_policy(flags: dict[str, str], expected: Policy) -> None:
    assert load_settings(flags).policy() == expected


def test_log_level_is_case_insensitive() -> None:
    assert load_settings({"log_level": "WARNING"}).log_level == "warning"
