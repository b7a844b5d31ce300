"""Stand-ins for the webhook's pods and for time, for the tests of `certs bootstrap` forgetting
and distrusting CAs.

`Pod`: a TLS server on 127.0.0.1 serving the `tls.crt`/`tls.key` it last loaded; `load` swaps
them for new connections, as `webhook.tls` does when its files change. `FakeTime`: a
`certs.retry.Clock` whose time moves only when the command sleeps, and which then lets the
`Kubelet` project a changed Secret into the pods once its delay has passed.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from certs.retry import Clock
from tests.certs.fake_apiserver import (
    Endpoint,
    FakeApiServer,
    endpoint_slice,
    secret_path,
    secrets_path,
)
from tests.tlsfixtures import tls_echo_server


class Pod:
    """A TLS server on 127.0.0.1 standing for one webhook pod."""

    def __init__(self, name: str, directory: Path, files: Mapping[str, bytes]) -> None:
        self.name = name
        self.directory = directory
        self.port = 0
        self._serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.cert_pem = b""
        self.load(files)

    def load(self, files: Mapping[str, bytes]) -> None:
        """Serve `files`' tls.crt and tls.key from the next handshake on."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "tls.crt").write_bytes(files["tls.crt"])
        (self.directory / "tls.key").write_bytes(files["tls.key"])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.directory / "tls.crt", self.directory / "tls.key")
        self._serving, self.cert_pem = context, files["tls.crt"]

    def served(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def _pick(self, tls: ssl.SSLObject, _name: str | None, _context: ssl.SSLContext) -> None:
        # The SNI callback may switch the connection to another context, certificate and all.
        tls.context = self._serving

    @contextmanager
    def running(self) -> Iterator[Pod]:
        front = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        front.sni_callback = self._pick  # type: ignore[assignment]
        # A context needs a certificate to be a server at all; the callback replaces it.
        front.load_cert_chain(self.directory / "tls.crt", self.directory / "tls.key")
        with tls_echo_server(front) as port:
            self.port = port
            yield self


@contextmanager
def running_pods(tmp_path: Path, files: Mapping[str, bytes], *, count: int) -> Iterator[list[Pod]]:
    """`count` pods serving `files`, named web-0, web-1, ..."""
    with ExitStack() as stack:
        pods = [Pod(f"web-{i}", tmp_path / f"web-{i}", files) for i in range(count)]
        yield [stack.enter_context(pod.running()) for pod in pods]


def register(
    fake: FakeApiServer, pods: Sequence[Pod], *, namespace: str, service: str, **conditions: bool
) -> None:
    """One EndpointSlice per pod (each listens on its own port) for Service `service`."""
    for pod in pods:
        fake.store(
            endpoint_slice(
                f"{service}-{pod.name}",
                namespace=namespace,
                service_name=service,
                ports={"https": pod.port},
                endpoints=[Endpoint("127.0.0.1", pod=pod.name, **conditions)],
            )
        )


class FakeTime:
    """Wall and monotonic time that move only when slept; `on_sleep` runs after each sleep."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.elapsed = 0.0
        self.on_sleep: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def monotonic(self) -> float:
        return self.elapsed

    def sleep(self, seconds: float) -> None:
        self.elapsed += seconds
        for action in self.on_sleep:
            action()

    def advance(self, span: timedelta) -> None:
        self.sleep(span.total_seconds())

    @property
    def clock(self) -> Clock:
        return Clock(now=self.now, monotonic=self.monotonic, sleep=self.sleep)


class Kubelet:
    """Projects the Secret into `pods` `delay` after each write of it (None: never), as the
    kubelet's periodic sync does; `stuck` pods never reload (a broken file watch)."""

    def __init__(
        self,
        fake: FakeApiServer,
        time: FakeTime,
        pods: Sequence[Pod],
        *,
        namespace: str,
        name: str,
        delay: timedelta | None,
        stuck: Sequence[Pod] = (),
    ) -> None:
        self.fake, self.time, self.pods, self.stuck = fake, time, pods, stuck
        self.path = secret_path(namespace, name)
        self.delay = delay
        self.written_at: float | None = None
        for method, path in (("PUT", self.path), ("POST", secrets_path(namespace))):
            fake.before(method, path, self._written, times=None)
        time.on_sleep.append(self.sync)

    def _written(self) -> None:
        self.written_at = self.time.elapsed

    def sync(self) -> None:
        if self.delay is None or self.written_at is None:
            return
        if self.time.elapsed < self.written_at + self.delay.total_seconds():
            return
        secret = self.fake.get(self.path)
        assert secret is not None
        files = {key: base64.b64decode(value) for key, value in secret["data"].items()}
        for pod in self.pods:
            if pod not in self.stuck:
                pod.load(files)
