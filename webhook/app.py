"""The HTTP face of the webhook: `create_app(settings, *, state)` (docs/http.md).

Owns: `/healthz`, `/readyz` and `POST /mutate`, the request guards (content type, body limit),
the mapping of `WebhookError` to a 4xx plain-text answer, one JSON log line and the metrics of
every admission. `POST /mutate` is a raw ASGI endpoint that the application calls before its
middleware stack and router: it skips the per-request Request/Response objects and ~30 µs of
framework layers (docs/performance.md#the-hot-path-skips-the-framework). Must not import the
Kubernetes client or `yaml`; knows nothing of TLS or the server's lifecycle beyond the `State`
it is handed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from webhook.metrics import Metrics
from webhook.podfields import object_name, object_owner
from webhook.policy import NamespacePolicy, Policy, Reason
from webhook.review import Response, Review, WebhookError, decide, encode, parse_review
from webhook.settings import Settings

# The logger and message of the one line per admission (server.AdmissionLines writes it too).
ADMISSION_LOGGER = "webhook.admission"
ADMISSION_MESSAGE = "admission"
logger = logging.getLogger(ADMISSION_LOGGER)

# Bodies still arriving are held whole; together they may take this many times the body limit
# (16 MiB by default), so that concurrent uploads cannot outgrow the pod's memory. Past it, 503.
IN_FLIGHT_BODIES = 2
# Writes the log line of one admission at a level, given its fields: a `logging` record with
# the fields as its `fields` extra (`log_record`, the default), or the server's direct writer.
AdmissionLog = Callable[[int, dict[str, Any]], None]

_JSON_HEADERS = [(b"content-type", b"application/json")]
_TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]


class Namespaces(Protocol):
    """Where the size policies of namespaces come from (`NamespaceCache` in the server)."""

    @property
    def ready(self) -> bool: ...

    def policy_for(self, namespace: object) -> NamespacePolicy | None: ...


@dataclass(slots=True)
class State:
    """What the server tells the app about itself; `/readyz` reads it on every probe."""

    metrics: Metrics = field(default_factory=Metrics)
    certificate_loaded: bool = False
    shutting_down: bool = False
    namespaces: Namespaces | None = None  # None: namespace annotations are not read

    @property
    def ready(self) -> bool:
        namespaces_known = self.namespaces is None or self.namespaces.ready
        return self.certificate_loaded and not self.shutting_down and namespaces_known

    @property
    def unready_because(self) -> str:
        if self.shutting_down:
            return "shutting down"
        if not self.certificate_loaded:
            return "certificate not loaded"
        return "namespaces not listed yet"


def log_record(level: int, fields: dict[str, Any]) -> None:
    """The admission line as a `logging` record of `webhook.admission`, `fields` as an extra."""
    logger.log(level, ADMISSION_MESSAGE, extra={"fields": fields})


def create_app(
    settings: Settings, *, state: State, admission_log: AdmissionLog = log_record
) -> FastAPI:
    """The application; everything that depends only on settings is computed here, once."""
    endpoint = AdmissionEndpoint(
        policy=settings.policy(),
        max_body_bytes=settings.max_body_bytes,
        metrics=state.metrics,
        log=admission_log,
        namespaces=state.namespaces,
    )
    app = _WebhookApp(
        admission=endpoint, title="shm-webhook", docs_url=None, redoc_url=None, openapi_url=None
    )
    # POST never gets here (see _WebhookApp); the route answers the other methods with 405.
    app.router.routes.insert(0, Route("/mutate", endpoint=endpoint, methods=["POST"]))

    # Both probes build their response: a route returning a str would make FastAPI build a
    # pydantic response model, 1.5 MiB resident for the word "ok".
    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/readyz", response_class=PlainTextResponse)
    async def readyz() -> PlainTextResponse:
        if state.ready:
            return PlainTextResponse("ok")
        return PlainTextResponse(state.unready_because, status_code=503)

    return app


class _WebhookApp(FastAPI):
    """FastAPI, except that `POST /mutate` goes straight to its endpoint.

    The endpoint answers every request itself, errors included, so the framework's layers
    (telemetry hooks, error and exception middleware, body limit, router) would only add cost.
    """

    def __init__(self, *, admission: AdmissionEndpoint, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/mutate" and scope["method"] == "POST":
            await self._admission(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


class AdmissionEndpoint:
    """`POST /mutate` as a plain ASGI callable (Starlette runs a non-function endpoint as is)."""

    __slots__ = (
        "_in_flight_bytes",
        "_log",
        "_max_body_bytes",
        "_max_in_flight_bytes",
        "_metrics",
        "_namespaces",
        "_policy",
    )

    def __init__(
        self,
        *,
        policy: Policy,
        max_body_bytes: int,
        metrics: Metrics,
        log: AdmissionLog = log_record,
        namespaces: Namespaces | None = None,
    ) -> None:
        self._policy = policy
        self._namespaces = namespaces
        self._max_body_bytes = max_body_bytes
        self._metrics = metrics
        self._log = log
        self._max_in_flight_bytes = IN_FLIGHT_BODIES * max_body_bytes
        self._in_flight_bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        review: Review | None = None
        try:
            body = await self._read(scope, receive)
            if body is None:
                return  # the client went away: nobody to answer
            review = parse_review(body)
            namespace = None
            if self._namespaces is not None:
                namespace = self._namespaces.policy_for(review.request.get("namespace"))
            response = decide(review, self._policy, namespace)
            answer = encode(review, response)
        except WebhookError as error:
            await _send(send, status=error.status, headers=_TEXT_HEADERS, body=error.message)
            self._finish(review, error, started=started)
            return
        except Exception:
            # A bug, not a bad request: answer 500 and say where it happened. Every malformed
            # input is meant to end as a WebhookError above.
            logger.exception("admission failed: %s", _identity(review))
            await _send(send, status=500, headers=_TEXT_HEADERS, body="internal error")
            self._metrics.record(
                outcome="error", reason=Reason.INTERNAL_ERROR, seconds=time.perf_counter() - started
            )
            return
        await _send(send, status=200, headers=_JSON_HEADERS, body=answer)
        self._finish(review, response, started=started)

    async def _read(self, scope: Scope, receive: Receive) -> bytes | None:
        """The request body, after the envelope guards; None when the client disconnected."""
        content_type = length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
        if content_type is None or _media_type(content_type) != b"application/json":
            raise WebhookError(
                400, "Content-Type must be application/json", reason=Reason.CONTENT_TYPE
            )
        if length is not None:
            if not length.isdigit():
                raise WebhookError(
                    400, "Content-Length is not a number", reason=Reason.CONTENT_LENGTH
                )
            if int(length) > self._max_body_bytes:
                raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                self._in_flight_bytes += len(chunk)
                if size > self._max_body_bytes:
                    raise self._too_large()
                if not message.get("more_body", False):
                    if not chunks:
                        return chunk  # the usual case: one message, no copy
                    chunks.append(chunk)
                    return b"".join(chunks)
                if self._in_flight_bytes > self._max_in_flight_bytes:
                    raise WebhookError(
                        503,
                        f"request bodies in flight exceed {self._max_in_flight_bytes} bytes; retry",
                        reason=Reason.BODIES_IN_FLIGHT,
                    )
                chunks.append(chunk)
        finally:
            self._in_flight_bytes -= size

    def _too_large(self) -> WebhookError:
        return WebhookError(
            413, f"the body exceeds {self._max_body_bytes} bytes", reason=Reason.BODY_TOO_LARGE
        )

    def _finish(
        self,
        review: Review | None,
        answered: Response | WebhookError,
        *,
        started: float,
    ) -> None:
        seconds = time.perf_counter() - started
        warnings: tuple[str, ...] = ()
        if isinstance(answered, WebhookError):
            outcome, reason, size = "error", answered.reason, None
            detail = {"error": answered.message}
        else:
            outcome, reason, size = answered.outcome, answered.reason, answered.size
            warnings = answered.warnings  # within the API server's limits: 5 of 120 characters
            detail = {} if answered.allowed else {"denial": answered.message}
        injected = size if reason is Reason.INJECTED and size else 0
        self._metrics.record(outcome=outcome, reason=reason, seconds=seconds, injected=injected)
        level = logging.WARNING if outcome == "error" else logging.INFO
        if logger.isEnabledFor(level):
            fields = {
                **_identity(review),
                "outcome": outcome,
                "reason": reason,
                "size": size,
                "duration_ms": round(seconds * 1000, 3),
                "warnings": warnings,
                **detail,
            }
            self._log(level, fields)


def _identity(review: Review | None) -> dict[str, Any]:
    """uid, namespace, name (or generateName), owner, operation and dryRun, whatever the
    request's shape."""
    if review is None:
        return {"uid": None}
    request: Mapping[str, Any] = review.request
    pod = request.get("object")
    name = request.get("name") or object_name(pod)
    return {
        "uid": review.uid,
        "namespace": _text(request.get("namespace")),
        "name": _text(name),
        "owner": _text(object_owner(pod)),
        "operation": _text(request.get("operation")),
        "dry_run": request.get("dryRun") is True,
    }


def _text(value: object) -> str | None:
    # Log fields come from the request: keep them strings of a sane length.
    return value[:253] if isinstance(value, str) else None


def _media_type(content_type: bytes) -> bytes:
    return content_type.split(b";", 1)[0].strip().lower()


async def _send(
    send: Send, *, status: int, headers: list[tuple[bytes, bytes]], body: bytes | str
) -> None:
    payload = body if isinstance(body, bytes) else (body + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})
