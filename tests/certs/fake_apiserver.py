"""A fake kube-apiserver, over plain HTTP on 127.0.0.1, for the calls `certs.publish`,
`certs.cabundle` and `certs.endpoints` make.

Tests drive it through the real `kubernetes` client, so the paths, verbs, content types and
status codes the client produces are what is checked. Served:

- `/api/v1/namespaces/{ns}/secrets` POST, `/api/v1/namespaces/{ns}/secrets/{name}` GET, PUT
- `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}` GET, PATCH
- `/api/v1/namespaces/{ns}/services/{name}` GET
- `/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices` GET (a LIST; `labelSelector` of
  `key=value` terms only)

`before` hooks act as a concurrent writer, and one that raises `ApiError` (see `fail`) answers
the request with that `Status` instead, as an RBAC denial or an admission plugin would.

Mirrored from the real apiserver: failures are `Status` objects with the real reasons and
messages (NotFound 404, AlreadyExists 409, Conflict 409, Invalid 422, BadRequest 400,
UnsupportedMediaType 415, MethodNotAllowed 405); one resourceVersion counter for the whole
store, bumped by every write that changes an object and left alone by a no-op; PUT is
conditional on a non-empty resourceVersion (Secrets allow an unconditional update) and cannot
create; a Secret's type is immutable and a `kubernetes.io/tls` one needs `tls.crt` and
`tls.key`; Secret data must be base64; PATCH takes `application/json-patch+json` (RFC 6902,
`test` ops included) and answers a failed op with 422, as the apiserver's JSON patcher does.

Not mirrored: authentication and RBAC, LIST other than of EndpointSlices, WATCH, DELETE, merge
and strategic-merge patches (415 here, accepted by the real one), stringData, defaulting,
managedFields, schema validation beyond the checks above, and the apiserver's internal retry of
a PATCH on conflict (a single in-process store cannot conflict with itself).
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import json
import re
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonpatch

JSON_PATCH = "application/json-patch+json"
CONFIG_GROUP = "admissionregistration.k8s.io"
DISCOVERY_GROUP = "discovery.k8s.io"

Object = dict[str, Any]


def secrets_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets"


def secret_path(namespace: str, name: str) -> str:
    return f"{secrets_path(namespace)}/{name}"


def config_path(name: str) -> str:
    return f"/apis/{CONFIG_GROUP}/v1/mutatingwebhookconfigurations/{name}"


def service_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/services/{name}"


def endpoint_slices_path(namespace: str) -> str:
    return f"/apis/{DISCOVERY_GROUP}/v1/namespaces/{namespace}/endpointslices"


def service(name: str, *, namespace: str, ports: Mapping[str, int]) -> Object:
    """A ClusterIP Service with the given port names and numbers (targetPort the same name)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "type": "ClusterIP",
            "ports": [
                {"name": port_name, "port": number, "targetPort": port_name, "protocol": "TCP"}
                for port_name, number in ports.items()
            ],
        },
    }


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of an EndpointSlice: an address and its conditions (None: unset)."""

    address: str
    pod: str = ""
    ready: bool | None = True
    serving: bool | None = None
    terminating: bool | None = None


def endpoint_slice(
    name: str,
    *,
    namespace: str,
    service_name: str,
    ports: Mapping[str, int],
    endpoints: Sequence[Endpoint],
    address_type: str = "IPv4",
) -> Object:
    """An EndpointSlice of Service `service_name`, as the EndpointSlice controller makes it."""
    conditions = ("ready", "serving", "terminating")
    return {
        "apiVersion": f"{DISCOVERY_GROUP}/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": address_type,
        "ports": [
            {"name": port_name, "port": number, "protocol": "TCP"}
            for port_name, number in ports.items()
        ],
        "endpoints": [
            {
                "addresses": [each.address],
                "conditions": {
                    key: getattr(each, key) for key in conditions if getattr(each, key) is not None
                },
            }
            | (
                {"targetRef": {"kind": "Pod", "name": each.pod, "namespace": namespace}}
                if each.pod
                else {}
            )
            for each in endpoints
        ],
    }


def webhook_configuration(
    name: str, *, service: str, namespace: str, webhooks: Sequence[str], ca_bundle: bytes | None
) -> Object:
    """A MutatingWebhookConfiguration as the chart renders it: no caBundle unless given."""
    client_config: Object = {
        "service": {"name": service, "namespace": namespace, "path": "/mutate", "port": 443}
    }
    if ca_bundle is not None:
        client_config["caBundle"] = base64.b64encode(ca_bundle).decode()
    rule = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE"],
        "resources": ["pods"],
    }
    return {
        "apiVersion": f"{CONFIG_GROUP}/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": webhook,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "clientConfig": copy.deepcopy(client_config),
                "rules": [dict(rule)],
            }
            for webhook in webhooks
        ],
    }


def tls_secret(name: str, *, namespace: str, files: Mapping[str, bytes], note: str = "") -> Object:
    """A `kubernetes.io/tls` Secret holding `files`; `note` tells two versions apart."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace, "annotations": {"note": note}},
        "data": {key: base64.b64encode(value).decode() for key, value in files.items()},
    }


