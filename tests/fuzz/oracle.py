"""What every answer of `POST /mutate` must be, whatever was sent (SPEC §3): a 400/413 with a
one-line plain-text message, or a 200 carrying a well-formed AdmissionReview whose patch
applies to the pod sent, and gives a valid pod when the pod sent was valid. Never a 500.

`known_bug` names the inputs of bugs already found and pinned by an xfail test in
tests/fuzz/test_found_bugs.py; the fuzzers skip them (`skip_known_bug`, counted in the
statistics) so that they keep hunting for new ones. When a bug is fixed its xfail test passes
(strict: a failure), and its entry here goes with the xfail marker.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import orjson
from hypothesis import assume, event

from tests.pods import apply_patch, assert_valid_pod
from webhook import quantity
from webhook.mutation import STATUS_ANNOTATION

RESPONSE_KEYS = {"uid", "allowed", "patchType", "patch", "status", "warnings"}
# The API server's rule for volume names (a DNS-1123 label); the JSON schema does not hold it.
DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def check_answer(*, status: int, content_type: str, body: bytes, sent: bytes) -> list[Any]:
    """Assert the invariant on one exchange; the patch ops of a 200 ([] when none)."""
    assert status in (200, 400, 413), f"HTTP {status}: {body[:300]!r}"
    if status != 200:
        assert content_type.startswith("text/plain"), content_type
        text = body.decode("utf-8")
        assert text.endswith("\n"), repr(text[:300])
        assert text.count("\n") == 1, repr(text[:300])
        assert text.strip(), "an empty message"
        return []
    assert content_type == "application/json", content_type
    review = orjson.loads(sent)  # answered 200: the body is an AdmissionReview to the server
    answer = orjson.loads(body)
    assert set(answer) == {"apiVersion", "kind", "response"}, sorted(answer)
    assert answer["apiVersion"] == review["apiVersion"]
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert set(response) <= RESPONSE_KEYS, sorted(response)
    assert response["uid"] == review["request"]["uid"]
    assert isinstance(response["allowed"], bool)
    warnings = response.get("warnings", [])
    assert isinstance(warnings, list)
    assert len(warnings) <= 5
    assert all(isinstance(w, str) and 0 < len(w) <= 120 for w in warnings), warnings
    if not response["allowed"]:
        assert "patch" not in response
        assert response["status"]["code"] == 400
        assert isinstance(response["status"]["message"], str)
        assert response["status"]["message"]
        return []
    if "patch" not in response:
        assert "patchType" not in response
        return []
    assert response["patchType"] == "JSONPatch"
    ops = orjson.loads(base64.b64decode(response["patch"], validate=True))
    assert isinstance(ops, list)
    assert ops, "an empty patch"
    for op in ops:
        assert isinstance(op, dict), op
        assert set(op) == {"op", "path", "value"}, op
        assert op["op"] in ("add", "replace"), op
        assert isinstance(op["path"], str), op
        assert op["path"].startswith("/"), op
    return ops


def check_patch(sent: bytes, ops: list[Any]) -> None:
    """The ops apply to the pod sent; a valid pod stays valid."""
    pod = orjson.loads(sent)["request"]["object"]
    patched = apply_patch(pod, ops)
    if is_valid_pod(pod):
        assert_valid_pod(patched)
        added = patched["spec"].get("volumes", [])[len(pod["spec"].get("volumes") or []) :]
        for volume in added:
            assert DNS_1123_LABEL.fullmatch(volume["name"]), f"volume name {volume['name']!r}"


def is_valid_pod(pod: Any) -> bool:
    """Whether tests/pods.assert_valid_pod accepts `pod` (whatever its shape)."""
    if not isinstance(pod, dict):
        return False
    try:
        assert_valid_pod(pod)
    except Exception:  # the schema's ValidationError, an AssertionError, or a shape it trips on
        return False
    return True


def skip_known_bug(body: bytes) -> None:
    """Skip (and count, in --hypothesis-show-statistics) a body that hits a known bug."""
    bug = known_bug(body)
    if bug is not None:
        event(f"skipped, hits the known bug {bug}")
    assume(bug is None)


def known_bug(body: bytes) -> str | None:
    """The name of the known bug `body` would hit, if any (see the module docstring)."""
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(review, dict):
        return None
    if isinstance(review.get("apiVersion"), list | dict):
        return "unhashable-api-version"
    pod = _member(_member(review, "request"), "object")
    annotations = _member(_member(pod, "metadata"), "annotations")
    status = _member(annotations, STATUS_ANNOTATION)
    if isinstance(status, str) and status.count("[") + status.count("{") > 900:
        return "status-annotation-recursion"
    if any(_beyond_int_digits(text) for text in _quantities(pod, annotations)):
        return "quantity-int-digits"
    if isinstance(pod, dict) and pod.get("spec") is None and isinstance(status, str):
        return "reinvocation-without-spec"
    if isinstance(status, str) and '"volume"' in status:
        try:
            volume = _member(json.loads(status), "volume")
        except (ValueError, RecursionError):
            volume = None
        if isinstance(volume, str) and not DNS_1123_LABEL.fullmatch(volume):
            return "status-volume-not-a-dns-label"
    return None


def _member(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _quantities(pod: Any, annotations: Any) -> list[Any]:
    """The shm-size annotation and every memory request and limit of the pod."""
    spec = _member(pod, "spec")
    blocks = [_member(spec, "resources")]
    for kind in ("initContainers", "containers"):
        found = _member(spec, kind)
        if isinstance(found, list):
            blocks += [_member(container, "resources") for container in found]
    found = [_member(annotations, "shm-size")]
    for block in blocks:
        for kind in ("limits", "requests"):
            found.append(_member(_member(block, kind), "memory"))
    return found


def _beyond_int_digits(text: Any) -> bool:
    """A quantity whose digits or value reach Python's int/str limit (4,300 digits)."""
    if not isinstance(text, str):
        return False
    if len(text) > 4_000:
        return sum(ch.isdigit() for ch in text) > 4_000
    if len(text) > 64:
        return False
    try:
        parsed = quantity.parse(text)
    except ValueError:
        return False
    return abs(parsed.value) >= 10**4_000
