"""`shm-webhook serve` as a real process (SPEC §5): HTTPS verified against our own CA, the
metrics port, the SIGTERM sequence and the development certificate; plus the JSON log format."""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from certs.files import write_bundle
from tests.tlsfixtures import (
    SERVER_NAME,
    another_serving_cert,
    client_context,
    peer_serial,
    serial,
    throwaway_bundle,
)
from webhook.server import JsonFormatter
from webhook.tls import certificate_not_after

REPO = Path(__file__).resolve().parents[2]
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

    def __init__(self, port: int, *, context: ssl.SSLContext, server_name: str) -> None:
        super().__init__("127.0.0.1", port, timeout=5)
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

    def connection(self) -> Connection:
        return Connection(self.port, context=self.context, server_name=self.server_name)

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


@pytest.fixture
def certificate_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tls"
    write_bundle(throwaway_bundle(), directory)
    return directory


@pytest.fixture
def server(certificate_dir: Path, tmp_path: Path) -> Iterator[Server]:
    port, metrics_port = free_port(), free_port()
    args = ["--metrics-port", str(metrics_port), "--shutdown-grace", "2",
            "--tls-cert-file", str(certificate_dir / "tls.crt"),
            "--tls-key-file", str(certificate_dir / "tls.key")]  # fmt: skip
    log = tmp_path / "stderr.log"
    process = start(args, port=port, log=log)
    context = client_context(throwaway_bundle().ca_cert_pem)
    with stopped_at_the_end(process):
        running = Server(process, port, metrics_port, context, log)
        running.wait_ready()
        yield running


pytestmark = pytest.mark.integration


def test_healthz_answers_over_tls_verified_against_our_ca(server: Server) -> None:
    assert server.get("/healthz") == (200, b"ok")


def test_a_client_expecting_another_name_is_refused(server: Server) -> None:
    server.server_name = "other.default.svc"
    with pytest.raises(ssl.SSLCertVerificationError):
        server.get("/healthz")


def test_metrics_show_the_admission_and_the_certificate_expiry(
    server: Server, certificate_dir: Path
) -> None:
    connection = server.connection()
    try:
        status, body = call(connection, "POST /mutate?timeout=3s", body=REVIEW)
    finally:
        connection.close()
    assert status == 200
    assert json.loads(body)["response"]["patchType"] == "JSONPatch"
    samples = _metrics(server)
    assert samples['shm_webhook_admissions_total{outcome="mutated",reason="injected"}'] == 1
    assert samples["shm_webhook_injected_bytes_total"] == 2**30
    assert samples["shm_webhook_admission_duration_seconds_count"] == 1
    expiry = certificate_not_after(certificate_dir / "tls.crt").timestamp()
    assert samples["shm_webhook_certificate_expiry_timestamp_seconds"] == expiry


def _metrics(server: Server) -> dict[str, float]:
    connection = http.client.HTTPConnection("127.0.0.1", server.metrics_port, timeout=5)
    try:
        status, text = call(connection, "GET /metrics")
    finally:
        connection.close()
    assert status == 200
    lines = text.decode().splitlines()
    return {
        name: float(value)
        for name, value in (line.rsplit(" ", 1) for line in lines if not line.startswith("#"))
    }


def test_a_rotated_certificate_is_served_without_a_restart(
    server: Server, certificate_dir: Path
) -> None:
    before = server.connection()
    before.connect()
    first = peer_serial(before.sock)
    cert_pem, key_pem = another_serving_cert(throwaway_bundle(), validity=timedelta(days=30))
    (certificate_dir / "tls.key").write_bytes(key_pem)
    (certificate_dir / "tls.crt").write_bytes(cert_pem)
    deadline = time.monotonic() + 10
    while True:
        after = server.connection()
        after.connect()
        rotated = peer_serial(after.sock)
        after.close()
        if rotated != first or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rotated == serial(cert_pem)
    try:  # the connection made before the rotation still works
        assert call(before, "GET /healthz") == (200, b"ok")
    finally:
        before.close()
    expiry = _metrics(server)["shm_webhook_certificate_expiry_timestamp_seconds"]
    assert expiry == certificate_not_after(cert_pem).timestamp()


def _steady_requests(
    server: Server, *, stop: threading.Event, log: list[tuple[float, int]]
) -> None:
    """Admission requests back to back over keep-alive; (time, status) of each answer."""
    connection = server.connection()
    while not stop.is_set():
        try:
            status, _ = call(connection, "POST /mutate", body=REVIEW)
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = server.connection()
            log.append((time.monotonic(), -1))
            time.sleep(0.02)
            continue
        log.append((time.monotonic(), status))
        time.sleep(0.01)
    connection.close()


def test_sigterm_turns_unready_keeps_answering_through_the_grace_then_exits_0(
    server: Server,
) -> None:
    stop = threading.Event()
    answers: list[tuple[float, int]] = []
    worker = threading.Thread(
        target=_steady_requests, args=(server,), kwargs={"stop": stop, "log": answers}
    )
    worker.start()
    time.sleep(0.3)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        time.sleep(0.3)
        assert server.get("/readyz")[0] == 503
        assert server.get("/healthz")[0] == 200
        code = server.process.wait(timeout=15)
    finally:
        stop.set()
        worker.join()
    assert code == 0
    grace = [status for at, status in answers if signalled < at < signalled + 1.8]
    assert len(grace) > 20
    assert set(grace) == {200}
    assert {status for at, status in answers if at < signalled} == {200}


def test_a_second_signal_exits_at_once(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    started = time.monotonic()
    server.process.send_signal(signal.SIGINT)
    code = server.process.wait(timeout=5)
    assert time.monotonic() - started < 1.5
    assert code == 128 + signal.SIGINT


def test_without_a_certificate_it_serves_a_development_one_and_says_where_the_ca_is(
    tmp_path: Path,
) -> None:
    port, log = free_port(), tmp_path / "stderr.log"
    process = start(["--metrics-port", "0", "--shutdown-grace", "0"], port=port, log=log)
    with stopped_at_the_end(process):
        deadline = time.monotonic() + START_TIMEOUT
        while "CA at " not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.05)
        [line] = [line for line in log.read_text().splitlines() if "CA at " in line]
        ca_file = Path(line.split("CA at ", 1)[1].split(";", 1)[0])
        assert f"curl --cacert {ca_file} https://localhost:{port}/healthz" in line
        context = client_context(ca_file.read_bytes())
        running = Server(process, port, 0, context, log, server_name="localhost")
        running.wait_ready()
        assert running.get("/healthz") == (200, b"ok")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_an_unreadable_certificate_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.crt"
    result = subprocess.run(
        [sys.executable, "-m", "webhook", "serve", "--tls-cert-file", str(missing),
         "--tls-key-file", str(tmp_path / "missing.key"), "--metrics-port", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    [line] = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert line.startswith("error: --tls-cert-file")
    assert str(missing) in line


def test_log_records_are_one_json_object_per_line_with_their_fields() -> None:
    record = logging.LogRecord(
        "webhook.admission", logging.INFO, __file__, 1, "admission", (), None
    )
    record.fields = {"uid": "u", "size": 2**30, "outcome": "mutated"}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "info"
    assert entry["message"] == "admission"
    assert (entry["uid"], entry["size"], entry["outcome"]) == ("u", 2**30, "mutated")
