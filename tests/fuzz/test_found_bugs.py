"""Inputs the fuzzers found that broke the invariant of tests/fuzz/oracle.py, one test each,
kept after the fix so the bug stays fixed."""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
import jsonpointer
import pytest

from tests import builders
from tests.builders import review_bytes
from tests.fuzz.asgi import Answer, exchange
from tests.fuzz.oracle import DNS_1123_LABEL, check_answer, check_patch
from webhook.app import State, create_app
from webhook.settings import load_settings
from webhook.status import STATUS_ANNOTATION

pytestmark = pytest.mark.fuzz

JSON = (b"content-type", b"application/json")
DIGITS = "1" * 5_000  # over CPython's 4,300-digit limit on int <-> str conversions


def pod(annotations: dict[str, str], *, memory_limit: str | None = None) -> dict[str, Any]:
    """The default pod with `annotations`, its container limited to `memory_limit`."""
    resources = None if memory_limit is None else {"limits": {"memory": memory_limit}}
    return builders.pod(builders.container(resources=resources), annotations=annotations)


def without_spec(spec: str | None) -> dict[str, Any]:
    """A pod this webhook mutated before ("re-admitted"), its spec absent or null."""
    status = {"size": "1Gi", "volume": "dshm", "mounted": ["main"], "charged": ["main"]}
    obj: dict[str, Any] = {"metadata": {"annotations": {STATUS_ANNOTATION: json.dumps(status)}}}
    if spec is None:
        obj["spec"] = None
    return obj


def answer_to(body: bytes, **settings: Any) -> tuple[Answer, list[Any]]:
    """The answer to `body`, checked by the oracle (never a 500, ...), and its patch ops."""
    app = create_app(load_settings(settings), state=State(certificate_loaded=True))
    answer = exchange(app, [body], headers=[JSON])
    ops = check_answer(
        status=answer.status, content_type=answer.content_type, body=answer.body, sent=body
    )
    return answer, ops


def post(body: bytes, **settings: Any) -> list[Any]:
    """The patch ops of the answer to `body`, checked by the oracle."""
    return answer_to(body, **settings)[1]


# (what is sent, the request) for each bug
NON_STRING_API_VERSION = [
    ("an apiVersion that is an array", review_bytes(pod({"shm-size": "1Gi"}), api_version=[])),
    ("an apiVersion that is an object", review_bytes(pod({"shm-size": "1Gi"}), api_version={})),
    # Found by the long run of session 2 over TLS: repr() of the value raised RecursionError.
    *(
        (
            f"an apiVersion nested {depth} deep",
            b'{"apiVersion":%s,"kind":"AdmissionReview","request":{"uid":"u"}}'
            % (b"[" * depth + b"]" * depth),
        )
        for depth in (1_000, 1_022)  # orjson refuses 1,024 levels, the outer object included
    ),
]
INT_DIGITS = [
    ("a 5,000-digit shm-size", review_bytes(pod({"shm-size": DIGITS}))),
    ("a shm-size with a 5,000-digit exponent", review_bytes(pod({"shm-size": f"1e{DIGITS}"}))),
    ("a 5,000-digit memory limit", review_bytes(pod({"shm-size": "1Gi"}, memory_limit=DIGITS))),
    (
        "a memory limit of 1e5000 bytes",
        review_bytes(pod({"shm-size": "1Gi"}, memory_limit="1e5000")),
    ),
]
DEEP_STATUS = [
    (
        "a status annotation nested 100,000 deep",
        review_bytes(pod({"shm-size": "1Gi", STATUS_ANNOTATION: "[" * 100_000})),
    )
]
NO_SPEC = [
    ("a re-admitted pod without spec", review_bytes(without_spec("absent"))),
    ("a re-admitted pod whose spec is null", review_bytes(without_spec(None))),
]
BAD_STATUS_VOLUME = {
    "shm-size": "1Gi",
    STATUS_ANNOTATION: json.dumps(
        {"size": "1Gi", "volume": "Not A Name!", "mounted": [], "charged": []}
    ),
}


def cases(inputs: list[tuple[str, bytes]], outcome: str) -> list[Any]:
    return [pytest.param(body, id=f"{what} {outcome}") for what, body in inputs]


@pytest.mark.parametrize("body", cases(NON_STRING_API_VERSION, "is a 400, not a 500"))
def test_an_api_version_that_is_not_a_string_is_a_400(body: bytes) -> None:
    answer, _ = answer_to(body)
    assert (answer.status, answer.body) == (
        400,
        b"apiVersion must be a string: admission.k8s.io/v1 or admission.k8s.io/v1beta1\n",
    )


@pytest.mark.parametrize("body", cases(INT_DIGITS, "is denied or a 400, not a 500"))
def test_a_quantity_past_the_int_digit_limit_is_denied_or_a_400(body: bytes) -> None:
    post(body)


@pytest.mark.parametrize("body", cases(DEEP_STATUS, "is not ours, not a 500"))
def test_a_deeply_nested_status_annotation_is_not_ours(body: bytes) -> None:
    post(body)


def test_a_pod_with_a_field_nested_1000_deep_gets_a_patch_that_applies() -> None:
    """Found in session 2: not a webhook bug, the oracle's deepcopy of such a pod overflowed."""
    deep = b"[" * 1_000 + b"]" * 1_000
    body = review_bytes(pod({"shm-size": "1Gi"})).replace(
        b'"image":"busybox"', b'"extra":%s' % deep
    )
    assert deep in body
    ops = post(body)
    assert ops
    check_patch(body, ops)


@pytest.mark.parametrize("body", cases(NO_SPEC, "gets a patch that applies"))
def test_a_re_admitted_pod_without_spec_gets_a_patch_that_applies(body: bytes) -> None:
    ops = post(body)
    try:
        check_patch(body, ops)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
        raise AssertionError(f"the patch does not apply: {error}") from None


@pytest.mark.parametrize(
    ("annotations", "volumes", "settings"),
    [
        pytest.param(
            {"shm-size": "1Gi"},
            [{"name": "v" * 63, "emptyDir": {}}],
            {"volume_name": "v" * 63},
            id="the free name beside a taken 63-character volume name has at most 63",
        ),
        pytest.param(
            BAD_STATUS_VOLUME,
            [],
            {},
            id="a status annotation naming an invalid volume does not inject that name",
        ),
    ],
)  # fmt: skip
def test_the_injected_volume_name_is_a_dns_label(
    annotations: dict[str, str], volumes: list[dict[str, Any]], settings: dict[str, Any]
) -> None:
    obj = pod(annotations)
    obj["spec"]["volumes"] = volumes
    ops = post(review_bytes(obj), **settings)
    [added] = [op["value"] for op in ops if op["path"].startswith("/spec/volumes")]
    name = added[0]["name"] if isinstance(added, list) else added["name"]
    assert DNS_1123_LABEL.fullmatch(name), name
