"""A real `shm-webhook serve` for tests and the bench: the process on 127.0.0.1, an HTTPS client
that verifies its certificate as the kube-apiserver does, its log, and what Linux says of it.

Owns: `ServedWebhook`, one running `serve` (started with given flags and environment, ready
once `/readyz` answers 200 over verified TLS, its JSON admission lines read back, stopped with
SIGTERM within bounded time); `serving`, that server on the session's throwaway certificate;
`Connection` and `call`, the client; `generate_certs`, certificate files from the real CLI.
The process plumbing (ports, the start-up wait, the stop) is tests/processes.py's.
Importable without pytest.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.procstat import memory_kib
from certs.files import CA_CERT_FILE, CERT_FILE, KEY_FILE, write_bundle
from tests.processes import READY_TIMEOUT_S, free_port, kill, stop, wait_until_ready
from tests.tlsfixtures import SERVER_NAME, client_context, throwaway_bundle

REPO = Path(__file__).resolve().parent.parent
LOG_TIMEOUT_S = 5.0
# Written by `serve` without certificate files (webhook/server.py): where its CA went.
DEVELOPMENT_CA = re.compile(r"CA at (\S+);")


class Connection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1, verifying the certificate for the name the kube-apiserver uses."""

    def __init__(
        self, port: int, *, context: ssl.SSLContext, server_name: str, timeout: float = 5
    ) -> None:
        # Given a context, http.client skips building a default one: 30 ms of CA loading each.
        super().__init__("127.0.0.1", port, timeout=timeout, context=context)
        self.tls_context = context
        self.server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        # As the kube-apiserver (Go) does; without it Nagle and delayed ACKs add 40 ms a request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.server_name)


def call(
    connection: http.client.HTTPConnection, request: str, *, body: bytes | None = None
) -> tuple[int, bytes]:
    """`request` is "METHOD /path"; a body is sent as JSON."""
    method, path = request.split(" ", 1)
    headers = {"content-type": "application/json"} if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def readyz(port: int, *, context: ssl.SSLContext, server_name: str) -> int:
    """The status of GET /readyz on 127.0.0.1:`port`, the certificate verified for
    `server_name` (any server the suite or the bench runs answers it)."""
    connection = Connection(port, context=context, server_name=server_name, timeout=2)
    try:
        return call(connection, "GET /readyz")[0]
    finally:
        connection.close()


def serve_command(flags: Sequence[str]) -> list[str]:
    """`shm-webhook serve` of this checkout, as `python -m webhook` runs it."""
    return [sys.executable, "-m", "webhook", "serve", *flags]


