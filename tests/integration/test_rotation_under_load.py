"""A certificate rotation under load, as a cluster sees one.

`shm-webhook serve` runs as a subprocess reading its certificate from a directory laid out like
a Secret volume (`tls.crt -> ..data/tls.crt`, `..data -> ..<timestamp>`). Client threads send
a real AdmissionReview (../shared/fixtures/real/, given a `shm-size` annotation) back to back
the way the kube-apiserver does during a rotation: trusting the old and the new CA, checking
the name `shm-webhook.<namespace>.svc`. Some open a new TLS connection per request, some keep
one connection alive throughout. The volume is then swapped twice as the kubelet does (a new
payload directory, one rename of `..data`, the old directory removed): a renewal from the same
CA, then a certificate from a new CA.

Asserts: no request fails; after each swap, new connections get the new certificate within a
few seconds (the server polls its files every second) and every connection opened after that
gets it too; the kept-alive connections carry on across both swaps on their first TLS session.
The figures are printed (`pytest -s`).
"""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from certs.files import CA_CERT_FILE, CERT_FILE, KEY_FILE
from certs.generate import dns_names, generate_bundle, issue_serving_cert
from tests import serving
from tests.serving import ServedWebhook
from tests.tlsfixtures import peer_serial, project_secret, serial

pytestmark = pytest.mark.integration

SERVICE, NAMESPACE = "shm-webhook", "shm-system"
SERVER_NAME = f"{SERVICE}.{NAMESPACE}.svc"
REVIEW_FIXTURE = "kwctl-unprivileged-pod-admission-review.json"
FRESH_CLIENTS, KEPT_ALIVE_CLIENTS = 3, 2
LOAD_BETWEEN_SWAPS = 1.0  # seconds of load before, between and after the swaps
PICK_UP_LIMIT = 5.0  # the server polls its files every second


@dataclass(frozen=True)
class Answer:
    """One request as a client saw it."""

    connected_at: float  # when its connection was opened (monotonic)
    answered_at: float
    serial: int
    error: str | None


@dataclass(kw_only=True)
class Client:
    """A thread sending reviews back to back, on one kept-alive connection or a new one each."""

    port: int
    context: ssl.SSLContext
    body: bytes
    uid: str
    keep_alive: bool
    stop: threading.Event
    answers: list[Answer] = field(default_factory=list)
    connections: int = 0

    def run(self) -> None:
        connection: Connection | None = None
        while not self.stop.is_set():
            if connection is None:
                connection = Connection(self.port, context=self.context)
                self.connections += 1
            self.answers.append(self._send(connection))
            if not self.keep_alive or self.answers[-1].error is not None:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    def _send(self, connection: Connection) -> Answer:
        serial_number = 0
        try:
            connection.connect_once()
            serial_number = peer_serial(connection.tls)
            connection.request("POST", "/mutate?timeout=3s", self.body, _JSON)
            response = connection.getresponse()
            error = _problem(response.status, response.read(), uid=self.uid)
        except (OSError, http.client.HTTPException) as exception:
            error = repr(exception)
        return Answer(connection.connected_at, time.monotonic(), serial_number, error)


_JSON = {"Content-Type": "application/json"}


class Connection(serving.Connection):
    """HTTPS to 127.0.0.1 verified for SERVER_NAME, as the kube-apiserver connects; with the
    time it connected."""

    def __init__(self, port: int, *, context: ssl.SSLContext) -> None:
        super().__init__(port, context=context, server_name=SERVER_NAME)
        self.connected_at = 0.0

    def connect(self) -> None:
        self.connected_at = time.monotonic()
        super().connect()

    def connect_once(self) -> None:
        if self.sock is None:
            self.connect()

    @property
    def tls(self) -> ssl.SSLSocket:
        assert isinstance(self.sock, ssl.SSLSocket)
        return self.sock


