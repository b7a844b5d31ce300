"""Running the webhook: `serve(settings) -> exit code` (docs/commands.md#serve).

Owns: the process around the app: JSON logging, the TLS context and its reload task (a
development certificate when none is given), the namespace cache when asked for, the uvicorn
server, the metrics port, the post-start-up GC freeze
(docs/performance.md#the-garbage-collector-is-frozen-after-start-up) and the SIGTERM drain
(docs/http.md#shutdown, docs/reliability.md#shutdown: unready at once; every response from
then on closes its connection; new connections accepted for `shutdown_grace` seconds and for
as long as clients keep coming; idle connections left for the clients to close; exit 0 once
quiet; a second signal exits at once; no drain with a `shutdown_grace` of 0).
Must not import the Kubernetes client or `yaml`: both would weigh on every replica's memory
(docs/performance.md#memory-is-mostly-imports).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import ssl
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

import orjson
import uvicorn

from webhook import kubeapi, tls
from webhook.app import ADMISSION_LOGGER, ADMISSION_MESSAGE, State, create_app
from webhook.metrics import start_metrics_server
from webhook.namespace_cache import NamespaceCache
from webhook.settings import Settings, SettingsError, label
from webhook.transport import GuardedHttpToolsProtocol, ServerState

logger = logging.getLogger("webhook.server")

# In-flight admissions take milliseconds and the kube-apiserver gives up after timeoutSeconds
# (3 s by default, 30 s at most); a connection still open after this is not worth waiting for.
IN_FLIGHT_TIMEOUT = 10
# The kube-apiserver's webhook client closes a connection it has left idle for 90 s (Go's
# http.Transport.IdleConnTimeout, set by client-go's utilnet.SetTransportDefaults); 5 s more
# for its timer to start after our response and its close to reach us. A connection still
# open this long after the grace is not one it means to use again: the drain ends there.
CLIENT_IDLE_TIMEOUT = 95.0
# After the grace, the drain ends once no connection has been open and no request answered
# for this long: until then endpoints have not reached every client, which still dials us.
QUIET = 1.0


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the `fields` extra of a record is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        entry = _entry(
            created=record.created,
            level=record.levelname,
            name=record.name,
            message=record.getMessage(),
            fields=fields if isinstance(fields, dict) else None,
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class AdmissionLines:
    """The admission log line of `app.AdmissionEndpoint`, written straight to a binary stream.

    The line JsonFormatter makes of a `log_record`, without the record. Through `logging`
    (LogRecord, filters, handler lock, text layer) the line was a fifth of the server's CPU per
    typical admission in the bench (234 µs with it, 186 µs at --log-level warning); written
    here, an admission costs 14 µs less in process (107 -> 93 µs, the reference 71 µs). The
    endpoint still asks the `webhook.admission` logger whether the level is enabled.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def __call__(self, level: int, fields: dict[str, Any]) -> None:
        entry = _entry(
            created=time.time(),
            level=logging.getLevelName(level),
            name=ADMISSION_LOGGER,
            message=ADMISSION_MESSAGE,
            fields=fields,
        )
        try:
            self._stream.write(orjson.dumps(entry, default=str) + b"\n")
            self._stream.flush()
        except OSError:
            pass  # as with `logging` (Handler.handleError), a log that fails fails no admission


def _entry(
    *, created: float, level: str, name: str, message: str, fields: dict[str, Any] | None
) -> dict[str, Any]:
    entry = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level.lower(),
        "logger": name,
        "message": message,
    }
    if fields is not None:
        entry.update(fields)
    return entry


