"""`shm-webhook serve` as a real process (SPEC §5): HTTPS verified against our own CA, the
metrics port, the SIGTERM sequence and the development certificate; plus the JSON log format."""

from __future__ import annotations

import http.client
import io
import json
import logging
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.builders import REVIEW
from tests.processes import free_port
from tests.serving import REPO, ServedWebhook, call, serving, write_certificates
from tests.tlsfixtures import another_serving_cert, peer_serial, serial, throwaway_bundle
from webhook.app import State
from webhook.server import CLIENT_IDLE_TIMEOUT, QUIET, AdmissionLines, JsonFormatter, WebhookServer
from webhook.tls import certificate_not_after


@pytest.fixture
def certificate_dir(tmp_path: Path) -> Path:
    return write_certificates(tmp_path / "tls")


@pytest.fixture
def server(certificate_dir: Path, tmp_path: Path) -> Iterator[ServedWebhook]:
    with serving(certificate_dir, tmp_path / "stderr.log", "--shutdown-grace", "2") as running:
        yield running
        running.kill()  # a test that did not stop it: its drain is not what it is about


pytestmark = pytest.mark.integration


def test_healthz_answers_over_tls_verified_against_our_ca(server: ServedWebhook) -> None:
    assert server.get("/healthz") == (200, b"ok")


def test_a_client_expecting_another_name_is_refused(server: ServedWebhook) -> None:
    server.server_name = "other.default.svc"
    with pytest.raises(ssl.SSLCertVerificationError):
        server.get("/healthz")


def test_metrics_show_the_admission_and_the_certificate_expiry(
    server: ServedWebhook, certificate_dir: Path
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


def test_each_admission_served_is_one_json_line_on_stderr(
    server: ServedWebhook,
) -> None:
    connection = server.connection()
    try:
        assert call(connection, "POST /mutate?timeout=3s", body=REVIEW)[0] == 200
        lines = server.admissions_of(namespace="ml", name="trainer", count=1)
    finally:
        connection.close()
    assert len(lines) == 1
    assert (lines[0]["logger"], lines[0]["outcome"], lines[0]["reason"]) == (
        "webhook.admission",
        "mutated",
        "injected",
    )
    assert lines[0]["uid"] == json.loads(REVIEW)["request"]["uid"]


def _metrics(server: ServedWebhook) -> dict[str, float]:
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
    server: ServedWebhook, certificate_dir: Path
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


def steady_requests(
    server: ServedWebhook,
    *,
    stop: threading.Event,
    log: list[tuple[float, int]],
    pause: float = 0.01,
) -> None:
    """Admission requests back to back until `stop`, reconnecting after a failure; appends
    (time answered, status) of each, status -1 for a failure."""
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
        time.sleep(pause)
    connection.close()


def test_sigterm_turns_unready_keeps_answering_through_the_grace_then_exits_0(
    server: ServedWebhook,
) -> None:
    stop = threading.Event()
    answers: list[tuple[float, int]] = []
    worker = threading.Thread(
        target=steady_requests, args=(server,), kwargs={"stop": stop, "log": answers}
    )
    worker.start()
    time.sleep(0.3)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        time.sleep(0.3)
        assert server.get("/readyz")[0] == 503
        assert server.get("/healthz")[0] == 200
        # The client goes on (a new connection for each request: every answer now closes
        # its connection) until the endpoint change would have reached it.
        time.sleep(max(0.0, signalled + 1.8 - time.monotonic()))
    finally:
        stop.set()
        worker.join()
    stopped = time.monotonic() - signalled
    code = server.process.wait(timeout=15)
    exited = time.monotonic() - signalled
    assert code == 0
    grace = [status for at, status in answers if signalled < at < signalled + 1.8]
    assert len(grace) > 20
    assert set(grace) == {200}
    assert {status for at, status in answers if at < signalled} == {200}
    # The grace kept, and QUIET with no client before the exit.
    assert max(2.0, stopped - 0.2 + QUIET) < exited < max(2.0, stopped) + QUIET + 1.5


def test_a_second_signal_exits_at_once(server: ServedWebhook) -> None:
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    started = time.monotonic()
    server.process.send_signal(signal.SIGINT)
    code = server.process.wait(timeout=5)
    assert time.monotonic() - started < 1.5
    assert code == 128 + signal.SIGINT


def test_with_no_grace_sigterm_closes_idle_connections_and_exits_at_once(
    certificate_dir: Path, tmp_path: Path
) -> None:
    with serving(certificate_dir, tmp_path / "stderr.log", "--shutdown-grace", "0") as server:
        idle = server.connection()
        try:
            assert call(idle, "GET /healthz") == (200, b"ok")  # then kept alive, idle
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert idle.sock is not None
            assert idle.sock.recv(1) == b""  # closed by the server, as a client reading sees
            closed = time.monotonic() - signalled
        finally:
            idle.close()
        code = server.process.wait(timeout=10)
    assert code == 0
    assert closed < 1.0
    assert time.monotonic() - signalled < 2.0


def test_without_a_certificate_it_serves_a_development_one_and_says_where_the_ca_is(
    tmp_path: Path,
) -> None:
    # Ready means /readyz answered over TLS verified against the CA that line names.
    with ServedWebhook(log=tmp_path / "stderr.log") as running:
        [line] = [line for line in running.log_text().splitlines() if "CA at " in line]
        ca_file = Path(line.split("CA at ", 1)[1].split(";", 1)[0])
        assert f"curl --cacert {ca_file} https://localhost:{running.port}/healthz" in line
        assert running.server_name == "localhost"
        assert running.get("/healthz") == (200, b"ok")
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=10) == 0


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


