"""The AdmissionReview envelope: what `parse_review` refuses, what the builders answer, how
`respond` turns a plan into an answer, and which requests `decide` hands to the planner."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import builders
from tests.builders import PODS, V1
from tests.pods import apply_patch, assert_valid_pod
from webhook.policy import Policy, Reason
from webhook.review import (
    MAX_JSON_ITEMS,
    Response,
    Review,
    WebhookError,
    allowed,
    check_review,
    decide,
    denied,
    encode,
    parse_review,
    patched,
)

V1BETA1 = "admission.k8s.io/v1beta1"


def answer_of(body: bytes) -> dict[str, Any]:
    decoded = orjson.loads(body)
    assert isinstance(decoded, dict)
    return decoded


def decided(
    review: dict[str, Any], policy: Policy | None = None
) -> tuple[dict[str, Any], Response]:
    checked = check_review(review)
    result = decide(checked, policy or Policy())
    return answer_of(encode(checked, result)), result


def ops_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    assert response["patchType"] == "JSONPatch"
    ops = orjson.loads(base64.b64decode(response["patch"], validate=True))
    assert isinstance(ops, list)
    return ops


def without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


MALFORMED = [
    pytest.param(b"", "not JSON", id="an empty body is not JSON"),
    pytest.param(b"{", "not JSON", id="a truncated object is not JSON"),
    pytest.param(b"\xff\xfe{}", "not JSON", id="bytes that are not UTF-8 are not JSON"),
    pytest.param(b"[]", "AdmissionReview", id="a JSON array is not an AdmissionReview"),
    pytest.param(b'"review"', "AdmissionReview", id="a JSON string is not an AdmissionReview"),
    pytest.param(b"null", "AdmissionReview", id="JSON null is not an AdmissionReview"),
    pytest.param(
        orjson.dumps(without(builders.review(), "apiVersion")),
        "apiVersion",
        id="apiVersion is required",
    ),
    pytest.param(
        builders.review_bytes(api_version="admission.k8s.io/v2"),
        "apiVersion",
        id="an unknown admission API version is refused",
    ),
    pytest.param(
        orjson.dumps({**builders.review(), "apiVersion": 1}),
        "apiVersion",
        id="apiVersion must be a string",
    ),
    pytest.param(
        orjson.dumps({**builders.review(), "kind": "Pod"}),
        "kind",
        id="kind must be AdmissionReview",
    ),
    pytest.param(orjson.dumps(without(builders.review(), "kind")), "kind", id="kind is required"),
    pytest.param(
        orjson.dumps(without(builders.review(), "request")),
        "request",
        id="a review without request",
    ),
    pytest.param(
        orjson.dumps({**builders.review(), "request": None}),
        "request",
        id="a null request is refused",
    ),
    pytest.param(
        orjson.dumps({**builders.review(), "request": ["uid"]}),
        "request",
        id="a request that is an array is refused",
    ),
    pytest.param(
        orjson.dumps(
            {**builders.review(), "request": without(builders.review()["request"], "uid")}
        ),
        "request.uid",
        id="a request without uid is refused",
    ),
    pytest.param(builders.review_bytes(uid=""), "request.uid", id="an empty uid is refused"),
    pytest.param(builders.review_bytes(uid=42), "request.uid", id="a numeric uid is refused"),
]


@pytest.mark.parametrize(("body", "mentioned"), MALFORMED)
def test_parse_review_refuses_a_malformed_body_with_400(body: bytes, mentioned: str) -> None:
    with pytest.raises(WebhookError) as caught:
        parse_review(body)
    assert caught.value.status == 400
    assert mentioned in caught.value.message
    assert "\n" not in caught.value.message


def a_review_with_items(count: int) -> bytes:
    """A valid review whose body holds `count` JSON values and keys, padded with numbers."""
    head = builders.review_bytes()
    items = sum(map(head.count, (b",", b":", b"[", b"{"))) + 1  # no empty containers in it
    body = orjson.dumps({**builders.review(), "padding": [1000] * (count - items - 2)})
    assert len(body) > 2 * MAX_JSON_ITEMS  # else parse_review need not count
    return body


def test_a_body_with_as_many_json_items_as_the_bound_is_parsed() -> None:
    review = parse_review(a_review_with_items(MAX_JSON_ITEMS))
    assert review.uid == builders.review()["request"]["uid"]


def test_a_body_with_more_json_items_than_the_bound_is_a_413_before_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = a_review_with_items(MAX_JSON_ITEMS + 1)

    def never(_: bytes) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(orjson, "loads", never)
    with pytest.raises(WebhookError) as caught:
        parse_review(body)
    assert caught.value.status == 413
    assert caught.value.message == (
        f"the body holds more than {MAX_JSON_ITEMS} JSON values and keys;"
        " a pod's AdmissionReview holds far fewer"
    )


def test_a_long_body_of_few_items_is_parsed() -> None:
    body = orjson.dumps({**builders.review(), "padding": "x" * (4 * MAX_JSON_ITEMS)})
    assert parse_review(body).uid == builders.review()["request"]["uid"]


@pytest.mark.parametrize(
    "api_version",
    [pytest.param(V1, id="v1 reviews"), pytest.param(V1BETA1, id="v1beta1 reviews")],
)
def test_answers_use_the_request_api_version_and_echo_its_uid(api_version: str) -> None:
    review = builders.review(api_version=api_version, uid="a-uid-to-echo")
    response, _ = decided(review)
    assert response["apiVersion"] == api_version
    assert response["kind"] == "AdmissionReview"
    assert response["response"]["uid"] == "a-uid-to-echo"


REVIEW = Review(api_version=V1, uid="u-1", request={"uid": "u-1"})
OPS = [{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]


def test_allowed_admits_without_patch_or_status() -> None:
    assert answer_of(encode(REVIEW, allowed(Reason.NOT_REQUESTED))) == {
        "apiVersion": V1,
        "kind": "AdmissionReview",
        "response": {"uid": "u-1", "allowed": True},
    }


def test_patched_carries_the_ops_as_base64_json() -> None:
    answer = patched(Reason.INJECTED, OPS, warnings=["a warning"])
    response = answer_of(encode(REVIEW, answer))["response"]
    assert response["allowed"] is True
    assert ops_of(response) == OPS
    assert response["warnings"] == ["a warning"]


def test_denied_refuses_with_code_400_and_the_message() -> None:
    response = answer_of(encode(REVIEW, denied(Reason.INVALID_SIZE, "shm-size is wrong")))[
        "response"
    ]
    assert response == {
        "uid": "u-1",
        "allowed": False,
        "status": {"code": 400, "reason": "BadRequest", "message": "shm-size is wrong"},
    }


@pytest.mark.parametrize(
    ("warnings", "expected"),
    [
        pytest.param(["w"] * 7, ["w"] * 5, id="at most five warnings are sent"),
        pytest.param(["x" * 300], None, id="a long warning is cut to 120 characters"),
        pytest.param(["y" * 120], ["y" * 120], id="a warning of exactly 120 characters is kept"),
    ],
)
def test_warnings_stay_short_and_few(warnings: list[str], expected: list[str] | None) -> None:
    shown = answer_of(encode(REVIEW, allowed(Reason.NOT_REQUESTED, warnings=warnings)))["response"][
        "warnings"
    ]
    assert len(shown) <= 5
    assert all(len(text) <= 120 for text in shown)
    if expected is not None:
        assert shown == expected
    else:
        assert shown[0].startswith("x" * 100)


PASSED_THROUGH = [
    pytest.param({"operation": "UPDATE"}, id="a pod UPDATE is allowed as is"),
    pytest.param({"operation": "DELETE", "object": None}, id="a pod DELETE is allowed as is"),
    pytest.param({"operation": "CONNECT"}, id="a pod CONNECT is allowed as is"),
    pytest.param(
        {
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        },
        id="a Deployment CREATE is allowed as is",
    ),
    pytest.param(
        {"subResource": "binding", "kind": {"group": "", "version": "v1", "kind": "Binding"}},
        id="a pods/binding CREATE is allowed as is",
    ),
    pytest.param(
        {"subResource": "ephemeralcontainers"},
        id="a CREATE on a pod subresource is allowed as is",
    ),
    pytest.param(
        {"kind": {"group": "example.com", "version": "v1", "kind": "Pod"}},
        id="a Pod of another API group is allowed as is",
    ),
    pytest.param({"resource": {**PODS, "resource": "nodes"}}, id="another resource is allowed"),
    pytest.param({"kind": "Pod"}, id="a kind that is not a GroupVersionKind is not a pod"),
]


@pytest.mark.parametrize("request_fields", PASSED_THROUGH)
def test_only_pod_creates_are_planned(request_fields: dict[str, Any]) -> None:
    response, result = decided(builders.review(**request_fields))
    assert result.reason is Reason.NOT_A_POD_CREATE
    assert response["response"] == {"uid": builders.review()["request"]["uid"], "allowed": True}


def test_a_dry_run_pod_create_is_planned_like_any_other() -> None:
    response, result = decided(builders.review(dryRun=True))
    assert result.outcome == "mutated"
    assert response["response"]["allowed"] is True
    assert "patch" in response["response"]


def test_a_mutated_pod_gets_a_patch_that_applies_and_leaves_it_valid() -> None:
    review = builders.review()
    response, result = decided(review)
    assert result.outcome == "mutated"
    pod = apply_patch(review["request"]["object"], ops_of(response["response"]))
    assert_valid_pod(pod)
    [volume] = pod["spec"]["volumes"]
    assert volume["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}


def test_a_denied_pod_is_refused_with_the_plan_message() -> None:
    response, result = decided(builders.review(builders.pod(annotations={"shm-size": "8GB"})))
    assert result.outcome == "denied"
    assert response["response"]["allowed"] is False
    assert response["response"]["status"] == {
        "code": 400,
        "reason": "BadRequest",
        "message": result.message,
    }
    assert "8GB" in result.message


def test_a_pod_left_alone_is_allowed_without_patch() -> None:
    response, result = decided(builders.review(builders.pod()))
    assert result.outcome == "skipped"
    assert "patch" not in response["response"]
    assert response["response"]["allowed"] is True


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(None, id="a Pod CREATE without object"),
        pytest.param(["pod"], id="a Pod CREATE whose object is an array"),
        pytest.param("pod", id="a Pod CREATE whose object is a string"),
    ],
)
def test_a_pod_create_without_an_object_is_a_bad_request(obj: Any) -> None:
    review = builders.review()
    review["request"]["object"] = obj
    with pytest.raises(WebhookError) as caught:
        decided(review)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param({"metadata": [], "spec": {}}, id="metadata that is an array"),
        pytest.param(
            {"metadata": {"annotations": {"shm-size": 1}}, "spec": {}},
            id="an annotation value that is a number",
        ),
        pytest.param(
            {"metadata": {"annotations": {"shm-size": "1Gi"}}, "spec": {"containers": "main"}},
            id="containers that are a string",
        ),
    ],
)
def test_a_pod_with_wrongly_typed_fields_is_a_bad_request(obj: dict[str, Any]) -> None:
    with pytest.raises(WebhookError) as caught:
        decided(builders.review(obj))
    assert caught.value.status == 400
    assert caught.value.message.startswith("invalid pod: ")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["metadata", "spec", "annotations", "containers", "initContainers", "volumes",
     "volumeMounts", "resources", "limits", "requests", "memory", "name", "mountPath",
     "shm-size", "hostIPC", "os", "labels"]
)  # fmt: skip
POD_LIKE = st.recursive(
    JSON,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELDS, inner, max_size=4),
    max_leaves=30,
)


# Paths into a pod the planner reads; a fuzzed pod has a few of them replaced by any JSON.
PLANNED_PATHS = [
    ("metadata",), ("metadata", "annotations"), ("metadata", "annotations", "shm-size"),
    ("metadata", "annotations", "shm-injection-status"), ("metadata", "labels"), ("spec",),
    ("spec", "containers"), ("spec", "containers", 0), ("spec", "containers", 0, "name"),
    ("spec", "containers", 0, "resources"), ("spec", "containers", 0, "resources", "limits"),
    ("spec", "containers", 0, "resources", "limits", "memory"),
    ("spec", "containers", 0, "resources", "requests"), ("spec", "containers", 0, "volumeMounts"),
    ("spec", "containers", 0, "volumeMounts", 0), ("spec", "containers", 0, "volumeMounts", 0,
    "mountPath"), ("spec", "initContainers"), ("spec", "volumes"), ("spec", "volumes", 0),
    ("spec", "volumes", 0, "name"), ("spec", "resources"), ("spec", "os"), ("spec", "hostIPC"),
]  # fmt: skip


def a_full_pod() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "trainer",
            "annotations": {"shm-size": "1Gi", "kubectl.kubernetes.io/default-container": "main"},
            "labels": {"app": "trainer"},
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "resources": {"limits": {"memory": "2Gi"}, "requests": {"memory": "1Gi"}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "initContainers": [{"name": "init", "image": "busybox"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "resources": {"limits": {"memory": "4Gi"}},
        },
    }


def _can_index(obj: Any, key: str | int) -> bool:
    if isinstance(obj, dict):
        return isinstance(key, str)
    return isinstance(obj, list) and isinstance(key, int) and key < len(obj)


def _replace(obj: Any, path: tuple[str | int, ...], *, value: Any) -> None:
    for key in path[:-1]:
        if not _can_index(obj, key) or (isinstance(obj, dict) and key not in obj):
            return
        obj = obj[key]
    if _can_index(obj, path[-1]):
        obj[path[-1]] = value


@st.composite
def fuzzed_pods(draw: st.DrawFn) -> Any:
    pod = a_full_pod()
    for _ in range(draw(st.integers(1, 3))):
        _replace(pod, draw(st.sampled_from(PLANNED_PATHS)), value=draw(JSON))
    return pod


@given(obj=POD_LIKE | fuzzed_pods())
def test_any_decoded_object_is_answered_or_refused_with_400(obj: Any) -> None:
    review = builders.review(obj)
    status = 200
    try:
        decided(review)
    except WebhookError as error:
        status = error.status
    assert status in (200, 400)
