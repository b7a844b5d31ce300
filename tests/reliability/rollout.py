"""Rolling restarts of `shm-webhook serve` behind a real kube-apiserver, counting the pod
creations that fail. Not part of the test suite (minutes, and it needs the e2e tier's
binaries); run it as a script:

    KUBEBUILDER_ASSETS=/path/to/etcd-kube-apiserver-kubectl \\
        nice -n 10 .venv/bin/python -m tests.reliability.rollout --restarts 20

etcd and a kube-apiserver start as in tests/e2e (`ControlPlane`), with a
MutatingWebhookConfiguration (failurePolicy Fail, timeoutSeconds 3) whose URL is a TCP
forwarder on 127.0.0.1. The forwarder stands for a Service and kube-proxy: it sends each new
connection to one of the replicas of the moment, round-robin, and pins it there. Eight threads
create pods (dryRun=All) through the kube-apiserver, so the kube-apiserver's own webhook client,
connection pool and retries are the ones measured. A restart: SIGTERM to the oldest replica, the
forwarder drops it 1 s later (the endpoint change), it exits, a new replica starts and joins.

`--quiet` stops the load from 1 s before each SIGTERM until the replica has exited: the
kube-apiserver's connections to it sit idle until its idle timer closes them.

Prints one line a restart (exit code, seconds from SIGTERM to exit) and a JSON summary with
the errors of the failed admissions; exit code 1 if any failed. docs/reliability.md,
"Shutdown", has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import signal
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from tests.e2e import cluster
from tests.e2e.cluster import Kubectl
from tests.e2e.controlplane import ControlPlane, find_assets
from tests.processes import free_port
from tests.serving import ServedWebhook, generate_certs

NAMESPACE = "rollout"
SENDERS = 8
PROPAGATION = 1.0  # from SIGTERM until the forwarder stops sending new connections there


class Forwarder:
    """TCP on 127.0.0.1:`port` to the replicas in `targets`, chosen per connection."""

    def __init__(self) -> None:
        self.targets: list[int] = []
        self.connections = 0
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        started = asyncio.start_server(self._forward, "127.0.0.1", self.port)
        asyncio.run_coroutine_threadsafe(started, self._loop).result()

    def route(self, targets: list[int]) -> None:
        """New connections go to these replicas from now on (one assignment: no lock)."""
        self.targets = targets

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        targets = self.targets
        target = targets[self.connections % len(targets)]
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.transport.abort()  # a refused connection, as kube-proxy passes it on
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        writer.close()
        upstream_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Bytes one way until EOF, then the EOF itself, so that a close crosses as a close."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass  # a reset: passed on as an EOF
    finally:
        with contextlib.suppress(OSError):
            writer.write_eof()


class Load:
    """`SENDERS` threads creating pods back to back, each over its own keep-alive connection,
    while `sending` is set; every answer recorded as (time, status, error text)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.results: list[tuple[float, int, str]] = []
        self.sending = threading.Event()
        self.sending.set()
        self._stop = threading.Event()
        manifest = cluster.pod("p-", namespace=NAMESPACE, annotations={"shm-size": "64Mi"})
        self._body = json.dumps(manifest).encode()
        self._context = ssl.create_default_context(cafile=str(plane.ca_file))
        self._threads = [threading.Thread(target=self._send) for _ in range(SENDERS)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.sending.set()
        for thread in self._threads:
            thread.join()

    def webhook_failures(self) -> list[tuple[float, int, str]]:
        """Admissions the webhook call failed: not the load's own connection errors."""
        return [r for r in self.results if r[1] != 201 and "failed calling webhook" in r[2]]

    def _send(self) -> None:
        path = f"/api/v1/namespaces/{NAMESPACE}/pods?dryRun=All"
        headers = {
            "Authorization": f"Bearer {self.plane.token}",
            "Content-Type": "application/json",
        }
        connection = self._connection()
        try:
            while not self._stop.is_set():
                if not self.sending.wait(0.05):
                    continue
                sent = time.monotonic()
                try:
                    connection.request("POST", path, self._body, headers)
                    response = connection.getresponse()
                    text = response.read().decode()
                    status = response.status
                except (OSError, http.client.HTTPException) as error:
                    connection.close()
                    connection = self._connection()
                    status, text = -1, repr(error)
                self.results.append((sent, status, "" if status == 201 else text))
        finally:
            connection.close()

    def _connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1", self.plane.port, context=self._context, timeout=30
        )


