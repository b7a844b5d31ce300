"""The vocabulary of a mutation: the policy that shapes it and the reasons it can end with.

Owns: `Policy` (the settings the planner reads; `webhook.settings` declares how each is set),
`NamespacePolicy` (a namespace's own default size and ceiling, docs/namespaces.md), `Percent`
and the parsers of a default size and a ceiling, the `MemoryPolicy` and `OnInvalid`
literals, `Outcome` and `Reason`, whose values
are the `reason` label of the `shm_webhook_admissions_total` metric and the `reason` field of
the admission log line (docs/metrics.md lists them from this declaration). Pure: the standard
library and `webhook.quantity` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Literal

from webhook.quantity import Quantity, SizeError, parse_size, to_bytes

MemoryPolicy = Literal["default-container", "all", "none"]
OnInvalid = Literal["deny", "warn"]
Outcome = Literal["mutated", "skipped", "denied", "error"]


@dataclass(frozen=True, slots=True)
class Percent:
    """`defaultSize: N%`: the size is N% of the charged container's memory limit."""

    value: Fraction  # 0 < value <= 100


DEFAULT_SIZE_FORM = "a size such as 8Gi or 512Mi, N% of the memory limit (0 < N <= 100), or empty"
MAX_SIZE_FORM = "a size such as 16Gi, or empty for no cap"
_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]+)?)%")


def parse_default_size(text: str, *, field: str) -> Quantity | Percent | None:
    """A default size: empty (nothing by default), a size, or `N%` of the memory limit;
    `SizeError` naming `field` otherwise."""
    if text == "":
        return None
    if text.endswith("%"):
        match = _PERCENT.fullmatch(text)
        value = Fraction(match.group(1)) if match else Fraction(0)
        if not 0 < value <= 100:
            raise SizeError(f'{field} "{text[:64]}" is not valid; expected {DEFAULT_SIZE_FORM}')
        return Percent(value)
    return parse_size(text, field=field)


def parse_max_size(text: str, *, field: str) -> int | None:
    """A ceiling in bytes: empty for no cap, else a size of at least one byte."""
    if text == "":
        return None
    size = to_bytes(parse_size(text, field=field))
    if size == 0:
        raise SizeError(f'{field} "{text[:64]}" is not valid; expected {MAX_SIZE_FORM}')
    return size


@dataclass(frozen=True, slots=True)
class Policy:
    """What the planner is told; its defaults are the settings' defaults."""

    annotation: str = "shm-size"
    default_size: Quantity | Percent | None = None
    max_size: int | None = None  # bytes; None = no cap
    memory_policy: MemoryPolicy = "default-container"
    on_invalid: OnInvalid = "deny"
    volume_name: str = "dshm"
    mount_path: str = "/dev/shm"


@dataclass(frozen=True, slots=True)
class NamespacePolicy:
    """What a namespace's annotations say: its own default size and ceiling. The planner
    combines them with the cluster's `Policy`: the pod's annotation, else the namespace's
    default, else the cluster's; the ceiling is the smaller of the two."""

    name: str
    default_size: Quantity | Percent | None = None
    max_size: int | None = None  # bytes


class Reason(StrEnum):
    """Why an admission ended as it did. Each member's docstring-like text is `description`."""

    description: str

    def __new__(cls, value: str, description: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    # mutated
    INJECTED = "injected", "the pod got its /dev/shm volume, mounts and memory"
    REINVOKED = "reinvoked", "a pod mutated before got mounts for containers added since"
    # skipped: admitted unchanged
    NOT_REQUESTED = "not-requested", "no size annotation and no default size"
    OPTED_OUT = "opted-out", "the annotation asks for a size of 0"
    LABEL_OPT_OUT = "label-opt-out", "the pod is labelled shm-injection=disabled"
    HOST_IPC = "host-ipc", "a hostIPC pod shares the host's /dev/shm"
    WINDOWS = "windows", "a Windows pod has no memory-backed emptyDir"
    MIRROR_POD = "mirror-pod", "a static (mirror) pod cannot be changed"
    NO_CONTAINERS = "no-containers", "no container could take the mount"
    NO_MEMORY_BASIS = "no-memory-basis", "a percentage default size, and no memory to take it of"
    ALREADY_MOUNTED = "already-mounted", "every container already mounts something at the path"
    ALREADY_INJECTED = "already-injected", "a pod mutated before that needs nothing more"
    NOT_A_POD_CREATE = "not-a-pod-create", "the request is not the creation of a Pod"
    # denied, or skipped with a warning under onInvalid: warn
    INVALID_SIZE = "invalid-size", "the size is not a quantity, or exceeds the maximum"
    # error: HTTP 4xx or 5xx, no AdmissionReview answer
    CONTENT_TYPE = "content-type", "the Content-Type is not application/json"
    CONTENT_LENGTH = "content-length", "the Content-Length is not a number"
    BODY_TOO_LARGE = "body-too-large", "the body exceeds the size or JSON item limit (413)"
    BODIES_IN_FLIGHT = "bodies-in-flight", "too many request bytes are arriving at once (503)"
    NOT_JSON = "not-json", "the body is not JSON"
    NOT_AN_OBJECT = "not-an-object", "the body is not a JSON object"
    API_VERSION = "api-version", "the apiVersion is not admission.k8s.io/v1 or v1beta1"
    KIND = "kind", "the kind is not AdmissionReview"
    MISSING_REQUEST = "missing-request", "the review has no request object"
    MISSING_UID = "missing-uid", "the request has no uid"
    INVALID_OBJECT = "invalid-object", "a field the webhook reads has the wrong type"
    INTERNAL_ERROR = "internal-error", "a bug: the webhook answered 500 (logged with a traceback)"
