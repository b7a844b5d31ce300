"""Server and policy settings (SPEC §5): flags > `SHM_WEBHOOK_*` environment > `--config` YAML
> defaults, validated once at start-up.

Owns: `Settings` (pydantic-settings; no module-level instance), `load_settings`, the
`SettingsError` one-line messages and `Settings.policy()`. Must not import the web framework,
the server or the Kubernetes client; `yaml` is imported only when a config file is given
(keeps `serve` lean, PERF-NOTES §7).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextvars import ContextVar
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from webhook.mutation import Percent, Policy
from webhook.quantity import Quantity, SizeError, parse_size, to_bytes

ENV_PREFIX = "SHM_WEBHOOK_"
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]+)?)%")

# The accepted form of each setting, quoted in its error message.
ACCEPTED = {
    "host": "an address to listen on, such as 0.0.0.0 or ::",
    "port": "a port number from 1 to 65535",
    "tls_cert_file": "the path of a PEM certificate file",
    "tls_key_file": "the path of a PEM private key file",
    "metrics_port": "a port number from 1 to 65535, or 0 for no metrics",
    "annotation": "an annotation key such as shm-size or example.com/shm-size",
    "default_size": "a size such as 8Gi or 512Mi, N% of the memory limit (0 < N <= 100), or empty",
    "max_size": "a size such as 16Gi, or empty for no cap",
    "memory_policy": "default-container, all or none",
    "on_invalid": "deny or warn",
    "volume_name": "a DNS-1123 label (lower-case letters, digits, '-'; at most 63) such as dshm",
    "mount_path": "an absolute path such as /dev/shm",
    "max_body_bytes": "a whole number of bytes of at least 1, such as 8388608",
    "shutdown_grace": "a number of seconds of at least 0, such as 5",
    "log_level": "debug, info, warning or error",
}

_config_values: ContextVar[Mapping[str, Any] | None] = ContextVar("config_values", default=None)


class SettingsError(ValueError):
    """A setting has a bad value; the message is one line naming the flag and variable."""


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def label(name: str) -> str:
    """How a setting is named in messages: its flag and its environment variable."""
    return f"{flag(name)} ({env_var(name)})"


class Settings(BaseSettings):
    """Every setting of SPEC §5. Build it with `load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        coerce_numbers_to_str=True,  # `maxSize: 1073741824` in a YAML file is a size too
    )

    host: str = "0.0.0.0"
    port: int = 8443
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    metrics_port: int = 9090
    annotation: str = "shm-size"
    default_size: str = ""
    max_size: str = ""
    memory_policy: Literal["default-container", "all", "none"] = "default-container"
    on_invalid: Literal["deny", "warn"] = "deny"
    volume_name: str = "dshm"
    mount_path: str = "/dev/shm"
    max_body_bytes: int = 8 * 1024 * 1024
    shutdown_grace: float = 5.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Init arguments are the flags; the config file ranks below the environment.
        return init_settings, env_settings, _ConfigFileSource(settings_cls)

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("port", "metrics_port", "max_body_bytes", "shutdown_grace", mode="after")
    @classmethod
    def _in_range(cls, value: float, info: Any) -> float:
        lowest = 1 if info.field_name in ("port", "max_body_bytes") else 0
        highest = 65535 if info.field_name.endswith("port") else float("inf")
        if not lowest <= value <= highest:
            raise _invalid(info.field_name, value)
        return value

    @field_validator("host", "tls_cert_file", "tls_key_file", mode="after")
    @classmethod
    def _not_blank(cls, value: str | None, info: Any) -> str | None:
        if value is not None and not value.strip():
            raise _invalid(info.field_name, value)
        return value

    @field_validator("annotation", mode="after")
    @classmethod
    def _annotation_key(cls, value: str) -> str:
        prefix, _, name = value.rpartition("/")
        valid_prefix = not prefix or (len(prefix) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(prefix))
        if not (valid_prefix and len(name) <= 63 and _QUALIFIED_NAME.fullmatch(name)):
            raise _invalid("annotation", value)
        return value

    @field_validator("volume_name", mode="after")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if len(value) > 63 or not _DNS1123_LABEL.fullmatch(value):
            raise _invalid("volume_name", value)
        return value

    @field_validator("mount_path", mode="after")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise _invalid("mount_path", value)
        return value

    @field_validator("default_size", "max_size", mode="after")
    @classmethod
    def _size(cls, value: str, info: Any) -> str:
        parse_default_size(value) if info.field_name == "default_size" else parse_max_size(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise SettingsError(
                f"{label('tls_cert_file')} and {label('tls_key_file')} go together: give both,"
                " or neither for a development certificate"
            )
        default, cap = parse_default_size(self.default_size), parse_max_size(self.max_size)
        if isinstance(default, Quantity) and cap is not None and to_bytes(default) > cap:
            raise SettingsError(
                f'{label("default_size")} "{self.default_size}" exceeds {label("max_size")}'
                f' "{self.max_size}": every pod without the annotation would be denied'
            )
        return self

    def policy(self) -> Policy:
        """The mutation policy these settings describe."""
        return Policy(
            annotation=self.annotation,
            default_size=parse_default_size(self.default_size),
            max_size=parse_max_size(self.max_size),
            memory_policy=self.memory_policy,
            on_invalid=self.on_invalid,
            volume_name=self.volume_name,
            mount_path=self.mount_path,
        )


def parse_default_size(text: str) -> Quantity | Percent | None:
    """`defaultSize`: empty (nothing by default), a size, or `N%` of the memory limit."""
    if text == "":
        return None
    if text.endswith("%"):
        match = _PERCENT.fullmatch(text)
        value = Fraction(match.group(1)) if match else Fraction(0)
        if not 0 < value <= 100:
            raise _invalid("default_size", text)
        return Percent(value)
    try:
        return parse_size(text, field=label("default_size"))
    except SizeError as error:
        raise SettingsError(str(error)) from None


def parse_max_size(text: str) -> int | None:
    """`maxSize` in bytes: empty for no cap, else a size of at least one byte."""
    if text == "":
        return None
    try:
        size = to_bytes(parse_size(text, field=label("max_size")))
    except SizeError as error:
        raise SettingsError(str(error)) from None
    if size == 0:
        raise _invalid("max_size", text)
    return size


def load_settings(
    flags: Mapping[str, Any] | None = None, *, config_file: str | Path | None = None
) -> Settings:
    """Settings from flags (keys are setting names), the environment, then the config file."""
    values = _read_config(Path(config_file)) if config_file is not None else {}
    token = _config_values.set(values)
    try:
        return Settings(**dict(flags or {}))
    except ValidationError as error:
        raise _settings_error(error) from None
    finally:
        _config_values.reset(token)


class _ConfigFileSource(PydanticBaseSettingsSource):
    """The values of the `--config` file being loaded (see `load_settings`)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # noqa: ARG002
        return self().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_config_values.get() or {})


def _read_config(path: Path) -> dict[str, Any]:
    import yaml  # only here: `serve` without --config never pays for it

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"--config {path}: cannot read it: {error.strerror}") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise SettingsError(f"--config {path} is not valid YAML{line}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise SettingsError(f"--config {path}: expected a mapping of setting names to values")
    values = {}
    for key, value in document.items():
        name = _setting_name(key)
        if name not in ACCEPTED:
            raise SettingsError(
                f"--config {path}: unknown setting {key!r}; known: {', '.join(ACCEPTED)}"
            )
        values[name] = value
    return values


def _setting_name(key: object) -> str:
    """Config keys may be written like the setting (max_size), the flag or Helm (maxSize)."""
    text = str(key).replace("-", "_")
    return re.sub(r"(?<=[a-z])([A-Z])", r"_\1", text).lower()


def _invalid(name: str, value: object) -> SettingsError:
    shown = str(value)[:64] if isinstance(value, str | int | float) else type(value).__name__
    return SettingsError(f'{label(name)} "{shown}" is not valid; expected {ACCEPTED[name]}')


def _settings_error(error: ValidationError) -> SettingsError:
    first = error.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, SettingsError):
        return cause
    name = str(first["loc"][0]) if first["loc"] else ""
    if name in ACCEPTED:
        return _invalid(name, first["input"])
    return SettingsError(f"invalid settings: {first['msg']}")