def _problem(status: int, body: bytes, *, uid: str) -> str | None:
    """None for an answer the kube-apiserver would accept as a mutation, else what is wrong."""
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}"
    response = json.loads(body).get("response") or {}
    if response.get("uid") != uid or response.get("allowed") is not True:
        return f"unexpected review response {response!r:.200}"
    if response.get("patchType") != "JSONPatch":
        return f"no patch in {response!r:.200}"
    return None


@dataclass(frozen=True)
class Payloads:
    """Three Secret payloads: the first, a renewal from the same CA, one from a new CA."""

    first: dict[str, bytes]
    renewed: dict[str, bytes]
    new_ca: dict[str, bytes]

    def trust_bundle(self) -> bytes:
        """Old and new CA, as the caBundle holds them during a rotation."""
        return self.first[CA_CERT_FILE] + self.new_ca[CA_CERT_FILE]


def _payloads() -> Payloads:
    now = datetime.now(UTC)
    first = generate_bundle(service=SERVICE, namespace=NAMESPACE, now=now)
    cert_pem, key_pem = issue_serving_cert(
        ca_cert_pem=first.ca_cert_pem,
        ca_key_pem=first.ca_key_pem,
        dns_names=dns_names(service=SERVICE, namespace=NAMESPACE),
        now=now,
    )
    second = generate_bundle(service=SERVICE, namespace=NAMESPACE, now=now)
    return Payloads(
        first={CA_CERT_FILE: first.ca_cert_pem, CERT_FILE: first.cert_pem, KEY_FILE: first.key_pem},
        renewed={CA_CERT_FILE: first.ca_cert_pem, CERT_FILE: cert_pem, KEY_FILE: key_pem},
        new_ca={
            CA_CERT_FILE: second.ca_cert_pem,
            CERT_FILE: second.cert_pem,
            KEY_FILE: second.key_pem,
        },
    )


class Volume:
    """A Secret volume the test updates the way the kubelet's atomic writer does."""

    def __init__(self, mount: Path, files: Mapping[str, bytes]) -> None:
        self.mount = mount
        self.version = self._project(files)

    def swap(self, files: Mapping[str, bytes]) -> None:
        previous, self.version = self.version, self._project(files)
        # The kubelet removes the old payload right after the swap: nothing may still read it.
        shutil.rmtree(self.mount / f"..{previous}")

    def _project(self, files: Mapping[str, bytes]) -> str:
        version = datetime.now(UTC).strftime("%Y_%m_%d_%H_%M_%S.%f")
        project_secret(self.mount, files, version=version)
        return version


@pytest.fixture
def review(shared_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (shared_dir / "fixtures" / "real" / REVIEW_FIXTURE).read_text()
    )
    document["request"]["object"]["metadata"].setdefault("annotations", {})["shm-size"] = "256Mi"
    return document


@pytest.fixture
def payloads() -> Payloads:
    return _payloads()


@pytest.fixture
def volume(tmp_path: Path, payloads: Payloads) -> Volume:
    return Volume(tmp_path / "tls", payloads.first)


@pytest.fixture
def trust(payloads: Payloads) -> ssl.SSLContext:
    """The kube-apiserver's side during a rotation: the old and the new CA."""
    return ssl.create_default_context(cadata=payloads.trust_bundle().decode())


@pytest.fixture
def port(volume: Volume, trust: ssl.SSLContext, tmp_path: Path) -> Iterator[int]:
    """`shm-webhook serve` on the volume's files; its port once it is ready."""
    with ServedWebhook(
        cert_file=volume.mount / CERT_FILE,
        key_file=volume.mount / KEY_FILE,
        context=trust,
        server_name=SERVER_NAME,
        log=tmp_path / "serve.log",
        settings=("--log-level", "warning"),
    ) as served:
        yield served.port


def _served_serial(port: int, context: ssl.SSLContext) -> int:
    connection = Connection(port, context=context)
    try:
        connection.connect()
        return peer_serial(connection.tls)
    finally:
        connection.close()


