"""What a namespace says of /dev/shm sizes: its annotations, read into a `NamespacePolicy`
(docs/namespaces.md).

Owns: the namespace annotation keys (a default size and a ceiling), the label that marks a
namespace with a default (the chart's webhook configuration sends every pod of such a
namespace to the webhook, not only annotated ones), and `read_namespace`, which turns a
Namespace object into its policy and the problems worth reporting. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from webhook.policy import NamespacePolicy, Policy, parse_default_size, parse_max_size
from webhook.quantity import Format, Quantity, SizeError, format_bytes, to_bytes

DEFAULT_SIZE_ANNOTATION = "shm-injection/default-size"
MAX_SIZE_ANNOTATION = "shm-injection/max-size"
DEFAULTS_LABEL = "shm-injection/defaults"
DEFAULTS_LABEL_VALUE = "true"


@dataclass(frozen=True, slots=True)
class NamespaceReading:
    """A namespace's policy (None when it says nothing of sizes) and what is wrong with it."""

    name: str
    policy: NamespacePolicy | None
    problems: tuple[str, ...] = ()


def read_namespace(namespace: Mapping[str, Any], cluster: Policy) -> NamespaceReading:
    """The policy a Namespace object's annotations give its pods. An annotation that does not
    parse is ignored and reported; a default above the ceiling is capped and reported."""
    metadata = namespace.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    name = str(metadata.get("name", ""))
    annotations = _strings(metadata.get("annotations"))
    labels = _strings(metadata.get("labels"))
    problems: list[str] = []
    default = _read(annotations, DEFAULT_SIZE_ANNOTATION, parse_default_size, name, problems)
    ceiling = _read(annotations, MAX_SIZE_ANNOTATION, parse_max_size, name, problems)
    labelled = labels.get(DEFAULTS_LABEL) == DEFAULTS_LABEL_VALUE
    if default is not None and not labelled:
        problems.append(
            f"namespace {name} has {DEFAULT_SIZE_ANNOTATION} but not the label"
            f" {DEFAULTS_LABEL}={DEFAULTS_LABEL_VALUE}: its pods without the annotation never"
            " reach the webhook"
        )
    if labelled and default is None:
        problems.append(
            f"namespace {name} is labelled {DEFAULTS_LABEL}={DEFAULTS_LABEL_VALUE} but has no"
            f" valid {DEFAULT_SIZE_ANNOTATION}: every pod of it reaches the webhook for nothing"
        )
    ceilings = [c for c in (ceiling, cluster.max_size) if c is not None]
    effective = min(ceilings) if ceilings else None
    if isinstance(default, Quantity) and effective is not None and to_bytes(default) > effective:
        cap = format_bytes(effective, Format.BINARY_SI)
        problems.append(
            f"namespace {name}: {DEFAULT_SIZE_ANNOTATION} {annotations[DEFAULT_SIZE_ANNOTATION]}"
            f" exceeds the ceiling of {cap}; its pods get {cap}"
        )
    if default is None and ceiling is None:
        return NamespaceReading(name, None, tuple(problems))
    return NamespaceReading(name, NamespacePolicy(name, default, ceiling), tuple(problems))


def _read(
    annotations: Mapping[str, str],
    key: str,
    parse: Callable[..., Any],
    name: str,
    problems: list[str],
) -> Any:
    text = annotations.get(key)
    if text is None:
        return None
    try:
        return parse(text, field=f"namespace {name} annotation {key}")
    except SizeError as error:
        problems.append(f"{error}; ignored")
        return None


def _strings(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