def replica(certs: Path, log: Path, grace: float) -> ServedWebhook:
    return ServedWebhook(
        certificates=certs,
        log=log,
        server_name="127.0.0.1",
        settings=("--shutdown-grace", f"{grace:g}"),
    )


def run(assets: Path, work: Path, *, restarts: int, quiet: bool, grace: float) -> int:
    (work / "control-plane").mkdir()
    (work / "kubectl-cache").mkdir()
    plane = ControlPlane(assets, work / "control-plane")
    plane.start()
    replicas: list[ServedWebhook] = []
    try:
        kube = Kubectl(assets / "kubectl", plane.kubeconfig, work / "kubectl-cache")
        certs = generate_certs(
            work / "certs", service="shm-webhook", namespace="shm-system", extra_names=["127.0.0.1"]
        )
        replicas = [replica(certs, work / f"replica-{n}.log", grace) for n in range(2)]
        forwarder = Forwarder()
        forwarder.route([served.port for served in replicas])
        selector = {"matchLabels": {"shm-injection": "enabled"}}
        kube.apply(cluster.namespace(NAMESPACE, selector["matchLabels"]))
        client_config = cluster.url_client_config(
            f"https://127.0.0.1:{forwarder.port}/mutate", certs / "ca.crt"
        )
        kube.apply(
            cluster.webhook_configuration(
                "rollout", client_config=client_config, namespace_selector=selector
            )
        )
        probe = cluster.pod("probe-", namespace=NAMESPACE, annotations={"shm-size": "1Mi"})
        cluster.wait_until_webhook_serves(kube, probe)
        load = Load(plane)
        exits = []
        for restart in range(restarts):
            time.sleep(3)
            if quiet:
                load.sending.clear()
                time.sleep(1)
            old, staying = replicas[0], replicas[1]
            signalled = time.monotonic()
            old.process.send_signal(signal.SIGTERM)
            drop = threading.Timer(PROPAGATION, forwarder.route, args=([staying.port],))
            drop.start()
            while old.process.poll() is None:
                time.sleep(0.1)
            exited = time.monotonic() - signalled
            drop.join()
            load.sending.set()
            exits.append(round(exited, 2))
            failed = len(load.webhook_failures())
            print(f"restart {restart}: exit {old.process.returncode} after {exited:.2f}s;"
                  f" failed admissions so far {failed}", flush=True)  # fmt: skip
            fresh = replica(certs, work / f"replica-{restart + 2}.log", grace)
            replicas = [staying, fresh]
            forwarder.route([staying.port, fresh.port])
        time.sleep(2)
        load.stop()
        failures = load.webhook_failures()
        summary = {
            "restarts": restarts,
            "quiet": quiet,
            "grace": grace,
            "admissions": len(load.results),
            "failed_admissions": len(failures),
            "errors": Counter(_error(text) for _, _, text in failures),
            "seconds_from_sigterm_to_exit": exits,
            "connections_forwarded": forwarder.connections,
            "load_connection_errors": sum(1 for r in load.results if r[1] == -1),
        }
        print(json.dumps(summary, indent=1))
        return 1 if failures else 0
    finally:
        for served in replicas:
            served.stop()
        plane.stop()


def _error(text: str) -> str:
    """The webhook call's error, as the kube-apiserver words it."""
    try:
        message = str(json.loads(text).get("message", text))
    except ValueError:
        message = text
    return message.rsplit('": ', 1)[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--quiet", action="store_true", help="idle connections at SIGTERM")
    parser.add_argument("--grace", type=float, default=5.0, help="--shutdown-grace")
    args = parser.parse_args(argv)
    assets = find_assets(os.environ)
    if assets is None:
        parser.error("KUBEBUILDER_ASSETS must name a directory with etcd, kube-apiserver, kubectl")
    with tempfile.TemporaryDirectory(prefix="shm-rollout-") as work:
        return run(assets, Path(work), restarts=args.restarts, quiet=args.quiet, grace=args.grace)


if __name__ == "__main__":
    sys.exit(main())