def kubeconfig(url: str) -> Object:
    """A kubeconfig whose current context is the fake at `url` (any token will do)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "fake", "user": {"token": "fake-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "current-context": "fake",
    }


@dataclass(frozen=True)
class Request:
    """One request as the fake received it (path without the query string)."""

    method: str
    path: str
    content_type: str | None
    body: Any
    query: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclass
class _Hook:
    method: str
    path: str
    action: Callable[[], object]
    after: int
    times: int | None

    def fire(self) -> None:
        if self.after:
            self.after -= 1
        elif self.times is None or self.times > 0:
            self.times = None if self.times is None else self.times - 1
            self.action()


class ApiError(Exception):
    """A failure the handler turns into a `Status` response."""

    def __init__(self, code: int, reason: str, message: str, **details: str) -> None:
        super().__init__(message)
        self.status: Object = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": details,
            "code": code,
        }


@dataclass(frozen=True)
class _Kind:
    plural: str
    group: str

    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def not_found(self, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{self.qualified()} "{name}" not found', **self._of(name))

    def already_exists(self, name: str) -> ApiError:
        message = f'{self.qualified()} "{name}" already exists'
        return ApiError(409, "AlreadyExists", message, **self._of(name))

    def conflict(self, name: str) -> ApiError:
        message = (
            f'Operation cannot be fulfilled on {self.qualified()} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again"
        )
        return ApiError(409, "Conflict", message, **self._of(name))

    def invalid(self, name: str, problem: str) -> ApiError:
        message = f'{self.qualified()} "{name}" is invalid: {problem}'
        return ApiError(422, "Invalid", message, **self._of(name))

    def _of(self, name: str) -> dict[str, str]:
        return {"name": name, "kind": self.plural} | ({"group": self.group} if self.group else {})


SECRETS = _Kind("secrets", "")
CONFIGS = _Kind("mutatingwebhookconfigurations", CONFIG_GROUP)
SERVICES = _Kind("services", "")
_PATHS = {
    "Secret": lambda obj: secret_path(obj["metadata"]["namespace"], obj["metadata"]["name"]),
    "MutatingWebhookConfiguration": lambda obj: config_path(obj["metadata"]["name"]),
    "Service": lambda obj: service_path(obj["metadata"]["namespace"], obj["metadata"]["name"]),
    "EndpointSlice": lambda obj: (
        f"{endpoint_slices_path(obj['metadata']['namespace'])}/{obj['metadata']['name']}"
    ),
}


class FakeApiServer:
    """The object store, the request log and the hooks; `serve()` puts it on a port."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._objects: dict[str, Object] = {}
        self._version = 0
        self._hooks: list[_Hook] = []
        self.requests: list[Request] = []

    def store(self, obj: Object) -> Object:
        """Write `obj` as another client would (no checks); the stored copy is returned."""
        with self._lock:
            path = _PATHS[obj["kind"]](obj)
            return self._write(path, copy.deepcopy(obj), previous=self._objects.get(path))

    def get(self, path: str) -> Object | None:
        with self._lock:
            return copy.deepcopy(self._objects.get(path))

    def before(
        self,
        method: str,
        path: str,
        action: Callable[[], object],
        *,
        after: int = 0,
        times: int | None = 1,
    ) -> None:
        """Run `action` just before handling a `method` request to `path`, skipping the first
        `after` such requests, `times` times (None: every one). A concurrent writer."""
        with self._lock:
            self._hooks.append(_Hook(method, path, action, after, times))

    def fail(self, method: str, path: str, *, code: int, reason: str, message: str) -> None:
        """Answer every `method` request to `path` with this failure `Status` (e.g. 403
        Forbidden, as RBAC does), without handling it."""

        def refuse() -> None:
            raise ApiError(code, reason, message)

        self.before(method, path, refuse, times=None)

    def appear_after(self, obj: Object, *, gets: int) -> None:
        """`obj` comes into existence just before the GET following the first `gets` GETs."""
        self.before("GET", _PATHS[obj["kind"]](obj), lambda: self.store(obj), after=gets)

    def count(self, method: str, path: str | None = None) -> int:
        with self._lock:
            return sum(r.method == method and path in (None, r.path) for r in self.requests)

    def handle(self, request: Request) -> tuple[int, Object]:
        """(HTTP status, response body) for one request."""
        with self._lock:
            self.requests.append(request)
            try:
                for hook in [
                    h for h in self._hooks if (h.method, h.path) == (request.method, request.path)
                ]:
                    hook.fire()
                return self._route(request)
            except ApiError as error:
                return error.status["code"], error.status

    def _route(self, request: Request) -> tuple[int, Object]:
        if match := re.fullmatch(r"/api/v1/namespaces/([^/]+)/secrets", request.path):
            _allow(request, "POST")
            return 201, self._create_secret(match[1], request.body)
        if match := re.fullmatch(r"/api/v1/namespaces/([^/]+)/secrets/([^/]+)", request.path):
            if _allow(request, "GET", "PUT") == "GET":
                return 200, self._read(SECRETS, request.path, match[2])
            return 200, self._replace_secret(request.path, match[2], request.body)
        if match := re.fullmatch(r"/api/v1/namespaces/([^/]+)/services/([^/]+)", request.path):
            _allow(request, "GET")
            return 200, self._read(SERVICES, request.path, match[2])
        if re.fullmatch(endpoint_slices_path("[^/]+"), request.path):
            _allow(request, "GET")
            return 200, self._list_slices(request.path, request.query.get("labelSelector", ""))
        if match := re.fullmatch(re.escape(config_path("")) + "([^/]+)", request.path):
            if _allow(request, "GET", "PATCH") == "GET":
                return 200, self._read(CONFIGS, request.path, match[1])
            return 200, self._patch_config(request, match[1])
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _list_slices(self, path: str, selector: str) -> Object:
        wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
        items = [
            copy.deepcopy(obj)
            for key, obj in sorted(self._objects.items())
            if key.startswith(f"{path}/")
            and wanted.items() <= (obj["metadata"].get("labels") or {}).items()
        ]
        return {
            "apiVersion": f"{DISCOVERY_GROUP}/v1",
            "kind": "EndpointSliceList",
            "metadata": {"resourceVersion": str(self._version)},
            "items": items,
        }

    def _read(self, kind: _Kind, path: str, name: str) -> Object:
        if path not in self._objects:
            raise kind.not_found(name)
        return copy.deepcopy(self._objects[path])

    def _create_secret(self, namespace: str, body: Any) -> Object:
        meta = _object(body).get("metadata") or {}
        name = meta.get("name", "")
        if meta.setdefault("namespace", namespace) != namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the "
                "request",
            )
        if meta.get("resourceVersion"):
            raise ApiError(
                500, "InternalError", "resourceVersion should not be set on objects to be created"
            )
        if not name:
            raise SECRETS.invalid(
                "", "metadata.name: Required value: name or generateName is required"
            )
        _check_secret(body, name=name)
        path = secret_path(namespace, name)
        if path in self._objects:
            raise SECRETS.already_exists(name)
        return self._write(path, body, previous=None)

    def _replace_secret(self, path: str, name: str, body: Any) -> Object:
        meta = _object(body).get("metadata") or {}
        if meta.get("name") != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                f"({name})",
            )
        current = self._read(SECRETS, path, name)
        if meta.get("resourceVersion") not in (None, "", current["metadata"]["resourceVersion"]):
            raise SECRETS.conflict(name)
        if body.get("type") != current.get("type"):
            raise SECRETS.invalid(
                name, f'type: Invalid value: "{body.get("type")}": field is immutable'
            )
        _check_secret(body, name=name)
        return self._write(path, body, previous=current)

    def _patch_config(self, request: Request, name: str) -> Object:
        current = self._read(CONFIGS, request.path, name)
        if request.content_type != JSON_PATCH:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format ({request.content_type}); "
                f"this fake accepts only {JSON_PATCH}",
            )
        if not isinstance(request.body, list):
            raise ApiError(
                400,
                "BadRequest",
                "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
            )
        try:
            patched = jsonpatch.apply_patch(current, request.body)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {error}",
            ) from None
        for index, webhook in enumerate(patched.get("webhooks") or []):
            if not _is_base64(webhook.get("clientConfig", {}).get("caBundle", "")):
                raise CONFIGS.invalid(
                    name, f"webhooks[{index}].clientConfig.caBundle: illegal base64 data"
                )
        return self._write(request.path, patched, previous=current)

    def _write(self, path: str, obj: Object, *, previous: Object | None) -> Object:
        meta = obj.setdefault("metadata", {})
        if previous is not None:
            kept = previous["metadata"]
            meta.update(uid=kept["uid"], creationTimestamp=kept["creationTimestamp"])
            meta["resourceVersion"] = kept["resourceVersion"]
            if obj == previous:
                return copy.deepcopy(previous)
        else:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        self._version += 1
        meta["resourceVersion"] = str(self._version)
        self._objects[path] = obj
        return copy.deepcopy(obj)


