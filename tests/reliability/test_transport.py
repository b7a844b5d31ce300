"""Transport abuse against a `shm-webhook serve` process on 127.0.0.1 (SPEC §3, §5): slow and
idle clients, many concurrent connections, bodies over the limit, bad TLS handshakes. The
server must keep answering a well-behaved client promptly, with its memory (VmRSS) bounded.

The limits uvicorn lacks (an idle timeout before the first request, a read deadline, a header
size limit) are webhook/transport.py's; docs/reliability.md gives the measurements. An idle
connection is closed only after webhook.transport.IDLE_TIMEOUT (120 s, past the
kube-apiserver's own 90 s): too long to wait for here, tests/webhook/test_transport.py checks
its timer.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bench.procstat import memory_kib
from tests.builders import REVIEW
from tests.reliability.abuse import (
    SLOW_REQUEST,
    WellBehavedClient,
    client_hello,
    closed_by_peers,
    first_answer,
    send_quietly,
)
from tests.serving import REPO, Connection, ServedWebhook, call, serving, write_certificates
from webhook.quantity import parse, to_bytes
from webhook.review import MAX_JSON_ITEMS
from webhook.settings import load_settings
from webhook.transport import MAX_HEADER_BYTES, READ_TIMEOUT

pytestmark = pytest.mark.integration

PROMPT = 0.2  # seconds: the 90th percentile latency a well-behaved client must get
ANSWERED = 1.0  # seconds: the slowest answer it may get at all
RSS_GROWTH = 50.0  # MiB
MIB = 2**20


@pytest.fixture(scope="module")
def certificate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_certificates(tmp_path_factory.mktemp("transport") / "tls")


@pytest.fixture(scope="module")
def server(certificate_dir: Path) -> Iterator[ServedWebhook]:
    """One server for the abuse that leaves it as it found it."""
    with serving(certificate_dir, certificate_dir.parent / "stderr.log") as running:
        yield running


@pytest.fixture
def fresh_server(certificate_dir: Path, tmp_path: Path) -> Iterator[ServedWebhook]:
    """A server of its own, for abuse that inflates its memory."""
    with serving(certificate_dir, tmp_path / "stderr.log") as running:
        yield running


@dataclass
class Hold:
    """What became of the connections held open beside a well-behaved client."""

    client: WellBehavedClient
    closed: dict[str, int]
    opened: dict[str, int]
    rss_growth: float
    fresh_latency: float
    answers: dict[str, bytes]  # what the first connection of each group received


@pytest.fixture(scope="module")
def hold(server: ServedWebhook) -> Iterator[Hold]:
    """Hold connections open in every unfinished state for the read timeout and a second, the
    slow ones sending a byte a second, while a well-behaved client sends a request every 0.1 s;
    then see which connections the server has closed, and what it said first."""
    rss_before = server.rss_mib()
    groups: dict[str, list[socket.socket]] = {"after an answered request": []}
    for _ in range(5):
        sock = server.tls_socket()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: shm-webhook\r\n\r\n")
        groups["after an answered request"].append(sock)
    groups["that sent nothing after the TLS handshake"] = [server.tls_socket() for _ in range(200)]
    groups["that sent nothing, not even a TLS handshake"] = [
        socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(20)
    ]
    groups["whose headers never end"] = [server.tls_socket() for _ in range(20)]
    groups["whose body never ends"] = [server.tls_socket() for _ in range(20)]
    groups["sending a byte a second"] = [server.tls_socket() for _ in range(20)]
    head, _, body = SLOW_REQUEST.partition(b"\r\n\r\n")
    for sock in groups["whose headers never end"]:
        sock.sendall(head[:40])
    for sock in groups["whose body never ends"]:
        sock.sendall(head + b"\r\n\r\n" + body[:10])
    client = WellBehavedClient(server)
    started = time.monotonic()
    sent = 0
    try:
        while time.monotonic() - started < READ_TIMEOUT + 1:
            if time.monotonic() - started >= sent:  # one more byte from each slow client
                for sock in groups["sending a byte a second"]:
                    send_quietly(sock, SLOW_REQUEST[sent : sent + 1])
                sent += 1
            client.request()
            time.sleep(0.1)
        fresh_latency = client.fresh_request()
        answers, closed = {}, {}
        for name, socks in groups.items():
            answers[name], first_closed = first_answer(socks[0])
            closed[name] = first_closed + sum(closed_by_peers(socks[1:]))
        yield Hold(
            answers=answers,
            client=client,
            closed=closed,
            opened={name: len(socks) for name, socks in groups.items()},
            rss_growth=server.rss_mib() - rss_before,
            fresh_latency=fresh_latency,
        )
    finally:
        client.close()
        for socks in groups.values():
            for sock in socks:
                sock.close()


def test_a_client_is_served_promptly_beside_idle_slow_and_unfinished_connections(
    hold: Hold,
) -> None:
    assert set(hold.client.statuses) == {200}
    assert len(hold.client.latencies) > 30
    assert hold.client.p90() < PROMPT, hold.client.latencies
    assert max(hold.client.latencies) < ANSWERED
    assert hold.fresh_latency < ANSWERED
    assert hold.rss_growth < RSS_GROWTH


# Closing an idle connection could race a request the client is writing on it: the server
# leaves it to the client for IDLE_TIMEOUT (docs/reliability.md, "Shutdown").


def test_a_keep_alive_connection_is_left_open_past_the_read_timeout(hold: Hold) -> None:
    group = "after an answered request"
    assert hold.closed[group] == 0
    assert hold.answers[group].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close" not in hold.answers[group]


def test_a_connection_that_never_sends_a_request_is_left_open_past_the_read_timeout(
    hold: Hold,
) -> None:
    group = "that sent nothing after the TLS handshake"
    assert hold.closed[group] == 0
    assert hold.answers[group] == b""  # nothing was asked: nothing to answer


@pytest.mark.parametrize(
    "group",
    [
        pytest.param(group, id=f"a connection {group} gets a 408 after the read timeout")
        for group in ("whose headers never end", "whose body never ends", "sending a byte a second")
    ],
)
def test_a_connection_that_does_not_finish_its_request_is_answered_408_and_closed(
    hold: Hold, group: str
) -> None:
    assert hold.closed[group] == hold.opened[group]
    status_line, _, rest = hold.answers[group].partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout"
    assert rest.endswith(b"\r\n\r\nthe request was not received within %g s\n" % READ_TIMEOUT)


def test_300_concurrent_connections_are_all_answered(server: ServedWebhook) -> None:
    count = 300
    rss_before = server.rss_mib()
    # All connected first, quickly, then all sending at once.
    connections = [server.connection(timeout=30) for _ in range(count)]
    started = time.monotonic()
    for connection in connections:
        connection.connect()
    connected = time.monotonic() - started
    assert connected < READ_TIMEOUT / 2
    everyone_ready = threading.Barrier(count, timeout=60)

    def admit(connection: Connection) -> tuple[int, float]:
        try:
            everyone_ready.wait()
            started = time.monotonic()
            status, _ = call(connection, "POST /mutate?timeout=3s", body=REVIEW)
            return status, time.monotonic() - started
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        answers = list(pool.map(admit, connections, timeout=60))
    assert [status for status, _ in answers] == [200] * count
    assert max(latency for _, latency in answers) < 10  # every one within the API's 10 s
    client = WellBehavedClient(server)
    client.request()
    client.close()
    assert client.latencies[0] < ANSWERED
    assert server.rss_mib() - rss_before < RSS_GROWTH


def _chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // MIB):
        yield b" " * MIB


@pytest.mark.parametrize(
    "framing",
    [
        pytest.param("content-length", id="a 9 MiB body with its Content-Length is a 413"),
        pytest.param("chunked", id="a 9 MiB chunked body without a length is a 413"),
    ],
)
def test_a_body_over_the_limit_is_refused_and_memory_stays_bounded(
    server: ServedWebhook, framing: str
) -> None:
    rss_before = server.rss_mib()
    connection = server.connection(timeout=30)
    headers = {"content-type": "application/json"}
    try:
        if framing == "chunked":
            connection.request("POST", "/mutate", _chunks(9 * MIB), headers, encode_chunked=True)
        else:
            connection.request("POST", "/mutate", b" " * (9 * MIB), headers)
        response = connection.getresponse()
        answer = response.read()
        assert response.status == 413
        assert answer == b"the body exceeds 8388608 bytes\n"
        if not response.will_close:  # the connection serves the next request
            assert call(connection, "POST /mutate", body=REVIEW)[0] == 200
    finally:
        connection.close()
    client = WellBehavedClient(server)
    client.request()
    client.close()
    assert client.latencies[0] < ANSWERED
    assert server.rss_mib() - rss_before < RSS_GROWTH


BAD_HANDSHAKES = {
    "plain HTTP": b"GET /healthz HTTP/1.1\r\nHost: shm-webhook\r\n\r\n",
    "garbage": bytes(range(256)) * 4,
    "a TLS 1.1 ClientHello": client_hello(b"\x03\x02"),
    "a TLS 1.0 ClientHello": client_hello(b"\x03\x01"),
    "an SSL 3.0 ClientHello": client_hello(b"\x03\x00"),
}


@pytest.mark.parametrize(
    "what",
    [pytest.param(what, id=f"{what} to the TLS port is dropped") for what in BAD_HANDSHAKES],
)
def test_a_bad_handshake_is_dropped_and_the_server_stays_responsive(
    server: ServedWebhook, what: str
) -> None:
    rss_before = server.rss_mib()
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(50)]
    try:
        for sock in socks:
            sock.sendall(BAD_HANDSHAKES[what])
        assert all(closed_by_peers(socks, wait=2))
    finally:
        for sock in socks:
            sock.close()
    client = WellBehavedClient(server)
    for _ in range(10):
        client.request()
    client.close()
    assert client.p90() < PROMPT
    assert server.rss_mib() - rss_before < RSS_GROWTH


def test_half_finished_handshakes_held_open_do_not_stop_the_server(server: ServedWebhook) -> None:
    rss_before = server.rss_mib()
    hello = client_hello(b"\x03\x03")  # TLS 1.2: acceptable, but the client stops halfway
    halves = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(100)]
    silent = []
    try:
        for sock in halves:
            sock.sendall(hello[: len(hello) // 2])
        # A whole ClientHello, then nothing: the server's answer is never read.
        silent = [
            socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(50)
        ]
        for sock in silent:
            sock.sendall(hello)
        client = WellBehavedClient(server)
        for _ in range(20):
            client.request()
        latency = client.fresh_request()
        client.close()
        assert client.p90() < PROMPT
        assert latency < ANSWERED
        assert not any(closed_by_peers(halves))  # uvloop gives a handshake 60 s
    finally:
        for sock in [*halves, *silent]:
            sock.close()
    assert server.rss_mib() - rss_before < RSS_GROWTH


def test_headers_past_the_size_limit_get_a_431(server: ServedWebhook) -> None:
    sock = server.tls_socket(timeout=5)
    try:
        sock.sendall(b"POST /mutate HTTP/1.1\r\nHost: shm-webhook\r\n")
        sock.sendall(b"X-Padding: " + b"x" * MAX_HEADER_BYTES + b"\r\n")
        answer, closed = first_answer(sock, wait=5)
    finally:
        sock.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert rest.endswith(b"\r\n\r\nthe request headers exceed %d bytes\n" % MAX_HEADER_BYTES)
    assert closed
    assert server.get("/healthz") == (200, b"ok")


def test_headers_within_the_size_limit_are_served(server: ServedWebhook) -> None:
    connection = server.connection()
    try:
        connection.putrequest("POST", "/mutate?timeout=3s")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(len(REVIEW)))
        connection.putheader("X-Padding", "x" * (MAX_HEADER_BYTES - 1024))
        connection.endheaders(REVIEW)
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_headers_past_a_size_limit_are_refused_before_they_fill_memory(
    fresh_server: ServedWebhook,
) -> None:
    peak_before = memory_kib(fresh_server.process.pid)["VmHWM"] / 1024
    sock = fresh_server.tls_socket(timeout=30)
    try:
        sock.sendall(b"POST /mutate HTTP/1.1\r\nHost: shm-webhook\r\n")
        line = b"X: 0\r\n"
        for _ in range(8):
            if not send_quietly(sock, line * (MIB // len(line))):
                break
        send_quietly(sock, b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            http.client.HTTPResponse(sock).begin()  # type: ignore[arg-type]
    finally:
        sock.close()
    assert fresh_server.get("/healthz") == (200, b"ok")
    peak_after = memory_kib(fresh_server.process.pid)["VmHWM"] / 1024
    assert peak_after - peak_before < RSS_GROWTH


def chart_memory_limit_mib() -> float:
    values = yaml.safe_load((REPO / "charts" / "shm-webhook" / "values.yaml").read_text())
    return to_bytes(parse(values["resources"]["limits"]["memory"])) / MIB


HEAD = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","x":['


def _review_of(items: bytes, count: int) -> bytes:
    return HEAD + b",".join([items] * count) + b"]}}"


def test_a_body_of_millions_of_tiny_json_items_is_a_413_before_it_is_parsed(
    fresh_server: ServedWebhook,
) -> None:
    limit = load_settings().max_body_bytes
    body = _review_of(b"{}", (limit - len(HEAD) - 3) // 3)  # ~2.8 million objects
    assert len(body) <= limit
    connection = fresh_server.connection(timeout=60)
    try:
        status, answer = call(connection, "POST /mutate", body=body)
    finally:
        connection.close()
    assert (status, answer) == (
        413,
        b"the body holds more than %d JSON values and keys;" % MAX_JSON_ITEMS
        + b" a pod's AdmissionReview holds far fewer\n",
    )
    assert memory_kib(fresh_server.process.pid)["VmHWM"] / 1024 < chart_memory_limit_mib()


def test_the_costliest_body_below_the_value_bound_keeps_the_server_under_its_memory_limit(
    fresh_server: ServedWebhook,
) -> None:
    # Two-letter strings cost the most memory per item measured (docs/reliability.md): ~36 MiB.
    body = _review_of(b'"ab"', MAX_JSON_ITEMS - 30)
    connection = fresh_server.connection(timeout=60)
    try:
        status, _ = call(connection, "POST /mutate", body=body)
    finally:
        connection.close()
    assert status == 200
    assert memory_kib(fresh_server.process.pid)["VmHWM"] / 1024 < chart_memory_limit_mib()