class ServedWebhook:
    """A running `shm-webhook serve` on https://127.0.0.1:<port>, dialled as `server_name`.

    TLS from `cert_file`/`key_file`, trusted through `ca_file` or `context` (`certificates`: a
    directory holding all three, as `certs generate` writes them); without certificate files,
    the development certificate, trusted through the CA it says it wrote, for `localhost`. The
    flags are `--host`, `--port`, `--metrics-port` (a free one with `metrics`, else 0), the
    files, `--shutdown-grace 0` (a stop is quick), then `settings`, which may override any of
    them. Its stderr goes to `log`, at log level info (the admission lines) unless `env` or
    `settings` say otherwise. `command` turns the flags into what to run.
    """

    def __init__(
        self,
        *,
        log: Path,
        certificates: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        ca_file: Path | None = None,
        context: ssl.SSLContext | None = None,
        server_name: str | None = None,
        port: int | None = None,
        metrics: bool = False,
        settings: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        command: Callable[[Sequence[str]], Sequence[str]] = serve_command,
        ready_timeout: float = READY_TIMEOUT_S,
    ) -> None:
        if certificates is not None:
            cert_file, key_file = certificates / CERT_FILE, certificates / KEY_FILE
            ca_file = ca_file or certificates / CA_CERT_FILE
        self.port = port or free_port()
        self.metrics_port = free_port() if metrics else 0
        self.url = f"https://127.0.0.1:{self.port}/mutate"
        self.log = log
        self.server_name = server_name or ("localhost" if cert_file is None else SERVER_NAME)
        if context is None and ca_file is not None:
            context = ssl.create_default_context(cafile=str(ca_file))
        self.context = context
        tls = [] if cert_file is None else ["--tls-cert-file", str(cert_file)]
        tls += [] if key_file is None else ["--tls-key-file", str(key_file)]
        flags = [
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--metrics-port", str(self.metrics_port), *tls, "--shutdown-grace", "0"),
            *settings,
        ]
        started = time.monotonic()
        self.process = self._start(command(flags), env or {})
        try:
            self.wait_ready(timeout=ready_timeout)
        except BaseException:
            self.kill()
            raise
        self.ready_seconds = time.monotonic() - started

    def _start(self, argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "SHM_WEBHOOK_LOG_LEVEL": "info"}
        with self.log.open("wb") as out:
            return subprocess.Popen(
                argv,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # it writes nothing there: the log is its stderr
                stderr=out,
                env={**environment, **env},
                start_new_session=True,  # `make serve` is make, bash and python: one group
            )

    def __enter__(self) -> ServedWebhook:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def connection(self, *, timeout: float = 5) -> Connection:
        assert self.context is not None, "no client context: serve has not said where its CA is"
        return Connection(
            self.port, context=self.context, server_name=self.server_name, timeout=timeout
        )

    def tls_socket(self, *, timeout: float = 5) -> ssl.SSLSocket:
        """A TLS connection with the handshake done and nothing sent."""
        assert self.context is not None
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            return self.context.wrap_socket(sock, server_hostname=self.server_name)
        except BaseException:
            sock.close()
            raise

    def get(self, path: str, *, timeout: float = 5) -> tuple[int, bytes]:
        connection = self.connection(timeout=timeout)
        try:
            return call(connection, f"GET {path}")
        finally:
            connection.close()

    def wait_ready(self, *, timeout: float = READY_TIMEOUT_S) -> None:
        """Until `/readyz` answers 200, verifying the certificate for `server_name` as the
        apiserver does (so it really names what the apiserver will dial)."""
        wait_until_ready(
            self._ready,
            process=self.process,
            output=self.log_text,
            what="shm-webhook serve",
            timeout=timeout,
        )

    def _ready(self) -> bool:
        if self.context is None:  # the development certificate: trust the CA it wrote
            found = DEVELOPMENT_CA.search(self.log_text())
            if found is None:
                return False
            self.context = client_context(Path(found.group(1)).read_bytes())
        return readyz(self.port, context=self.context, server_name=self.server_name) == 200

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def rss_bytes(self) -> int:
        """The server's resident memory now (VmRSS)."""
        return memory_kib(self.process.pid)["VmRSS"] * 1024

    def rss_mib(self) -> float:
        return self.rss_bytes() / 2**20

    def admissions(self) -> list[dict[str, Any]]:
        """Every admission log line so far (one JSON object per admission, docs/metrics.md)."""
        lines = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("message") == "admission":
                    lines.append(entry)
        return lines

    def admission_of(self, *, namespace: str, name: str) -> dict[str, Any]:
        """The one log line of the admission of `namespace/name` (a name or a generateName)."""
        (found,) = self.admissions_of(namespace=namespace, name=name, count=1)
        return found

    def admissions_of(self, *, namespace: str, name: str, count: int) -> list[dict[str, Any]]:
        """The `count` log lines of `namespace/name`, oldest first; fails on more or fewer."""
        deadline = time.monotonic() + LOG_TIMEOUT_S
        while True:
            found = [
                entry
                for entry in self.admissions()
                if entry.get("namespace") == namespace and entry.get("name") == name
            ]
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) == count, f"{namespace}/{name}: {len(found)} admissions logged"
                return found
            time.sleep(0.05)

    def never_saw(self, *, namespace: str, name: str) -> bool:
        return not any(
            entry.get("namespace") == namespace and entry.get("name") == name
            for entry in self.admissions()
        )

    def stop(self) -> None:
        """SIGTERM (unready, answer for --shutdown-grace, finish in-flight requests, exit 0),
        and SIGKILL if it is still running 30 s later."""
        stop(self.process, group=True)

    def kill(self) -> None:
        """SIGKILL: for a test done with a server whose drain it does not want to wait out."""
        kill(self.process, group=True)


def write_certificates(directory: Path) -> Path:
    """The session's throwaway CA and serving certificate as files (ca.crt, tls.crt, tls.key):
    a `certificates` directory."""
    write_bundle(throwaway_bundle(), directory)
    return directory


def serving(certificate_dir: Path, log: Path, *settings: str) -> ServedWebhook:
    """`shm-webhook serve` with the throwaway certificate in `certificate_dir`, a metrics port
    and `settings`, ready; stopped at the end of a `with`."""
    return ServedWebhook(certificates=certificate_dir, log=log, metrics=True, settings=settings)


def cli() -> list[str]:
    return [sys.executable, "-m", "webhook"]


def generate_certs(
    out: Path, *, service: str, namespace: str, extra_names: Sequence[str] = ()
) -> Path:
    """A CA and serving certificate from `shm-webhook certs generate`, in `out`."""
    extras = [argument for name in extra_names for argument in ("--extra-name", name)]
    done = subprocess.run(
        [
            *cli(),
            *("certs", "generate", "--service", service, "--namespace", namespace),
            *("--out", str(out), *extras),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out
