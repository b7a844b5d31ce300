"""The status annotation: what a mutation records on the pod, and reading it back.

Owns: `STATUS_ANNOTATION` (its format is in docs/annotations.md), `read_status` (an earlier
admission's record, or None when absent or not ours) and `status_op`. Pure: the standard
library, the name checks and the quantity parser.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from webhook import patches
from webhook.checks import is_dns_label
from webhook.quantity import parse_size

STATUS_ANNOTATION = "shm-injection-status"
# json.dumps with separators builds an encoder per call; this one is built once.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
_STATUS_PATH = patches.pointer("metadata", "annotations", STATUS_ANNOTATION)


def read_status(text: str | None) -> dict[str, Any] | None:
    """The status annotation of an earlier admission, or None when absent or not ours."""
    if text is None:
        return None
    try:
        status = json.loads(text)
        parse_size(status["size"], field=STATUS_ANNOTATION)
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    shapes = (("volume", str), ("mounted", list), ("charged", list))
    if not isinstance(status, dict) or not all(
        isinstance(status.get(key), kind) for key, kind in shapes
    ):
        return None
    if not is_dns_label(status["volume"]):
        return None
    if not all(isinstance(name, str) for name in status["mounted"] + status["charged"]):
        return None
    return status


def status_op(pod: Mapping[str, Any], status: dict[str, Any]) -> patches.Op:
    """The op writing `status` (the four fields `read_status` checks, and whatever else an
    earlier record carried) into the pod's annotations."""
    value = _compact(status)
    if pod.get("metadata") is None:
        return patches.add("/metadata", {"annotations": {STATUS_ANNOTATION: value}})
    if pod["metadata"].get("annotations") is None:
        return patches.add("/metadata/annotations", {STATUS_ANNOTATION: value})
    return patches.add(_STATUS_PATH, value)


def _compact(status: dict[str, Any]) -> str:
    """`status` as compact JSON, byte for byte as `_COMPACT_JSON` writes it, at a tenth of its
    cost (~0.3 µs against 3) when orjson writes the same bytes: for the four fields alone
    (strings and lists of strings) in printable ASCII with nothing to escape. Anything else
    (an earlier record's extra keys may hold floats, which the two print differently; names
    to escape, which json writes as \\uXXXX) takes json."""
    if len(status) == 4:
        try:
            value = orjson.dumps(status)
        except orjson.JSONEncodeError:  # a lone surrogate, which json escapes
            pass
        else:
            if value.isascii() and b"\\" not in value and b"\x7f" not in value:
                return value.decode("ascii")
    return _COMPACT_JSON.encode(status)
