"""A real `shm-webhook serve` for tests: the process on 127.0.0.1 with the session's throwaway
certificate, an HTTPS client that verifies it as the kube-apiserver does, and what Linux says
about the process (its resident memory). Shared by tests/webhook/test_server.py, tests/fuzz/ and
tests/reliability/."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from certs.files import write_bundle
from tests.tlsfixtures import SERVER_NAME, client_context, throwaway_bundle

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0
REVIEW = orjson.dumps(
    {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0e1f2a3b-0000-4000-8000-00000000000a",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "ml",
            "object": {
                "metadata": {"name": "trainer", "annotations": {"shm-size": "1Gi"}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            },
        },
    }
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Connection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1, verifying the certificate for the name the kube-apiserver uses."""

    def __init__(
        self, port: int, *, context: ssl.SSLContext, server_name: str, timeout: float = 5
    ) -> None:
        # Given a context, http.client skips building a default one: 30 ms of CA loading each.
        super().__init__("127.0.0.1", port, timeout=timeout, context=context)
        self.tls = context
        self.server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        # As the kube-apiserver (Go) does; without it Nagle and delayed ACKs add 40 ms a request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.server_name)


def call(
    connection: http.client.HTTPConnection, request: str, *, body: bytes | None = None
) -> tuple[int, bytes]:
    """`request` is "METHOD /path"; a body is sent as JSON."""
    method, path = request.split(" ", 1)
    headers = {"content-type": "application/json"} if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    context: ssl.SSLContext
    log: Path
    server_name: str = SERVER_NAME

    def stderr(self) -> str:
        return self.log.read_text()

    def connection(self, *, timeout: float = 5) -> Connection:
        return Connection(
            self.port, context=self.context, server_name=self.server_name, timeout=timeout
        )

    def tls_socket(self, *, timeout: float = 5) -> ssl.SSLSocket:
        """A TLS connection with the handshake done and nothing sent."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            return self.context.wrap_socket(sock, server_hostname=self.server_name)
        except BaseException:
            sock.close()
            raise

    def get(self, path: str) -> tuple[int, bytes]:
        connection = self.connection()
        try:
            return call(connection, f"GET {path}")
        finally:
            connection.close()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.stderr()
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"not ready after {START_TIMEOUT}s: {self.stderr()}")

    def rss_mib(self) -> float:
        """The server's resident memory now (VmRSS), in MiB."""
        return proc_status(self.process.pid)["VmRSS"] / 1024


def proc_status(pid: int) -> dict[str, int]:
    """The kB figures of /proc/<pid>/status (VmRSS, VmHWM, ...), in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith(" kB"):
            found[key] = int(value.split()[0])
    return found


def start(args: list[str], *, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`shm-webhook serve` on 127.0.0.1:port, its stderr going to `log`."""
    command = [sys.executable, "-m", "webhook", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [*command, *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


@contextmanager
def stopped_at_the_end(process: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def write_certificates(directory: Path) -> Path:
    """The session's throwaway CA and serving certificate as files (ca.crt, tls.crt, tls.key)."""
    write_bundle(throwaway_bundle(), directory)
    return directory


@contextmanager
def serving(certificate_dir: Path, log: Path, *args: str) -> Iterator[Server]:
    """`shm-webhook serve` with the certificate in `certificate_dir`, a metrics port and `args`,
    ready; killed at the end if it is still running."""
    port, metrics_port = free_port(), free_port()
    tls_args = ["--tls-cert-file", str(certificate_dir / "tls.crt"),
                "--tls-key-file", str(certificate_dir / "tls.key")]  # fmt: skip
    process = start(["--metrics-port", str(metrics_port), *tls_args, *args], port=port, log=log)
    context = client_context(throwaway_bundle().ca_cert_pem)
    with stopped_at_the_end(process):
        running = Server(process, port, metrics_port, context, log)
        running.wait_ready()
        yield running


def steady_requests(
    server: Server,
    *,
    stop: threading.Event,
    log: list[tuple[float, int]],
    fresh_connections: bool = False,
    pause: float = 0.01,
    body: bytes = REVIEW,
) -> None:
    """Admission requests back to back until `stop`, over one keep-alive connection or a new
    connection each; appends (time answered, status) of each, status -1 for a failure."""
    connection = server.connection()
    while not stop.is_set():
        try:
            status, _ = call(connection, "POST /mutate", body=body)
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = server.connection()
            log.append((time.monotonic(), -1))
            time.sleep(0.02)
            continue
        log.append((time.monotonic(), status))
        if fresh_connections:
            connection.close()
            connection = server.connection()
        time.sleep(pause)
    connection.close()
