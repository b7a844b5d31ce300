"""Fuzzing `POST /mutate` in-process, straight into the ASGI application (SPEC §3).

Whatever the body (a valid review, one corrupted at any level, bytes mangled or never JSON),
however it is framed (chunks, Content-Length, Content-Type), under every policy shape, the
answer is a 400/413 with a one-line plain message or a 200 with a well-formed AdmissionReview
whose patch applies and keeps a valid pod valid (tests/fuzz/oracle.py); never a 500, never a
hang (tests/fuzz/asgi.py bounds each exchange). 100 examples a test in the regular suite; the
long hunt is `HYPOTHESIS_PROFILE=fuzz .venv/bin/pytest tests/fuzz` (docs/reliability.md).
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp

from tests.fuzz.asgi import Answer, exchange
from tests.fuzz.oracle import check_answer, check_patch
from tests.fuzz.strategies import (
    CONTENT_TYPES,
    Body,
    chunked,
    corrupted_bodies,
    encode,
    mangled_bodies,
    valid_reviews,
)
from webhook.app import State, create_app
from webhook.settings import load_settings

pytestmark = pytest.mark.fuzz
# The current profile ("ci" or "fuzz"), minus the health check that huge and deeply nested
# bodies exist to trip: they are slow to generate on purpose.
SLOW_DATA_IS_THE_POINT = settings(suppress_health_check=[HealthCheck.too_slow])

SMALL_LIMIT = 64 * 1024
POLICIES = {
    "the defaults": {},
    "a default size, every container charged, invalid sizes only warned": {
        "default_size": "1Gi",
        "memory_policy": "all",
        "on_invalid": "warn",
    },
    "half the memory limit by default, at most 2Gi": {"default_size": "50%", "max_size": "2Gi"},
    "another volume name and mount path, nothing charged, a 64 KiB body limit": {
        "volume_name": "shm",
        "mount_path": "/shm",
        "memory_policy": "none",
        "max_body_bytes": SMALL_LIMIT,
    },
}
POLICY_NAMES = st.sampled_from(sorted(POLICIES))
JSON = (b"content-type", b"application/json")


@functools.cache
def application(policy: str) -> ASGIApp:
    return create_app(load_settings(POLICIES[policy]), state=State(certificate_loaded=True))


def post(
    policy: str,
    body: Body,
    *,
    headers: tuple[tuple[bytes, bytes], ...] = (JSON,),
    cuts: tuple[int, ...] = (),
) -> Answer:
    """POST the body, check the answer against the oracle and apply its patch."""
    answer = exchange(application(policy), chunked(body.data, cuts), headers=headers)
    ops = check_answer(
        status=answer.status, content_type=answer.content_type, body=answer.body, sent=body.data
    )
    if ops:
        check_patch(body.data, ops)
    return answer


@SLOW_DATA_IS_THE_POINT
@given(review=valid_reviews(), policy=POLICY_NAMES)
def test_a_review_of_a_valid_pod_gets_200_and_a_patch_that_keeps_the_pod_valid(
    review: dict[str, object], policy: str
) -> None:
    body = encode(review)
    assert post(policy, body).status == 200


@SLOW_DATA_IS_THE_POINT
@given(body=corrupted_bodies(), policy=POLICY_NAMES)
def test_a_review_corrupted_at_any_level_gets_a_4xx_or_a_well_formed_answer(
    body: Body, policy: str
) -> None:
    answer = post(policy, body)
    if len(body.data) > SMALL_LIMIT and "64 KiB" in policy:
        assert answer.status == 413


@SLOW_DATA_IS_THE_POINT
@given(body=mangled_bodies(), policy=POLICY_NAMES)
def test_mangled_bytes_get_a_4xx_or_a_well_formed_answer(body: Body, policy: str) -> None:
    post(policy, body)


BODIES = st.one_of(valid_reviews().map(encode), corrupted_bodies(), mangled_bodies())
CONTENT_LENGTHS = st.sampled_from(
    ["exact", "exact", "absent", "abc", "-1", " 12", "1e3", "99999999999999999999", "0", "\uff11"]
)


@SLOW_DATA_IS_THE_POINT
@given(
    body=BODIES,
    policy=POLICY_NAMES,
    content_type=CONTENT_TYPES,
    content_length=CONTENT_LENGTHS,
    cuts=st.lists(st.integers(0, 2**20), max_size=6).map(tuple),
)
def test_any_framing_and_headers_get_a_4xx_or_a_well_formed_answer(
    *,
    body: Body,
    policy: str,
    content_type: bytes | None,
    content_length: str,
    cuts: tuple[int, ...],
) -> None:
    headers = [] if content_type is None else [(b"content-type", content_type)]
    if content_length != "absent":
        value = str(len(body.data)) if content_length == "exact" else content_length
        headers.append((b"content-length", value.encode()))
    answer = post(policy, body, headers=tuple(headers), cuts=cuts)
    if content_type in (None, b"", b"text/plain", b"application/jsonx", b"*/*"):
        assert answer.status == 400