def _allow(request: Request, *methods: str) -> str:
    if request.method not in methods:
        raise ApiError(
            405,
            "MethodNotAllowed",
            f"the server does not allow this method on the requested resource ({request.method})",
        )
    return request.method


def _object(body: Any) -> Object:
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the request body is not a JSON object")
    return body


def _check_secret(body: Object, *, name: str) -> None:
    data = body.get("data") or {}
    for key, value in data.items():
        if not isinstance(value, str) or not _is_base64(value):
            raise ApiError(
                400,
                "BadRequest",
                f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data in '
                f"data[{key}]",
            )
    if body.get("type") == "kubernetes.io/tls":
        for key in ("tls.crt", "tls.key"):
            if key not in data:
                raise SECRETS.invalid(name, f"data[{key}]: Required value")


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        return False
    return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    # Headers and body go out in separate writes; with Nagle on, each response waits for the
    # client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            code, reply = 400, ApiError(400, "BadRequest", "the body is not JSON").status
        else:
            path, _, query = self.path.partition("?")
            request = Request(
                self.command,
                path,
                self.headers.get("Content-Type"),
                body,
                dict(urllib.parse.parse_qsl(query)),
            )
            code, reply = self.server.fake.handle(request)
        payload = json.dumps(reply).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeApiServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


@contextmanager
def serve(fake: FakeApiServer) -> Iterator[str]:
    """Serve `fake` on 127.0.0.1 until the block ends; yields its base URL."""
    server = _Server(fake)
    # serve_forever only notices shutdown() between polls; the default 0.5 s slows every test.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
