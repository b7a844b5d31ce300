"""Server and policy settings (docs/configuration.md): flags > `SHM_WEBHOOK_*` environment >
`--config` YAML > defaults, validated once at start-up.

Owns: `Settings`, the one declaration of every setting: its type, default, accepted form (the
field's description, quoted by its error message and its `--help`) and checks; the CLI flags,
the environment names, the YAML keys and `Policy` are derived from it. Also `load_settings` and
the `SettingsError` one-line messages. Must not import the mutation core, the web framework,
the server or the Kubernetes client; `yaml` is imported only when a config file is given
(keeps `serve` lean, docs/performance.md).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from webhook.checks import is_dns_label, is_qualified_name
from webhook.policy import (
    DEFAULT_SIZE_FORM,
    MAX_SIZE_FORM,
    MemoryPolicy,
    OnInvalid,
    Policy,
    parse_default_size,
    parse_max_size,
)
from webhook.quantity import Quantity, SizeError, to_bytes

ENV_PREFIX = "SHM_WEBHOOK_"

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


@dataclass(frozen=True, slots=True)
class Check:
    """`Annotated` metadata of a setting: a predicate its value must satisfy."""

    holds: Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Parsed:
    """`Annotated` metadata of a policy setting: how its text becomes its `Policy` value; the
    parser is told how to name the setting and raises `SizeError` for a bad value."""

    parse: Callable[..., Any]

    def __call__(self, text: str, *, name: str) -> Any:
        try:
            return self.parse(text, field=label(name))
        except SizeError as error:
            raise SettingsError(str(error)) from None


def _form(text: str, **constraints: Any) -> Any:
    """A setting's `Field`: `text` is its accepted form, in its error message and `--help`."""
    return Field(description=text, **constraints)


_PORT = "a port number from 1 to 65535"
_NOT_BLANK = r"\S"


class Settings(BaseSettings):
    """Every setting. Build it with `load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        coerce_numbers_to_str=True,  # `maxSize: 1073741824` in a YAML file is a size too
    )

    host: Annotated[
        str, _form("an address to listen on, such as 0.0.0.0 or ::", pattern=_NOT_BLANK)
    ] = "0.0.0.0"
    port: Annotated[int, _form(_PORT, ge=1, le=65535)] = 8443
    tls_cert_file: Annotated[
        str | None, _form("the path of a PEM certificate file", pattern=_NOT_BLANK)
    ] = None
    tls_key_file: Annotated[
        str | None, _form("the path of a PEM private key file", pattern=_NOT_BLANK)
    ] = None
    metrics_port: Annotated[int, _form(f"{_PORT}, or 0 for no metrics", ge=0, le=65535)] = 9090
    annotation: Annotated[
        str,
        _form("an annotation key such as shm-size or example.com/shm-size"),
        Check(is_qualified_name),
    ] = "shm-size"
    default_size: Annotated[str, _form(DEFAULT_SIZE_FORM), Parsed(parse_default_size)] = ""
    max_size: Annotated[str, _form(MAX_SIZE_FORM), Parsed(parse_max_size)] = ""
    memory_policy: Annotated[MemoryPolicy, _form("default-container, all or none")] = (
        "default-container"
    )
    on_invalid: Annotated[OnInvalid, _form("deny or warn")] = "deny"
    volume_name: Annotated[
        str,
        _form("a DNS-1123 label (lower-case letters, digits, '-'; at most 63) such as dshm"),
        Check(is_dns_label),
    ] = "dshm"
    mount_path: Annotated[str, _form("an absolute path such as /dev/shm", pattern="^/")] = (
        "/dev/shm"
    )
    namespace_policy: Annotated[
        bool,
        _form(
            "true to apply the default sizes and ceilings of namespace annotations (the webhook"
            " then lists and watches namespaces), or false"
        ),
    ] = False
    kubeconfig: Annotated[
        str | None,
        _form(
            "the path of a kubeconfig, for a webhook run outside a cluster (none: the pod's"
            " service account)",
            pattern=_NOT_BLANK,
        ),
    ] = None
    max_body_bytes: Annotated[
        int, _form("a whole number of bytes of at least 1, such as 8388608", ge=1)
    ] = 8 * 1024 * 1024
    shutdown_grace: Annotated[
        float, _form("a number of seconds of at least 0, such as 5", ge=0)
    ] = 5.0
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"], _form("debug, info, warning or error")
    ] = "info"

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

    @field_validator("*", mode="after")
    @classmethod
    def _checked(cls, value: object, info: ValidationInfo) -> object:
        """Apply the `Check` and `Parsed` metadata of the field."""
        name = str(info.field_name)
        for marker in cls.model_fields[name].metadata:
            if isinstance(marker, Check) and not marker.holds(str(value)):
                raise _invalid(name, value)
            if isinstance(marker, Parsed):
                marker(str(value), name=name)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise SettingsError(
                f"{label('tls_cert_file')} and {label('tls_key_file')} go together: give both,"
                " or neither for a development certificate"
            )
        policy = self.policy()
        default, cap = policy.default_size, policy.max_size
        if isinstance(default, Quantity) and cap is not None and to_bytes(default) > cap:
            raise SettingsError(
                f'{label("default_size")} "{self.default_size}" exceeds {label("max_size")}'
                f' "{self.max_size}": every pod without the annotation would be denied'
            )
        return self

    def policy(self) -> Policy:
        """The mutation policy these settings describe: each `Policy` field is the setting of
        that name, parsed where the setting declares how."""
        values = {}
        for policy_field in dataclasses.fields(Policy):
            value = getattr(self, policy_field.name)
            for marker in type(self).model_fields[policy_field.name].metadata:
                if isinstance(marker, Parsed):
                    value = marker(value, name=policy_field.name)
            values[policy_field.name] = value
        return Policy(**values)


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
        if name not in Settings.model_fields:
            known = ", ".join(Settings.model_fields)
            raise SettingsError(f"--config {path}: unknown setting {key!r}; known: {known}")
        values[name] = value
    return values


def _setting_name(key: object) -> str:
    """Config keys may be written like the setting (max_size), the flag or Helm (maxSize)."""
    text = str(key).replace("-", "_")
    return re.sub(r"(?<=[a-z])([A-Z])", r"_\1", text).lower()


def _invalid(name: str, value: object) -> SettingsError:
    shown = str(value)[:64] if isinstance(value, str | int | float) else type(value).__name__
    form = Settings.model_fields[name].description
    return SettingsError(f'{label(name)} "{shown}" is not valid; expected {form}')


def _settings_error(error: ValidationError) -> SettingsError:
    first = error.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, SettingsError):
        return cause
    name = str(first["loc"][0]) if first["loc"] else ""
    if name in Settings.model_fields:
        return _invalid(name, first["input"])
    return SettingsError(f"invalid settings: {first['msg']}")