@dataclass(frozen=True)
class Swap:
    """One swap of the volume and when new connections got its certificate."""

    label: str
    serial: int
    swapped_at: float
    served_at: float

    @property
    def pick_up(self) -> float:
        return self.served_at - self.swapped_at


def _swap(
    volume: Volume, files: Mapping[str, bytes], *, label: str, port: int, context: ssl.SSLContext
) -> Swap:
    """Swap the volume to `files`, then open connections until one gets their certificate."""
    wanted = serial(files[CERT_FILE])
    swapped_at = time.monotonic()
    volume.swap(files)
    while (now := time.monotonic()) - swapped_at < PICK_UP_LIMIT:
        if _served_serial(port, context) == wanted:
            return Swap(label, wanted, swapped_at, now)
        time.sleep(0.02)
    pytest.fail(f"{label}: certificate {wanted:x} not served {PICK_UP_LIMIT}s after the swap")


def _under_load(
    clients: list[Client], *, stop: threading.Event, swaps: Iterator[Swap]
) -> tuple[list[Swap], float]:
    """Run the clients through the swaps; (the swaps, seconds of load)."""
    threads = [threading.Thread(target=client.run) for client in clients]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        done = list(swaps)
        time.sleep(LOAD_BETWEEN_SWAPS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    return done, time.monotonic() - started


def test_rotating_the_certificate_twice_under_load_fails_no_request(
    port: int, volume: Volume, payloads: Payloads, trust: ssl.SSLContext, review: dict[str, Any]
) -> None:
    stop = threading.Event()
    body, uid = json.dumps(review).encode(), review["request"]["uid"]
    clients = [
        Client(port=port, context=trust, body=body, uid=uid, keep_alive=kept, stop=stop)
        for kept in [True] * KEPT_ALIVE_CLIENTS + [False] * FRESH_CLIENTS
    ]

    def swaps() -> Iterator[Swap]:
        for label, files in (("renewal, same CA", payloads.renewed), ("new CA", payloads.new_ca)):
            time.sleep(LOAD_BETWEEN_SWAPS)
            yield _swap(volume, files, label=label, port=port, context=trust)

    done, elapsed = _under_load(clients, stop=stop, swaps=swaps())

    answers = [answer for client in clients for answer in client.answers]
    failures = [answer.error for answer in answers if answer.error is not None]
    _print_figures(clients, done, requests=len(answers), failures=len(failures), elapsed=elapsed)
    assert failures == [], failures[:5]
    fresh = [a for client in clients if not client.keep_alive for a in client.answers]
    ends = [swap.swapped_at for swap in done[1:]] + [float("inf")]
    for swap, end in zip(done, ends, strict=True):
        after = [a.serial for a in fresh if swap.served_at < a.connected_at and a.answered_at < end]
        assert after, f"{swap.label}: no connection opened while its certificate was served"
        assert set(after) == {swap.serial}, f"{swap.label}: an older certificate was served"
    first = serial(payloads.first[CERT_FILE])
    for client in clients[:KEPT_ALIVE_CLIENTS]:
        assert client.connections == 1
        assert {answer.serial for answer in client.answers} == {first}
        assert any(answer.answered_at > done[-1].served_at for answer in client.answers)


def _print_figures(
    clients: list[Client], swaps: list[Swap], *, requests: int, failures: int, elapsed: float
) -> None:
    kept_alive = [client for client in clients if client.keep_alive]
    rate = requests / elapsed
    print(
        f"\nrotation under load: {requests} requests in {elapsed:.1f}s ({rate:.0f}/s), "
        f"{failures} failed; {len(clients) - len(kept_alive)} clients opening a connection per "
        f"request, {len(kept_alive)} on one kept-alive connection each"
    )
    for swap in swaps:
        print(f"  {swap.label}: served to new connections {swap.pick_up:.3f}s after the swap")
    for client in kept_alive:
        print(f"  kept-alive: {len(client.answers)} requests on {client.connections} connection")
