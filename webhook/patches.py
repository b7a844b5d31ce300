"""RFC 6902 JSON Patch operations and RFC 6901 JSON pointers.

Owns: building the op dicts the webhook returns. Pure: standard library only.
"""

from __future__ import annotations

from typing import Any

Op = dict[str, Any]


def pointer(*parts: str | int) -> str:
    """A JSON pointer to the given path, escaping `~` as `~0` and `/` as `~1` (RFC 6901)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def add(path: str, value: Any) -> Op:
    """Create `path`, or replace it when it is an object member that exists.

    The kube-apiserver's JSON patch never creates missing parents: callers add a missing
    array or map whole, and append to an array with the `-` index.
    """
    return {"op": "add", "path": path, "value": value}


def replace(path: str, value: Any) -> Op:
    """Replace the value at `path`, which must exist."""
    return {"op": "replace", "path": path, "value": value}
