"""Graceful shutdown under steady load (SPEC §5), as a Kubernetes rollout does it: SIGTERM while
clients send admissions back to back, some over keep-alive connections and some on a fresh
connection each; the clients watch /readyz and stop once it has failed and the endpoint
removal has had time to spread (`PROPAGATION`), as the kube-apiserver would. Not one request
may fail, the request in flight when the grace ends is finished, and the process exits 0
soon after the grace.

tests/webhook/test_server.py checks the sequence itself with one client; this adds the
concurrency, the fresh connections, the readiness-driven stop and the in-flight request.
"""

from __future__ import annotations

import http.client
import signal
import ssl
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.serving import REVIEW, Server, serving, write_certificates

pytestmark = pytest.mark.integration

GRACE = 3.0  # --shutdown-grace
PROPAGATION = 1.0  # how long clients keep sending after /readyz fails
EXIT_MARGIN = 3.0  # seconds past the grace the process may take to exit
CLIENTS = 3  # of each kind


@dataclass
class Traffic:
    """What the clients saw: (sent, answered, status) of every request, -1 for a failure."""

    stop_at: float | None = None  # when clients stop sending: readiness failed + PROPAGATION
    unready_at: float | None = None
    requests: list[tuple[float, float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stopped(self) -> bool:
        return self.stop_at is not None and time.monotonic() >= self.stop_at

    def record(self, sent: float, status: int) -> None:
        with self.lock:
            self.requests.append((sent, time.monotonic(), status))


def watch_readiness(server: Server, traffic: Traffic, *, deadline: float) -> None:
    """Poll /readyz on a fresh connection every 50 ms, as a kubelet probe does."""
    while time.monotonic() < deadline:
        try:
            ready = server.get("/readyz")[0] == 200
        except (OSError, http.client.HTTPException):
            ready = False
        if not ready:
            traffic.unready_at = time.monotonic()
            traffic.stop_at = traffic.unready_at + PROPAGATION
            return
        time.sleep(0.05)


def send_admissions(server: Server, traffic: Traffic, *, fresh: bool, deadline: float) -> None:
    connection = server.connection()
    while not traffic.stopped() and time.monotonic() < deadline:
        sent = time.monotonic()
        try:
            connection.request("POST", "/mutate", REVIEW, {"content-type": "application/json"})
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = -1
            connection.close()
        traffic.record(sent, status)
        if fresh or status == -1:
            connection.close()
            connection = server.connection()
        time.sleep(0.005)
    connection.close()


def in_flight_across_the_end_of_the_grace(
    server: Server, *, grace_ends: float, answers: list[int]
) -> None:
    """Headers and half the body before the grace ends, the rest half a second after."""
    half = len(REVIEW) // 2
    sock: ssl.SSLSocket = server.tls_socket(timeout=15)
    try:
        time.sleep(max(0.0, grace_ends - 0.5 - time.monotonic()))
        sock.sendall(
            b"POST /mutate HTTP/1.1\r\nHost: shm-webhook\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(REVIEW), REVIEW[:half])
        )
        time.sleep(max(0.0, grace_ends + 0.5 - time.monotonic()))
        sock.sendall(REVIEW[half:])
        response = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
        response.begin()
        response.read()
        answers.append(response.status)
    except (OSError, http.client.HTTPException):
        answers.append(-1)
    finally:
        sock.close()


def test_sigterm_under_steady_load_loses_no_request_and_exits_0_soon_after_the_grace(
    tmp_path: Path,
) -> None:
    certificates = write_certificates(tmp_path / "tls")
    grace = ("--shutdown-grace", str(GRACE))
    with serving(certificates, tmp_path / "stderr.log", *grace) as server:
        traffic = Traffic()
        in_flight: list[int] = []
        deadline = time.monotonic() + GRACE + 20  # every thread ends by then, whatever happens
        watch = {"deadline": deadline}
        threads = [threading.Thread(target=watch_readiness, args=(server, traffic), kwargs=watch)]
        for fresh in [False] * CLIENTS + [True] * CLIENTS:
            kwargs = {"fresh": fresh, "deadline": deadline}
            threads.append(
                threading.Thread(target=send_admissions, args=(server, traffic), kwargs=kwargs)
            )
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        signalled = time.monotonic()
        grace_ends = signalled + GRACE
        slow = threading.Thread(
            target=in_flight_across_the_end_of_the_grace,
            args=(server,),
            kwargs={"grace_ends": grace_ends, "answers": in_flight},
        )
        slow.start()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=GRACE + 15)
        exited = time.monotonic()
        for thread in [*threads, slow]:
            thread.join(timeout=20)
            assert not thread.is_alive()

    assert code == 0, server.stderr()
    assert exited - signalled < GRACE + EXIT_MARGIN
    assert exited - signalled > GRACE  # the grace was kept
    assert traffic.unready_at is not None
    assert traffic.unready_at - signalled < 1.0
    statuses = [status for _, _, status in traffic.requests]
    assert statuses.count(-1) == 0, "failed requests"
    assert set(statuses) == {200}
    after_signal = [(sent, answered) for sent, answered, _ in traffic.requests if sent > signalled]
    assert len(after_signal) > 50  # the load went on while the pod was unready
    assert max(sent for sent, _ in after_signal) > signalled + PROPAGATION * 0.8
    latencies = [answered - sent for sent, answered in after_signal]
    assert statistics.median(latencies) < 0.1
    assert in_flight == [200]
