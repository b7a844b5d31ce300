"""The chart and `Settings` agree: every setting reaches the server through its environment
variable, and a default install runs the server with the settings' own defaults, but for the
few the chart fixes (its port, the mounted certificate files)."""

from __future__ import annotations

import pytest

from tests.chart.render import Chart, env
from webhook.policy import Policy
from webhook.settings import Settings, env_var, load_settings

# What the Deployment sets to its own value, and why the value differs from the default.
CHART_FIXED = {
    "tls_cert_file": "/etc/shm-webhook/tls/tls.crt",  # the mounted Secret
    "tls_key_file": "/etc/shm-webhook/tls/tls.key",
}
# Settings the chart leaves to their defaults: no value of the chart changes them.
NOT_SET = {"host", "max_body_bytes", "kubeconfig"}  # in a cluster: the service account


def test_every_setting_but_the_listed_ones_is_passed_by_its_variable(chart: Chart) -> None:
    passed = set(env(chart.render()))
    expected = {env_var(name) for name in Settings.model_fields if name not in NOT_SET}
    assert passed == expected


def test_a_default_install_serves_with_the_settings_defaults(
    chart: Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in env(chart.render()).items():
        monkeypatch.setenv(variable, value)
    served = load_settings()
    defaults = Settings()
    for name in Settings.model_fields:
        expected = CHART_FIXED.get(name, getattr(defaults, name))
        assert getattr(served, name) == expected, name


def test_the_policy_defaults_are_the_settings_defaults() -> None:
    assert Settings().policy() == Policy()


@pytest.mark.parametrize(
    ("values", "name", "expected"),
    [
        pytest.param(("defaultSize=25%",), "default_size", "25%", id="defaultSize"),
        pytest.param(("maxSize=64Gi",), "max_size", "64Gi", id="maxSize"),
        pytest.param(("annotation=example.com/shm",), "annotation", "example.com/shm", id="key"),
        pytest.param(("memoryPolicy=all",), "memory_policy", "all", id="memoryPolicy"),
        pytest.param(("onInvalid=warn",), "on_invalid", "warn", id="onInvalid"),
        pytest.param(("volumeName=shm",), "volume_name", "shm", id="volumeName"),
        pytest.param(("mountPath=/shm",), "mount_path", "/shm", id="mountPath"),
        pytest.param(("shutdownGrace=20",), "shutdown_grace", 20.0, id="shutdownGrace"),
        pytest.param(("logLevel=debug",), "log_level", "debug", id="logLevel"),
        pytest.param(("metrics.port=9100",), "metrics_port", 9100, id="metrics.port"),
        pytest.param(("metrics.enabled=false",), "metrics_port", 0, id="metrics off"),
        pytest.param(
            ("namespacePolicy.enabled=true",), "namespace_policy", True, id="namespacePolicy"
        ),
    ],
)
def test_each_chart_value_becomes_its_setting(
    chart: Chart,
    monkeypatch: pytest.MonkeyPatch,
    values: tuple[str, ...],
    name: str,
    expected: object,
) -> None:
    for variable, value in env(chart.render(*values)).items():
        monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), name) == expected
