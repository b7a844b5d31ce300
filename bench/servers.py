"""Starting and stopping the servers under test, pinned to their CPU.

Owns: `SPECS` (every server the bench can run, and how) and `SERVERS` (the three of `make
bench`), `make_certificates`, `compile_sources`, `start` (spawn under `taskset`, time start-up
to the first `/readyz` 200), `Server.post` (one checked admission), the webhook's own counts of
what it answered, and `Server.stop`. The port, the start-up wait, the client and the bounded
stop are the test suite's (tests/processes.py, tests/serving.py): the same for every served
process; the CPU pinning is the bench's own.

The three servers of `make bench`, all on the same certificate files, CPU and HTTP/1.1:

- `go`: the independent Go reference (bench/goref, built by bench.golang), GOMAXPROCS=1;
- `floor`: the Python floor (bench/floor.py), the webhook's mutation on bare uvicorn;
- `webhook`: `shm-webhook serve` with every feature of production on: TLS from files, the
  metrics port, JSON logs at level info (to a file).

The other specs are variants that bench/attribution.py measures the cost of a layer with.
"""

from __future__ import annotations

import http.client
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from certs.files import CA_CERT_FILE, CERT_FILE, KEY_FILE, write_bundle
from certs.generate import generate_bundle
from tests.processes import NotReady, free_port, stop, wait_until_ready
from tests.serving import readyz

REPO = Path(__file__).resolve().parent.parent
SERVER_CPU = 1
START_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Spec:
    label: str  # in tables
    program: Literal["go", "floor", "webhook"]
    flags: tuple[str, ...] = ()
    metrics: bool = False  # serves the webhook's metrics (it counts its admissions)
    logs: bool = False  # writes a JSON line per admission (the webhook: at --log-level info)


SPECS = {
    "go": Spec("Go", "go"),
    "floor": Spec("Python floor", "floor"),
    "webhook": Spec("shm-webhook", "webhook", metrics=True, logs=True),
    "go-cached": Spec("Go, cached answer", "go", ("-cached",)),
    "floor-cached": Spec("floor, cached answer", "floor", ("--cached",)),
    "floor-guarded": Spec("floor + transport guards", "floor", ("--guarded",)),
    "webhook-nolog": Spec("webhook, no log line", "webhook", metrics=True),
}
SERVERS = ("go", "floor", "webhook")
# Go's scheduler would run one thread per CPU it may use; the server has one (taskset), as
# the Python servers' single event loop has. Go reads the affinity mask at start-up and would
# pick 1 itself: the variable makes it explicit, and keeps it so under any other pinning.
GO_ENV = {"GOMAXPROCS": "1"}


@dataclass(frozen=True, slots=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)


def make_certificates(directory: Path) -> Certificates:
    """A throwaway CA and a serving certificate for localhost and 127.0.0.1."""
    bundle = generate_bundle(
        service="shm-webhook",
        namespace="default",
        now=datetime.now(UTC),
        extra_names=("localhost", "127.0.0.1"),
    )
    write_bundle(bundle, directory)
    return Certificates(
        ca=directory / CA_CERT_FILE, cert=directory / CERT_FILE, key=directory / KEY_FILE
    )


class BenchError(RuntimeError):
    """The bench cannot go on (a tool is missing, a server did not start or answered wrong)."""


