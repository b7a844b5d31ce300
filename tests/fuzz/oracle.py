"""What every answer of `POST /mutate` must be, whatever was sent (SPEC §3): a 400/413 with a
one-line plain-text message, or a 200 carrying a well-formed AdmissionReview whose patch
applies to the pod sent, and gives a valid pod when the pod sent was valid. Never a 500.

Inputs that once broke it stay as regression tests in tests/fuzz/test_found_bugs.py.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import jsonpatch
import orjson

from tests.pods import assert_valid_pod

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
    # Patched in place on a second decoding, not a deepcopy of `pod`: pods nested up to
    # orjson's 1,024 levels are past the recursion limit of copy.deepcopy.
    patched = jsonpatch.apply_patch(orjson.loads(sent)["request"]["object"], ops, in_place=True)
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
