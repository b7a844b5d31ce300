"""`shm-webhook serve` as the kube-apiserver meets it in the e2e tier, and its admission log.

Owns: starting the real CLI (`python -m webhook serve`) on a free 127.0.0.1 port from
certificate files, waiting for `/readyz` over TLS verified against the CA (so the serving
certificate really names what the apiserver will dial), reading the JSON admission lines it
writes on stderr, and stopping it with SIGTERM within bounded time.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.e2e.controlplane import free_port

READY_TIMEOUT_S = 30
# SIGTERM: unready, answer for --shutdown-grace, finish in-flight requests, exit 0.
STOP_TIMEOUT_S = 30
LOG_TIMEOUT_S = 5


def generate_certs(out: Path, *, service: str, namespace: str, extra_names: Sequence[str]) -> Path:
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


def cli() -> list[str]:
    return [sys.executable, "-m", "webhook"]


class ServedWebhook:
    """A running `shm-webhook serve`, dialled as https://127.0.0.1:<port> or by `server_name`."""

    def __init__(
        self,
        *,
        cert_file: Path,
        key_file: Path,
        ca_file: Path,
        log: Path,
        server_name: str,
        port: int | None = None,
        settings: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        self.url = f"https://127.0.0.1:{self.port}/mutate"
        self.ca_file = ca_file
        self.log = log
        self.server_name = server_name
        argv = [
            *cli(),
            "serve",
            *("--host", "127.0.0.1", "--port", str(self.port), "--metrics-port", "0"),
            *("--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file)),
            *("--shutdown-grace", "0"),
            *settings,
        ]
        started = time.monotonic()
        with log.open("wb") as out:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "SHM_WEBHOOK_LOG_LEVEL": "info"},
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - started

    def rss_bytes(self) -> int:
        """The server process's resident memory (VmRSS)."""
        for line in Path(f"/proc/{self._process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            code = self._process.poll()
            if code is not None:
                raise RuntimeError(f"shm-webhook serve exited with {code}: {self._tail()}")
            try:
                if self._readyz() == 200:
                    return
            except ConnectionError:  # not listening yet; a TLS error is a real failure
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"shm-webhook serve not ready in {READY_TIMEOUT_S}s")
            time.sleep(0.1)

    def _readyz(self) -> int:
        """GET /readyz, verifying the certificate for `server_name` as the apiserver does."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        connection.sock = context.wrap_socket(raw, server_hostname=self.server_name)
        try:
            connection.request("GET", "/readyz")
            return connection.getresponse().status
        finally:
            connection.close()

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def admissions(self) -> list[dict[str, Any]]:
        """Every admission log line so far (one JSON object per admission, docs/metrics.md)."""
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
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
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT_S)