@pytest.mark.parametrize(
    "level", [pytest.param(logging.INFO, id="info"), pytest.param(logging.WARNING, id="warning")]
)
def test_the_admission_line_is_written_as_the_formatter_writes_its_record(level: int) -> None:
    fields = {"uid": "u", "namespace": None, "size": 2**30, "duration_ms": 0.125}
    stream = io.BytesIO()
    AdmissionLines(stream)(level, fields)
    written = stream.getvalue()
    assert written.endswith(b"\n")
    assert written.count(b"\n") == 1
    record = logging.LogRecord("webhook.admission", level, __file__, 1, "admission", (), None)
    record.fields = fields
    formatted = json.loads(JsonFormatter().format(record))
    entry = json.loads(written)
    assert list(entry) == list(formatted)
    assert {**entry, "time": None} == {**formatted, "time": None}
    assert abs(datetime.fromisoformat(entry["time"]).timestamp() - record.created) < 5


def drain_steps(*, grace: float, steps: list[tuple[float, int, int]]) -> list[tuple[float, bool]]:
    """WebhookServer's drain decision at each (seconds after the signal, connections open,
    requests answered so far): whether it would exit."""

    async def app(scope: Any, receive: Any, send: Any) -> None:  # noqa: ARG001
        raise AssertionError("not served")

    server = WebhookServer(
        uvicorn.Config(app, lifespan="off", log_config=None),
        state=State(),
        reloader=None,  # type: ignore[arg-type]  # not used by the drain
        grace=grace,
    )
    server.handle_exit(signal.SIGTERM, None)
    decisions = []
    for elapsed, connections, requests in steps:
        server.shared.connections.clear()
        server.shared.connections.update(object() for _ in range(connections))  # type: ignore[misc]
        server.shared.total_requests = requests
        server._drain(elapsed)
        decisions.append((elapsed, server.should_exit))
        if server.should_exit:
            break
    return decisions


@pytest.mark.parametrize(
    ("steps", "exit_at"),
    [
        pytest.param([(0.5, 0, 0), (1.9, 0, 0), (2.0, 0, 0)], 2.0, id="no client: at the grace"),
        pytest.param(
            [(0.5, 3, 10), (2.0, 1, 50), (2.9, 0, 50), (3.0, 0, 50)],
            3.0,
            id="clients still connected at the grace: QUIET after the last one",
        ),
        pytest.param(
            [(2.0, 0, 5), (2.5, 0, 6), (3.4, 0, 6), (3.5, 0, 6)],
            3.5,
            id="a request answered after the grace, on a connection opened and closed between",
        ),
        pytest.param(
            [
                (2.0, 1, 0),
                (50.0, 1, 0),
                (2 + CLIENT_IDLE_TIMEOUT - 0.1, 1, 0),
                (2 + CLIENT_IDLE_TIMEOUT, 1, 0),
            ],
            2 + CLIENT_IDLE_TIMEOUT,
            id="an idle connection the client never closes: at the deadline",
        ),
    ],
)
def test_the_drain_ends_once_no_client_has_been_seen_for_quiet_after_the_grace(
    steps: list[tuple[float, int, int]], exit_at: float
) -> None:
    decisions = drain_steps(grace=2.0, steps=steps)
    assert [elapsed for elapsed, leaves in decisions if leaves] == [exit_at]
    assert QUIET == 1.0  # the steps above are written for it


def test_with_no_grace_the_drain_ends_at_the_first_tick() -> None:
    assert drain_steps(grace=0, steps=[(0.1, 5, 0)]) == [(0.1, True)]


@pytest.mark.parametrize("which", ["--port", "--metrics-port"])
def test_a_port_in_use_is_one_line_and_exit_code_3(which: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "--metrics-port" if which == "--port" else "--port"
        done = subprocess.run(
            [sys.executable, "-m", "webhook", "serve", "--host", "127.0.0.1",
             which, str(port), other, "0" if other == "--metrics-port" else str(free_port())],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 3
    errors = [line for line in done.stderr.splitlines() if "already in use" in line]
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert str(port) in errors[0]
