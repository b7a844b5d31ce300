"""The AdmissionReview envelope: parsing a request body, building the answer (SPEC §3).

Owns: the AdmissionReview shapes (TypedDicts), `parse_review` (bytes → `Review`, or
`WebhookError` for a malformed body), the response builders `allowed`, `patched`, `denied`
(bytes, base64 patch included) and `decide`, which routes a Pod CREATE to `mutation.plan`.

Two error channels: a malformed request raises `WebhookError` (the HTTP layer answers 4xx
with its message); a pod the policy refuses is a 200 answer with `allowed: false`.
Pure: must not import fastapi, starlette, uvicorn, kubernetes or prometheus_client
(import-linter).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

import orjson

from webhook.mutation import InvalidObject, Plan, Policy, plan

API_VERSIONS = frozenset({"admission.k8s.io/v1", "admission.k8s.io/v1beta1"})
MAX_WARNINGS = 5
MAX_WARNING_LENGTH = 120
_POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}
# Decoded, a JSON value or key costs 30 to 120 bytes of Python objects against 2 to 10 bytes of
# text: 8 MiB of `{},` would take ~300 MiB. Real pods spend 6.6 to 16 bytes an item, so the
# densest pod etcd stores (1.5 MiB) holds ~240,000; this bound keeps a body's objects < 40 MiB.
MAX_JSON_ITEMS = 400_000


class GroupVersionKind(TypedDict):
    group: str
    version: str
    kind: str


class GroupVersionResource(TypedDict):
    group: str
    version: str
    resource: str


class AdmissionRequest(TypedDict):
    uid: str
    kind: NotRequired[GroupVersionKind]
    resource: NotRequired[GroupVersionResource]
    subResource: NotRequired[str]
    operation: NotRequired[Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]]
    name: NotRequired[str]
    namespace: NotRequired[str]
    object: NotRequired[dict[str, Any]]
    dryRun: NotRequired[bool]


class Status(TypedDict):
    code: int
    reason: str
    message: str


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    patchType: NotRequired[Literal["JSONPatch"]]
    patch: NotRequired[str]
    status: NotRequired[Status]
    warnings: NotRequired[list[str]]


class AdmissionReview(TypedDict):
    apiVersion: str
    kind: Literal["AdmissionReview"]
    request: NotRequired[AdmissionRequest]
    response: NotRequired[AdmissionResponse]


@dataclass(frozen=True, slots=True)
class Review:
    """A checked AdmissionReview request: enough to plan it and to address the answer."""

    api_version: str
    uid: str
    request: AdmissionRequest


class WebhookError(Exception):
    """The request is malformed; answer HTTP `status` with `message` (one line, plain text)."""

    def __init__(self, status: int, message: str, *, reason: str = "malformed-review") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason  # a short, stable label for metrics and logs


def parse_review(body: bytes) -> Review:
    """Decode and check an AdmissionReview request body."""
    # Every value and key but the first follows a `,`, `:`, `[` or `{` (strings may hold more of
    # them: an overestimate); each item takes 2 bytes at least, so a short body needs no count.
    if len(body) > 2 * MAX_JSON_ITEMS and (
        sum(map(body.count, (b",", b":", b"[", b"{"))) >= MAX_JSON_ITEMS
    ):
        raise WebhookError(
            413,
            f"the body holds more than {MAX_JSON_ITEMS} JSON values and keys;"
            " a pod's AdmissionReview holds far fewer",
            reason="body-too-large",
        )
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise WebhookError(
            400, f"the body is not JSON: {_one_line(str(error))}", reason="not-json"
        ) from None
    return check_review(document)


def check_review(document: object) -> Review:
    """Check the envelope of an already decoded AdmissionReview."""
    if not isinstance(document, dict):
        raise WebhookError(
            400,
            "the body is not an AdmissionReview: expected a JSON object",
            reason="not-an-object",
        )
    api_version = document.get("apiVersion")
    if not isinstance(api_version, str):
        # Never shown: the repr of an array nested 1,000 deep raises RecursionError.
        raise WebhookError(
            400,
            "apiVersion must be a string: admission.k8s.io/v1 or admission.k8s.io/v1beta1",
            reason="api-version",
        )
    if api_version not in API_VERSIONS:
        raise WebhookError(
            400,
            f"apiVersion {_one_line(repr(api_version))[:80]} is not admission.k8s.io/v1 or"
            " admission.k8s.io/v1beta1",
            reason="api-version",
        )
    if document.get("kind") != "AdmissionReview":
        raise WebhookError(400, 'kind must be "AdmissionReview"', reason="kind")
    request = document.get("request")
    if not isinstance(request, dict):
        raise WebhookError(400, "request is missing or not an object", reason="missing-request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise WebhookError(
            400, "request.uid is missing or not a non-empty string", reason="missing-uid"
        )
    return Review(api_version=api_version, uid=uid, request=request)  # type: ignore[arg-type]


def planned_pod(review: Review) -> Mapping[str, Any] | None:
    """The pod to plan when the request is a CREATE of a core/v1 Pod, else None (allow as is)."""
    request = review.request
    if request.get("operation") != "CREATE" or request.get("subResource", "") != "":
        return None
    kind = request.get("kind")
    resource = request.get("resource")
    if kind != _POD_KIND:
        return None
    if not isinstance(resource, dict) or resource.get("resource") != "pods":
        return None
    pod = request.get("object")
    if not isinstance(pod, dict):
        raise WebhookError(
            400,
            "request.object of a Pod CREATE is missing or not an object",
            reason="invalid-object",
        )
    return pod


def decide(review: Review, policy: Policy) -> tuple[bytes, Plan | None]:
    """The answer to a checked review, and the plan when a pod was planned."""
    pod = planned_pod(review)
    if pod is None:
        return allowed(review), None
    try:
        result = plan(pod, policy)
    except InvalidObject as error:
        raise WebhookError(
            400, f"invalid pod: {_one_line(str(error))}", reason="invalid-object"
        ) from None
    if result.outcome == "denied":
        return denied(review, result.message, warnings=result.warnings), result
    if result.ops:
        return patched(review, result.ops, warnings=result.warnings), result
    return allowed(review, warnings=result.warnings), result


def allowed(review: Review, *, warnings: Iterable[str] = ()) -> bytes:
    """Admit the object unchanged."""
    return _answer(review, {"uid": review.uid, "allowed": True}, warnings=warnings)


def patched(
    review: Review, ops: Sequence[Mapping[str, Any]], *, warnings: Iterable[str] = ()
) -> bytes:
    """Admit the object with a JSON patch (RFC 6902), base64-encoded as the API requires."""
    response: AdmissionResponse = {
        "uid": review.uid,
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(orjson.dumps(ops)).decode("ascii"),
    }
    return _answer(review, response, warnings=warnings)


def denied(review: Review, message: str, *, warnings: Iterable[str] = ()) -> bytes:
    """Refuse the object; the kube-apiserver shows `message` to the user."""
    response: AdmissionResponse = {
        "uid": review.uid,
        "allowed": False,
        # The API server passes the Status through as is: without a reason kubectl shows a
        # bare "Error from server:" (found by the e2e tier).
        "status": {"code": 400, "reason": "BadRequest", "message": message},
    }
    return _answer(review, response, warnings=warnings)


def _answer(review: Review, response: AdmissionResponse, *, warnings: Iterable[str]) -> bytes:
    shown = _short_warnings(warnings)
    if shown:
        response["warnings"] = shown
    answer: AdmissionReview = {
        "apiVersion": review.api_version,
        "kind": "AdmissionReview",
        "response": response,
    }
    return orjson.dumps(answer)


def _short_warnings(warnings: Iterable[str]) -> list[str]:
    # mutation.plan already keeps to these limits; this guard keeps the envelope honest
    # whatever a future rule produces, at the cost of one pass over at most a few strings.
    shown: list[str] = []
    for warning in warnings:
        if len(shown) == MAX_WARNINGS:
            break
        if len(warning) > MAX_WARNING_LENGTH:
            warning = warning[: MAX_WARNING_LENGTH - 1] + "…"
        shown.append(warning)
    return shown


def _one_line(text: str) -> str:
    return " ".join(text.split())