@dataclass
class Server:
    name: str
    spec: Spec
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int | None
    log_file: Path
    ready_s: float = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def post(self, body: bytes, *, context: ssl.SSLContext) -> bytes:
        """POST one AdmissionReview; the answer, which must be a 200 with a patch."""
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=context, timeout=10
        )
        try:
            headers = {"Content-Type": "application/json"}
            connection.request("POST", "/mutate", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
        finally:
            connection.close()
        if response.status != 200 or b'"patch"' not in answer:
            raise BenchError(f"{self.name} answered {response.status}: {answer[:200]!r}")
        return answer

    def admissions_counted(self) -> int | None:
        """The webhook's own count of answered admissions (its metrics), None without metrics."""
        if self.metrics_port is None:
            return None
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        counts = re.findall(r"^shm_webhook_admissions_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
        return round(sum(float(count) for count in counts))

    def logged_admissions(self) -> int | None:
        """JSON log lines of admissions the server wrote so far; None when it writes none."""
        if not self.spec.logs:
            return None
        with self.log_file.open("rb") as log:
            return sum(b'"message":"admission"' in line for line in log)

    def settled_counts(self, *, timeout: float = 2.0) -> tuple[int | None, int | None]:
        """(admissions counted, admissions logged) once they agree: requests wrk left in
        flight when it stopped are still being answered (seen under load: 3 to 16 more
        lines than counts when read one after the other)."""
        deadline = time.monotonic() + timeout
        while True:
            counted, logged = self.admissions_counted(), self.logged_admissions()
            if counted is None or logged is None or counted == logged:
                return counted, logged
            if time.monotonic() > deadline:
                return counted, logged
            time.sleep(0.05)

    def stop(self) -> None:
        stop(self.process, timeout=15)


def compile_sources(*, source: Path | None = None) -> None:
    """Byte-compile the served code (to its __pycache__ directories) as the image's pip install
    does: a server compiling its modules at start-up (PYTHONDONTWRITEBYTECODE, or a fresh
    checkout) would pay for it in start-up time and in resident memory."""
    for root in {source or REPO, REPO}:
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "webhook", "certs", "bench"],
            cwd=root,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def start(
    name: str,
    *,
    certificates: Certificates,
    log_file: Path,
    source: Path | None = None,
    go_binary: Path | None = None,
) -> Server:
    """Start server `name` (of SPECS) on CPU 1 and wait until `/readyz` answers 200."""
    spec = SPECS[name]
    port = free_port()
    metrics_port = free_port() if spec.metrics else None
    cert, key = str(certificates.cert), str(certificates.key)
    if spec.program == "webhook":
        command = [sys.executable, "-m", "webhook", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--metrics-port", str(metrics_port)]
        command += ["--tls-cert-file", cert, "--tls-key-file", key]
        command += ["--log-level", "info" if spec.logs else "warning", "--shutdown-grace", "0"]
    elif spec.program == "floor":
        command = [sys.executable, "-m", "bench.floor", "--port", str(port)]
        command += ["--cert", cert, "--key", key]
    else:
        if go_binary is None:
            raise BenchError(f"{name}: the Go reference was not built (bench.golang.build)")
        command = [str(go_binary), "-port", str(port), "-cert", cert, "-key", key]
    command += spec.flags
    # `source`: serve another checkout's webhook. `python -m` puts the working directory
    # first on sys.path, ahead of PYTHONPATH, so that is where the webhook runs. The floor
    # and Go stay this checkout's: the yardsticks of a before/after comparison do not move.
    cwd = source if source is not None and spec.program == "webhook" else REPO
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        **(GO_ENV if spec.program == "go" else {}),
    }
    context = certificates.client_context()
    with log_file.open("wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            ["taskset", "-c", str(SERVER_CPU), *command],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=log,
        )
    server = Server(name, spec, process, port, metrics_port, log_file)
    try:
        _wait_ready(server, context=context)
    except BaseException:
        server.stop()
        raise
    server.ready_s = time.monotonic() - started
    return server


def _wait_ready(server: Server, *, context: ssl.SSLContext) -> None:
    try:
        wait_until_ready(
            lambda: readyz(server.port, context=context, server_name="127.0.0.1") == 200,
            process=server.process,
            output=lambda: server.log_file.read_text(errors="replace"),
            what=server.name,
            timeout=START_TIMEOUT,
            interval=0.005,  # the start-up time is a figure of the report
            retry=(OSError,),  # not listening yet
        )
    except NotReady as error:
        raise BenchError(str(error)) from None