def configure_logging(level: str) -> None:
    # One line per admission is on the hot path: skip collecting what the formatter never
    # prints (caller frame, thread, process), a third of a record's cost (the logging HOWTO's
    # "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class WebhookServer(uvicorn.Server):
    """uvicorn's server with our start-up extras and the SIGTERM drain (docs/http.md)."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        state: State,
        reloader: tls.CertificateReloader,
        grace: float,
    ) -> None:
        super().__init__(config)
        self.shared = ServerState()  # uvicorn's, with the `draining` flag the protocol reads
        self.server_state = self.shared
        self.state = state
        self.reloader = reloader
        self.grace = grace
        self.exit_code = 0
        self._signalled_at: float | None = None
        self._draining_all = False
        self._quiet_since = 0.0
        self._requests_seen = 0
        self._watch: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:  # noqa: ARG002
        # Installed with signal.signal, so this runs between two bytecodes of the main thread:
        # it only flips flags, and on_tick (every 0.1 s) acts on them. Unlike uvicorn's own
        # handler it records no signal to re-raise after shutdown, so the exit code is ours.
        if self._signalled_at is not None or self.should_exit:
            self.should_exit = self.force_exit = True
            self.exit_code = 128 + sig
            return
        self.state.shutting_down = True
        # Read by each request as its headers end, before its response can start: safe here.
        self.shared.draining = True
        self._signalled_at = time.monotonic()
        logger.info(
            "%s received: unready now; closing each connection after its next response,"
            " exiting %gs from now or later, once no client has been connected for %gs",
            signal.Signals(sig).name,
            self.grace,
            QUIET,
        )

    async def on_tick(self, counter: int) -> bool:
        if self._signalled_at is not None and not self.should_exit:
            self._drain(time.monotonic() - self._signalled_at)
        return await super().on_tick(counter)

    def _drain(self, elapsed: float) -> None:
        """One step of the drain, `elapsed` seconds after the signal; sets `should_exit` at its
        end. uvicorn's shutdown then closes the listener and what connections are left."""
        if self.grace <= 0:  # no drain asked for (tests, local runs): idle connections go now
            self.should_exit = True
            return
        state = self.shared
        if not self._draining_all:  # the requests already under way at the signal
            self._draining_all = True
            for connection in state.connections:
                if isinstance(connection, GuardedHttpToolsProtocol):
                    connection.drain()
        if state.connections or state.total_requests != self._requests_seen:
            self._requests_seen = state.total_requests
            self._quiet_since = elapsed
        if elapsed >= self.grace and elapsed - self._quiet_since >= QUIET:
            logger.info(
                "drained: no client for %gs, exiting %.1fs after the signal",
                QUIET,
                elapsed,
            )
            self.should_exit = True
        elif elapsed >= self.grace + CLIENT_IDLE_TIMEOUT:
            logger.warning(
                "drain deadline: closing the %d connections still open, %.1fs after the signal",
                len(state.connections),
                elapsed,
            )
            self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        self._watch = asyncio.create_task(self.reloader.watch())
        # Everything alive now lives as long as the process: keep the collector off it.
        gc.collect()
        gc.freeze()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await super().shutdown(sockets)


class ListenError(Exception):
    """A port cannot be listened on (taken, or not an address of this host): exit code 3, as
    uvicorn's own for the HTTPS port."""


def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; the process exit code."""
    configure_logging(settings.log_level)
    stack = contextlib.ExitStack()
    try:
        cert_file, key_file = _certificate_files(settings, stack)
        state = State()
        if settings.namespace_policy:
            state.namespaces = _namespace_cache(settings, state=state, stack=stack)
        reloader = _reloader(cert_file, key_file, state=state)
        config = uvicorn.Config(
            create_app(settings, state=state, admission_log=AdmissionLines(sys.stderr.buffer)),
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http=GuardedHttpToolsProtocol,  # httptools with read and header limits
            ws="none",
            lifespan="on",
            log_config=None,
            access_log=False,
            proxy_headers=False,  # nothing sits between the kube-apiserver and us
            timeout_graceful_shutdown=IN_FLIGHT_TIMEOUT,
            # The reloader's context, so rotated certificates reach new handshakes.
            ssl_context_factory=lambda _config, _default: reloader.context,
        )
        try:
            metrics_server = start_metrics_server(
                state.metrics.registry, host=settings.host, port=settings.metrics_port
            )
        except OSError as error:
            raise ListenError(
                f"{label('metrics_port')}: cannot listen on {settings.host}:"
                f"{settings.metrics_port}: {error.strerror or error}"
            ) from None
        if metrics_server is not None:
            stack.callback(metrics_server[0].shutdown)
        server = WebhookServer(
            config, state=state, reloader=reloader, grace=settings.shutdown_grace
        )
        server.run()
        return server.exit_code
    finally:
        stack.close()


def _certificate_files(settings: Settings, stack: contextlib.ExitStack) -> tuple[Path, Path]:
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        return Path(settings.tls_cert_file), Path(settings.tls_key_file)
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shm-webhook-dev-")))
    cert, key, ca = tls.development_certificate(directory, now=datetime.now(UTC))
    print(
        f"shm-webhook: no --tls-cert-file given, serving a self-signed development certificate;"
        f" CA at {ca}; try: curl --cacert {ca} https://localhost:{settings.port}/healthz",
        file=sys.stderr,
        flush=True,
    )
    return cert, key


def _namespace_cache(
    settings: Settings, *, state: State, stack: contextlib.ExitStack
) -> NamespaceCache:
    try:
        connection = (
            kubeapi.from_kubeconfig(Path(settings.kubeconfig))
            if settings.kubeconfig is not None
            else kubeapi.in_cluster()
        )
    except (kubeapi.ApiError, OSError, ssl.SSLError) as error:
        raise SettingsError(f"{label('namespace_policy')}: {error}") from None
    cache = NamespaceCache(connection, settings.policy())
    state.metrics.watch_namespaces(age=cache.age, problems=lambda: len(cache.problems()))
    cache.start()
    stack.callback(cache.stop)
    return cache


def _reloader(cert_file: Path, key_file: Path, *, state: State) -> tls.CertificateReloader:
    def loaded(not_after: datetime) -> None:
        state.certificate_loaded = True
        state.metrics.certificate_loaded(not_after)

    try:
        return tls.CertificateReloader(cert_file, key_file, on_loaded=loaded)
    except (tls.TLSConfigError, OSError) as error:
        raise SettingsError(
            f"{label('tls_cert_file')} / {label('tls_key_file')}: {error}"
        ) from None
