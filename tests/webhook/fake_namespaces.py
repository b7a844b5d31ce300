"""A fake kube-apiserver over TLS on 127.0.0.1 that serves namespaces: the paged LIST and the
WATCH that `webhook.namespace_cache` makes, nothing else.

Mirrored from the real one: `limit` and `continue` paging with the list's resourceVersion in
the last page, a watch that starts after `resourceVersion` and streams one JSON event a line
(chunked), BOOKMARK events, an `ERROR` event with a 410 Status when the version is too old, a
watch that the server ends (the test decides when), and bearer-token authentication (401).
Not mirrored: field and label selectors, `timeoutSeconds`, RBAC.
"""

from __future__ import annotations

import json
import queue
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from certs.generate import Bundle, generate_bundle

TOKEN = "a-token"
END = object()  # put on a watch queue: the server ends that watch


def namespace(
    name: str, *, annotations: dict[str, str] | None = None, **labels: str
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {"kubernetes.io/metadata.name": name, **labels},
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


class FakeNamespaceApi:
    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.namespaces: list[dict[str, Any]] = []
        self.version = 100
        self.oldest_watchable = 0  # a watch from an older version gets 410 Gone
        self.lists = 0
        self.watches: queue.Queue[queue.Queue[object]] = queue.Queue()  # one queue per watch
        self.fail_next_requests = 0  # answer this many requests with 500

    def event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """An event of the next resourceVersion, as the watch sends it."""
        self.version += 1
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = str(self.version)
        return {"type": kind, "object": obj}

    def next_watch(self, timeout: float = 10) -> queue.Queue[object]:
        """The event queue of the next watch a client opens."""
        return self.watches.get(timeout=timeout)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        api = self.server.api
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._json(401, {"kind": "Status", "code": 401, "message": "Unauthorized"})
            return
        if api.fail_next_requests:
            api.fail_next_requests -= 1
            self._json(500, {"kind": "Status", "code": 500, "message": "etcd is sad"})
            return
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path != "/api/v1/namespaces":
            self._json(404, {"kind": "Status", "code": 404, "message": "not here"})
            return
        if query.get("watch") in ("1", "true"):
            self._watch(int(query.get("resourceVersion") or 0))
            return
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 10**9)
        items = api.namespaces[start : start + limit]
        api.lists += start == 0
        more = start + limit < len(api.namespaces)
        metadata = {"resourceVersion": str(api.version)}
        if more:
            metadata["continue"] = str(start + limit)
        self._json(200, {"kind": "NamespaceList", "metadata": metadata, "items": items})

    def _watch(self, version: int) -> None:
        api = self.server.api
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if version < api.oldest_watchable:
            gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
            self._chunk({"type": "ERROR", "object": gone})
            self._chunk(None)
            return
        events: queue.Queue[object] = queue.Queue()
        api.watches.put(events)
        while (event := events.get()) is not END:
            self._chunk(event)
        self._chunk(None)

    def _chunk(self, event: object) -> None:
        data = b"" if event is None else json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    api: FakeNamespaceApi


@contextmanager
def fake_namespace_api(tmp_path: Path) -> Iterator[tuple[FakeNamespaceApi, int, Path]]:
    """The fake, its port, and the CA file that verifies it (its certificate names 127.0.0.1)."""
    bundle = generate_bundle(
        service="kubernetes", namespace="default", now=datetime.now(UTC), extra_names=["127.0.0.1"]
    )
    (tmp_path / "ca.crt").write_bytes(bundle.ca_cert_pem)
    (tmp_path / "tls.crt").write_bytes(bundle.cert_pem)
    (tmp_path / "tls.key").write_bytes(bundle.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server = _Server(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.api = FakeNamespaceApi(bundle)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server.api, server.server_address[1], tmp_path / "ca.crt"
    finally:
        while True:  # end every open watch so its handler thread returns
            try:
                server.api.watches.get_nowait().put(END)
            except queue.Empty:
                break
        server.shutdown()
        server.server_close()
