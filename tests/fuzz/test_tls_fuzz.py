"""Fuzzing `POST /mutate` over real TLS against a `shm-webhook serve` process on 127.0.0.1:
the in-process fuzzers' bodies (tests/fuzz/strategies.py), sent with a Content-Length or
chunked, one after the other over a keep-alive connection, as the kube-apiserver would send
them. Same oracle as in-process (tests/fuzz/oracle.py); what this layer adds is the server:
uvicorn's framing and body handling, TLS, and a process that must stay up throughout.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.oracle import check_answer, check_patch
from tests.fuzz.strategies import Body, chunked, corrupted_bodies, encode, mangled_bodies
from tests.fuzz.strategies import valid_reviews as reviews
from tests.serving import Connection, ServedWebhook, serving, write_certificates

pytestmark = [pytest.mark.fuzz, pytest.mark.integration]
# The current profile ("ci" or "fuzz"), minus the health check that huge and deeply nested
# bodies exist to trip: they are slow to generate on purpose.
SLOW_DATA_IS_THE_POINT = settings(suppress_health_check=[HealthCheck.too_slow])

LIMIT = 256 * 1024  # small, so that bodies over the limit are cheap to send
TIMEOUT = 10.0  # seconds allowed for each exchange
# The server closes a connection idle for 5 s (uvicorn's keep-alive timeout); a request sent
# as it does so is lost in the race. Clients reopen sooner: hypothesis may pause that long.
REUSE_IDLE = 4.0


class Client:
    """One keep-alive HTTPS connection to the server, reopened when the server closes it."""

    def __init__(self, server: ServedWebhook) -> None:
        self.server = server
        self.connection: Connection | None = None
        self.last_answer = 0.0

    def post(self, body: bytes, *, chunks: list[bytes] | None) -> tuple[int, str, bytes]:
        if time.monotonic() - self.last_answer > REUSE_IDLE:
            self.close()
        if self.connection is None:
            self.connection = self.server.connection(timeout=TIMEOUT)
        connection = self.connection
        headers = {"content-type": "application/json"}
        try:
            if chunks is None:
                connection.request("POST", "/mutate?timeout=3s", body=body, headers=headers)
            else:
                connection.request(
                    "POST", "/mutate?timeout=3s", body=iter(chunks), headers=headers,
                    encode_chunked=True,
                )  # fmt: skip
            response = connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        self.last_answer = time.monotonic()
        if response.will_close:
            self.close()
        return response.status, response.getheader("content-type", ""), answer

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    directory = tmp_path_factory.mktemp("tls-fuzz")
    certificates = write_certificates(directory / "tls")
    args = ("--max-body-bytes", str(LIMIT), "--log-level", "error")
    with serving(certificates, directory / "stderr.log", *args) as server:
        client = Client(server)
        yield client
        client.close()


BODIES = st.one_of(reviews().map(encode), corrupted_bodies(), mangled_bodies())
CUTS = st.none() | st.lists(st.integers(0, 2**20), min_size=1, max_size=5)


@SLOW_DATA_IS_THE_POINT
@given(body=BODIES, cuts=CUTS)
def test_over_tls_any_body_gets_a_4xx_or_a_well_formed_answer(
    client: Client, body: Body, cuts: list[int] | None
) -> None:
    chunks = None if cuts is None else chunked(body.data, cuts)
    status, content_type, answer = client.post(body.data, chunks=chunks)
    ops = check_answer(status=status, content_type=content_type, body=answer, sent=body.data)
    if ops:
        check_patch(body.data, ops)
    if len(body.data) > LIMIT:
        assert status == 413
    assert client.server.process.poll() is None, client.server.log_text()
