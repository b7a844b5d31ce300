"""The AdmissionReview envelope: parsing a request body, building the answer
(docs/http.md#post-mutate).

Owns: the AdmissionReview shapes (TypedDicts), `parse_review` (bytes → `Review`, or
`WebhookError` for a malformed body), the `Response` value and its builders `allowed`,
`patched`, `denied` (controller-runtime's admission.Response), `respond` (the one step from a
`Plan` to a `Response`), `decide`, which routes a Pod CREATE to `mutation.plan`, and `encode`,
which addresses a `Response` to its review and serialises it (base64 patch included). The API
server's limits on warnings are applied here and nowhere else.

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

from webhook.checks import one_line
from webhook.mutation import InvalidObject, Plan, plan
from webhook.policy import NamespacePolicy, Outcome, Policy, Reason

API_VERSIONS = frozenset({"admission.k8s.io/v1", "admission.k8s.io/v1beta1"})
# The kube-apiserver keeps at most this many warnings of at most this many characters each.
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

    def __init__(self, status: int, message: str, *, reason: Reason) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


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
            reason=Reason.BODY_TOO_LARGE,
        )
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise WebhookError(
            400, f"the body is not JSON: {one_line(str(error))}", reason=Reason.NOT_JSON
        ) from None
    return check_review(document)


def check_review(document: object) -> Review:
    """Check the envelope of an already decoded AdmissionReview."""
    if not isinstance(document, dict):
        raise WebhookError(
            400,
            "the body is not an AdmissionReview: expected a JSON object",
            reason=Reason.NOT_AN_OBJECT,
        )
    api_version = document.get("apiVersion")
    if not isinstance(api_version, str):
        # Never shown: the repr of an array nested 1,000 deep raises RecursionError.
        raise WebhookError(
            400,
            "apiVersion must be a string: admission.k8s.io/v1 or admission.k8s.io/v1beta1",
            reason=Reason.API_VERSION,
        )
    if api_version not in API_VERSIONS:
        raise WebhookError(
            400,
            f"apiVersion {one_line(repr(api_version))[:80]} is not admission.k8s.io/v1 or"
            " admission.k8s.io/v1beta1",
            reason=Reason.API_VERSION,
        )
    if document.get("kind") != "AdmissionReview":
        raise WebhookError(400, 'kind must be "AdmissionReview"', reason=Reason.KIND)
    request = document.get("request")
    if not isinstance(request, dict):
        raise WebhookError(
            400, "request is missing or not an object", reason=Reason.MISSING_REQUEST
        )
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise WebhookError(
            400, "request.uid is missing or not a non-empty string", reason=Reason.MISSING_UID
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
            reason=Reason.INVALID_OBJECT,
        )
    return pod


@dataclass(frozen=True, slots=True)
class Response:
    """An answer before it is addressed to a review: what `/mutate` sends and `mutate` previews,
    and what the metrics and the log line are read from."""

    allowed: bool
    outcome: Outcome
    reason: Reason
    patch: Sequence[Mapping[str, Any]] = ()
    message: str = ""  # the denial shown to the user
    warnings: tuple[str, ...] = ()  # within the API server's limits
    size: int | None = None  # bytes of /dev/shm the patch gives the pod


def allowed(reason: Reason, *, warnings: Iterable[str] = ()) -> Response:
    """Admit the object unchanged."""
    return Response(True, "skipped", reason, warnings=_short_warnings(warnings))


def patched(
    reason: Reason,
    ops: Sequence[Mapping[str, Any]],
    *,
    warnings: Iterable[str] = (),
    size: int | None = None,
) -> Response:
    """Admit the object with a JSON patch (RFC 6902)."""
    return Response(
        True, "mutated", reason, patch=ops, warnings=_short_warnings(warnings), size=size
    )


def denied(reason: Reason, message: str, *, warnings: Iterable[str] = ()) -> Response:
    """Refuse the object; the kube-apiserver shows `message` to the user."""
    return Response(False, "denied", reason, message=message, warnings=_short_warnings(warnings))


def respond(result: Plan) -> Response:
    """The answer a plan calls for."""
    if result.outcome == "denied":
        return denied(result.reason, result.message, warnings=result.warnings)
    if result.ops:
        return patched(result.reason, result.ops, warnings=result.warnings, size=result.size)
    return allowed(result.reason, warnings=result.warnings)


def decide(review: Review, policy: Policy, namespace: NamespacePolicy | None = None) -> Response:
    """The answer to a checked review; `namespace` is the policy of the pod's namespace."""
    pod = planned_pod(review)
    if pod is None:
        return allowed(Reason.NOT_A_POD_CREATE)
    try:
        return respond(plan(pod, policy, namespace))
    except InvalidObject as error:
        raise WebhookError(
            400, f"invalid pod: {one_line(str(error))}", reason=Reason.INVALID_OBJECT
        ) from None


def encode(review: Review, response: Response) -> bytes:
    """The AdmissionReview answering `review`, serialised."""
    answer: AdmissionResponse = {"uid": review.uid, "allowed": response.allowed}
    if response.patch:
        answer["patchType"] = "JSONPatch"
        answer["patch"] = base64.b64encode(orjson.dumps(response.patch)).decode("ascii")
    if not response.allowed:
        # The API server passes the Status through as is: without a reason kubectl shows a
        # bare "Error from server:" (found by the e2e tier).
        answer["status"] = {"code": 400, "reason": "BadRequest", "message": response.message}
    if response.warnings:
        answer["warnings"] = list(response.warnings)
    document: AdmissionReview = {
        "apiVersion": review.api_version,
        "kind": "AdmissionReview",
        "response": answer,
    }
    return orjson.dumps(document)


def _short_warnings(warnings: Iterable[str]) -> tuple[str, ...]:
    shown: list[str] = []
    for warning in warnings:
        if len(shown) == MAX_WARNINGS:
            break
        if len(warning) > MAX_WARNING_LENGTH:
            warning = warning[: MAX_WARNING_LENGTH - 1] + "…"
        shown.append(warning)
    return tuple(shown)
