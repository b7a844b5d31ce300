"""A throwaway Kubernetes control plane for the e2e tier: etcd and kube-apiserver on 127.0.0.1.

Owns: finding the binaries the way controller-runtime's envtest does (a directory named by
`KUBEBUILDER_ASSETS` holding `etcd`, `kube-apiserver` and `kubectl`), starting etcd and the
kube-apiserver on free loopback ports with everything in one temporary directory, waiting for
`/readyz` (the wait and the stop are tests/processes.py's), writing an admin kubeconfig.

No controller-manager, scheduler or kubelet: objects are stored and admitted, nothing more
(no ReplicaSet makes pods, no pod runs, no namespace finishes deleting). Authentication is a
static token file (an admin in `system:masters`) plus service-account tokens, which the
kube-apiserver issues itself (TokenRequest); authorization is RBAC. The ServiceAccount
admission plugin is off so pods need no service account. Must not import `webhook` or `certs`
(nor tests/serving.py, which does).
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.processes import free_port, stop, wait_until_ready

ASSETS_VARIABLE = "KUBEBUILDER_ASSETS"
BINARIES = ("etcd", "kube-apiserver", "kubectl")
ADMIN = "e2e-admin"
SERVICE_CIDR = "10.0.0.0/24"
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 20


class AssetsError(Exception):
    """KUBEBUILDER_ASSETS is set but does not hold what the tier needs."""


def find_assets(environ: Mapping[str, str]) -> Path | None:
    """The directory of the binaries, None when `KUBEBUILDER_ASSETS` is unset or empty."""
    value = environ.get(ASSETS_VARIABLE, "")
    if not value:
        return None
    directory = Path(value)
    missing = [name for name in BINARIES if not os.access(directory / name, os.X_OK)]
    if missing:
        raise AssetsError(
            f"{ASSETS_VARIABLE}={value} lacks executable {', '.join(missing)}; it must hold "
            f"{', '.join(BINARIES)} (the layout of controller-runtime's envtest)"
        )
    return directory


@dataclass
class Process:
    """A started binary whose output goes to a log file, stopped with SIGTERM then SIGKILL."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, argv: Sequence[str], *, workdir: Path) -> Process:
        log = workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        return cls(name, popen, log)

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"last lines of {self.log}:\n" + "\n".join(text)

    def check_running(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with code {code}; {self.tail()}")

    def stop(self) -> None:
        stop(self.popen, timeout=STOP_TIMEOUT_S)


class ControlPlane:
    """etcd plus kube-apiserver in `workdir`; `start()`, then `kubeconfig`, then `stop()`."""

    def __init__(self, assets: Path, workdir: Path) -> None:
        self.assets = assets
        self.workdir = workdir
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)
        self.ca_file = workdir / "apiserver-certs" / "apiserver.crt"
        self.kubeconfig = workdir / "kubeconfig"
        self._processes: list[Process] = []

    def start(self) -> None:
        try:
            self._etcd_url = self._start_etcd()
            self._start_apiserver(self._etcd_url)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.write_kubeconfig(self.kubeconfig, user=ADMIN, token=self.token)

    def restart_apiserver(self) -> None:
        """Stop the kube-apiserver and start it again on the same port and etcd (clients see
        their connections and watches broken, then the same server back)."""
        (apiserver,) = [p for p in self._processes if p.name == "kube-apiserver"]
        apiserver.stop()
        self._processes.remove(apiserver)
        self._start_apiserver(self._etcd_url)
        self._wait_ready()

    def stop(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()

    def write_kubeconfig(self, path: Path, *, user: str, token: str) -> Path:
        """A kubeconfig for `user` authenticating with a bearer `token` (JSON is valid YAML)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "e2e",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": user, "context": {"cluster": "e2e", "user": user}}],
            "current-context": user,
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def _start_etcd(self) -> str:
        client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
        argv = [
            str(self.assets / "etcd"),
            "--name=e2e",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=e2e={peer}",
        ]
        self._processes.append(Process.start("etcd", argv, workdir=self.workdir))
        return client

    def _start_apiserver(self, etcd_url: str) -> None:
        key_file = self.workdir / "service-account.key"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.token},{ADMIN},{ADMIN},"system:masters"\n')
        argv = [
            str(self.assets / "kube-apiserver"),
            "--advertise-address=127.0.0.1",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={self.ca_file.parent}",
            f"--etcd-servers={etcd_url}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={key_file}",
            f"--service-account-signing-key-file={key_file}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            # The `kubernetes` Service's endpoints would be 127.0.0.1, which Endpoints reject.
            "--endpoint-reconciler-type=none",
        ]
        self._processes.append(Process.start("kube-apiserver", argv, workdir=self.workdir))

    def _wait_ready(self) -> None:
        (apiserver,) = [p for p in self._processes if p.name == "kube-apiserver"]

        def ready() -> bool:
            for process in self._processes:
                process.check_running()
            return self._readyz()

        wait_until_ready(
            ready,
            process=apiserver.popen,
            output=lambda: "\n".join(process.tail() for process in self._processes),
            what="kube-apiserver",
            timeout=START_TIMEOUT_S,
            interval=0.5,
            retry=(OSError,),  # not listening yet, or its certificate not written yet
        )

    def _readyz(self) -> bool:
        try:
            self._get("/readyz")
        except urllib.error.HTTPError as error:  # 500 until every post-start hook has run
            error.close()
            return False
        return True

    def _get(self, path: str) -> None:
        # The serving certificate (with its CA) appears in --cert-dir once the server starts.
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            response.read()


def versions(assets: Path) -> str:
    """One line naming the binaries' versions, for the test report's header."""
    found = []
    for name, args in (("kube-apiserver", ["--version"]), ("etcd", ["--version"])):
        done = subprocess.run(
            [str(assets / name), *args], capture_output=True, text=True, timeout=30, check=False
        )
        found.append(done.stdout.splitlines()[0] if done.stdout else f"{name}: no version")
    kubectl = subprocess.run(
        [str(assets / "kubectl"), "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    try:
        found.append(f"kubectl {json.loads(kubectl.stdout)['clientVersion']['gitVersion']}")
    except (ValueError, KeyError):
        found.append("kubectl: no version")
    return ", ".join(found)
