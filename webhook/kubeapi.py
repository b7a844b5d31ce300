"""Just enough of a Kubernetes API client for `serve` to list and watch namespaces.

Owns: `Connection` (where the API server is and how to authenticate: the pod's service account,
or a kubeconfig's token or client certificate), `get` (one JSON document) and `watch` (the
events of a watch, one JSON object a line), and `ApiError`. Standard library only, with `yaml`
for a kubeconfig: the `kubernetes` package costs `serve` 38 MiB of RSS and 1.1 s of start-up
(measured; docs/namespaces.md), for two GETs. Must not import the web framework.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ApiError(Exception):
    """The API server could not be reached or refused; `status` is its HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    context: ssl.SSLContext
    token_file: Path | None = None  # re-read at every request: bound tokens rotate
    token: str | None = None

    def headers(self) -> dict[str, str]:
        token = self.token
        if self.token_file is not None:
            token = self.token_file.read_text(encoding="utf-8").strip()
        headers = {"Accept": "application/json", "User-Agent": "shm-webhook"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers


def in_cluster(environ: Mapping[str, str] = os.environ) -> Connection:
    """The pod's service account, as client-go's rest.InClusterConfig reads it."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ApiError("not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset): give --kubeconfig")
    context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
    return Connection(host, int(port), context, token_file=SERVICE_ACCOUNT / "token")


def from_kubeconfig(path: Path, *, context_name: str | None = None) -> Connection:
    """The current (or named) context of a kubeconfig whose user has a token or a client
    certificate; exec plugins and auth providers are not supported."""
    import yaml  # only outside a cluster

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = context_name or config["current-context"]
        context = _named(config, "contexts", name)["context"]
        cluster = _named(config, "clusters", context["cluster"])["cluster"]
        user = _named(config, "users", context["user"])["user"] or {}
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise ApiError(f"cannot use the kubeconfig {path}: {error!r}") from None
    url = urlsplit(cluster["server"])
    if url.scheme != "https" or not url.hostname:
        raise ApiError(f"the kubeconfig {path} names {cluster['server']!r}; expected https://")
    tls = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    elif "certificate-authority-data" in cluster:
        authority = base64.b64decode(cluster["certificate-authority-data"]).decode()
        tls.load_verify_locations(cadata=authority)
    elif "certificate-authority" in cluster:
        tls.load_verify_locations(cafile=cluster["certificate-authority"])
    _client_certificate(tls, user)
    token_file = Path(user["tokenFile"]) if "tokenFile" in user else None
    return Connection(
        url.hostname, url.port or 443, tls, token_file=token_file, token=user.get("token")
    )


def get(connection: Connection, path: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """GET `path` and decode the JSON object it answers."""
    response, conn = _request(connection, path, timeout=timeout)
    try:
        document = json.loads(response.read())
    except ValueError:
        raise ApiError(f"GET {path}: the answer is not JSON") from None
    finally:
        conn.close()
    if not isinstance(document, dict):
        raise ApiError(f"GET {path}: the answer is not a JSON object")
    return document


def watch(connection: Connection, path: str, *, timeout: float) -> Iterator[dict[str, Any]]:
    """The events of the watch at `path` until the server ends it (or `timeout` passes with
    nothing read); an `ERROR` event is raised as `ApiError` with its status code."""
    response, conn = _request(connection, path, timeout=timeout)
    try:
        for line in iter(response.readline, b""):
            event = json.loads(line)
            if event.get("type") == "ERROR":
                status = event.get("object") or {}
                raise ApiError(f"watch {path}: {status.get('message')}", status=status.get("code"))
            yield event
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise ApiError(f"watch {path}: {error!r}") from None
    finally:
        conn.close()


def _request(
    connection: Connection, path: str, *, timeout: float
) -> tuple[http.client.HTTPResponse, http.client.HTTPSConnection]:
    conn = http.client.HTTPSConnection(
        connection.host, connection.port, context=connection.context, timeout=timeout
    )
    try:
        conn.request("GET", path, headers=connection.headers())
        response = conn.getresponse()
    except (OSError, http.client.HTTPException) as error:
        conn.close()
        raise ApiError(f"GET {path}: {error!r}") from None
    if response.status != 200:
        body = response.read(2000).decode("utf-8", "replace")
        conn.close()
        try:
            message = json.loads(body).get("message", body)
        except ValueError:
            message = body
        raise ApiError(f"GET {path}: {response.status} {message}", status=response.status)
    return response, conn


def _named(config: Mapping[str, Any], section: str, name: str) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if entry.get("name") == name:
            return dict(entry)
    raise KeyError(f"{section} has no entry named {name!r}")


def _client_certificate(tls: ssl.SSLContext, user: Mapping[str, Any]) -> None:
    if "client-certificate-data" in user:
        # ssl loads a certificate chain only from files: write them where only we can read,
        # load them, and remove them.
        with tempfile.TemporaryDirectory(prefix="shm-webhook-kubeconfig-") as folder:
            cert, key = Path(folder) / "client.crt", Path(folder) / "client.key"
            for target, field in ((cert, "client-certificate-data"), (key, "client-key-data")):
                target.touch(mode=0o600)
                target.write_bytes(base64.b64decode(user[field]))
            tls.load_cert_chain(str(cert), str(key))
    elif "client-certificate" in user:
        tls.load_cert_chain(user["client-certificate"], user.get("client-key"))
