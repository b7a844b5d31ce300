"""The container image, built by buildah from the Dockerfile and run by runc as a pod runs it:
as its numeric USER, on a read-only root with a tmpfs at /tmp, without capabilities.

What the image holds is read from the built image itself (its mounted files and its OCI
configuration), so `.dockerignore`, the Dockerfile's stages and pip's installs are all checked
by their result, not by reading the Dockerfile.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import os
import re
import signal
import ssl
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from certs.files import CA_CERT_FILE
from tests.certs.fake_apiserver import (
    FakeApiServer,
    kubeconfig,
    secret_path,
    serve,
    webhook_configuration,
)
from tests.image import build, engine
from tests.image.engine import Image, Mount
from tests.processes import free_port, wait_until_ready
from webhook.settings import Settings

pytestmark = pytest.mark.integration

PROJECT = tomllib.loads((build.REPO / "pyproject.toml").read_text())["project"]
MAX_SIZE = 200 * 2**20
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15
VENV = "opt/venv"
SITE = f"{VENV}/lib/python3.11/site-packages"


def test_is_at_most_200_mib(image: Image) -> None:
    assert image.size <= MAX_SIZE, f"{image.size / 2**20:.1f} MiB"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("src", id="no build directory"),
        pytest.param("tests", id="no tests"),
        pytest.param(".git", id="no git history"),
        pytest.param("charts", id="no chart"),
        pytest.param("opt/pip", id="no build-stage pip"),
        pytest.param(f"{SITE}/pip", id="no pip in the virtualenv"),
        pytest.param("wheels", id="no wheels"),
        pytest.param("debs", id="no Debian packages"),
        pytest.param("usr/bin/sh", id="no shell"),
        pytest.param("usr/bin/apt-get", id="no package manager"),
        pytest.param("usr/bin/dpkg", id="no dpkg"),
        pytest.param("usr/bin/gcc", id="no compiler"),
    ],
)
def test_holds_nothing_but_the_runtime(image: Image, path: str) -> None:
    assert not os.path.lexists(image.root / path)


def _link_chain(root: Path, path: str) -> list[str]:
    """The symlinks from `path` on, resolved inside the image's root, not this machine's."""
    chain = [path]
    while (root / chain[-1].lstrip("/")).is_symlink():
        target = (root / chain[-1].lstrip("/")).readlink()
        chain.append(
            str(Path(chain[-1]).parent / target) if not target.is_absolute() else str(target)
        )
    return chain


def test_virtualenv_runs_debian_python_at_the_build_stage_path(image: Image) -> None:
    chain = _link_chain(image.root, f"/{VENV}/bin/python")
    # /usr/bin/python3.11 in the build stage too: the virtualenv was made with that path.
    assert "/usr/bin/python3.11" in chain
    assert (image.root / chain[-1].lstrip("/")).is_file()


def test_the_projects_wheel_holds_its_two_packages_as_the_source_tree_has_them(
    image: Image,
) -> None:
    # The wheel is built from the context .dockerignore lets through: a bytecode cache or any
    # other file of the checkout that reached it would show here.
    (record,) = (image.root / SITE).glob("shm_webhook-*.dist-info/RECORD")
    installed = {line.split(",")[0] for line in record.read_text().splitlines()}
    modules = {p for p in installed if p.split("/")[0] in ("webhook", "certs")}
    source = {
        p.relative_to(build.REPO).as_posix()
        for package in ("webhook", "certs")
        for p in (build.REPO / package).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert {p for p in modules if "__pycache__" not in p} == source
    # Besides them, only its metadata and the console script (../../../bin/shm-webhook).
    assert {p.split("/")[0] for p in installed} == {"webhook", "certs", record.parent.name, ".."}


def test_runs_as_the_numeric_non_root_user_the_chart_sets(image: Image) -> None:
    # Numeric, so the kubelet can check runAsNonRoot; the chart's securityContext uses 65532.
    assert image.config["User"] == "65532:65532"


def test_entrypoint_is_the_console_script_and_cmd_serves(image: Image) -> None:
    assert image.config["Entrypoint"] == list(PROJECT["scripts"])
    assert image.config["Cmd"] == ["serve"]


def test_exposes_the_serving_and_metrics_ports_serve_defaults_to(image: Image) -> None:
    exposed = {int(port.split("/")[0]) for port in image.config["ExposedPorts"]}
    assert exposed == {Settings.model_fields[n].default for n in ("port", "metrics_port")}


def test_home_lies_under_tmp_the_only_writable_mount(image: Image) -> None:
    env = dict(entry.partition("=")[::2] for entry in image.config["Env"])
    assert env["HOME"] == "/tmp" or env["HOME"].startswith("/tmp/")


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        pytest.param("title", PROJECT["name"], id="the title is the distribution name"),
        pytest.param("description", PROJECT["description"], id="the description is the project's"),
        pytest.param("licenses", PROJECT["license"], id="the licence is the project's"),
    ],
)
def test_oci_labels_repeat_the_project_metadata(image: Image, label: str, expected: str) -> None:
    assert image.labels[f"org.opencontainers.image.{label}"] == expected


def test_the_root_is_read_only_and_tmp_writable(image: Image, scratch: Path) -> None:
    code = (
        "import errno, pathlib\n"
        "try:\n    pathlib.Path('/opt/venv/x').write_text('x')\n"
        "except OSError as e:\n    print(errno.errorcode[e.errno])\n"
        "pathlib.Path('/tmp/x').write_text('x'); print('tmp ok')\n"
    )
    done = engine.run_python(image, scratch, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["EROFS", "tmp", "ok"]


def test_every_shared_object_loads(image: Image, scratch: Path) -> None:
    # dlopen of every extension module (and the libraries wheels vendor) loads everything they
    # link to: the Debian packages the Dockerfile unpacks by hand must hold all of it.
    code = (
        "import ctypes, pathlib\n"
        "roots = ['/usr/lib/python3.11/lib-dynload', '/opt/venv/lib']\n"
        "found = [p for r in roots for p in pathlib.Path(r).rglob('*.so*') if p.is_file()]\n"
        "for path in found:\n    ctypes.CDLL(str(path))\n"
        "print(len(found))\n"
    )
    done = engine.run_python(image, scratch, code)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 50


def test_the_virtualenv_satisfies_every_requirement_of_the_project_extras_included(
    image: Image,
) -> None:
    # `pip check` in the build ignores extras (uvicorn[standard]): read the installed metadata.
    installed = {
        canonicalize_name(d.metadata["Name"]): d
        for d in importlib.metadata.distributions(path=[str(image.root / SITE)])
    }
    unmet: list[str] = []

    def need(requirement: Requirement, extra: str = "") -> None:
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            return
        found = installed.get(canonicalize_name(requirement.name))
        if found is None or not requirement.specifier.contains(found.version, prereleases=True):
            unmet.append(f"{requirement} ({found.version if found else 'missing'})")
            return
        for name in requirement.extras:
            for line in found.requires or []:
                need(Requirement(line), name)

    for line in installed[canonicalize_name(PROJECT["name"])].requires or []:
        need(Requirement(line))
    assert not unmet


def test_every_module_the_commands_import_is_precompiled(image: Image, scratch: Path) -> None:
    # Nothing can write .pyc on the read-only root: a module without valid bytecode would be
    # compiled again at every start. `python -v` says "code object from <x>.py" for those.
    code = "import webhook.cli, webhook.server, webhook.app, certs.cluster, certs.publish"
    done = engine.run_python(image, scratch, code, verbose=True)
    assert done.returncode == 0, done.stderr
    compiled = re.findall(r"^# code object from (/\S+\.py)$", done.stderr, re.MULTILINE)
    assert not compiled, f"{len(compiled)} modules compiled at run time, e.g. {compiled[:5]}"


def test_help_is_the_command_line_of_the_source_tree(image: Image, scratch: Path) -> None:
    installed = engine.run(image, scratch, args=["--help"], env={"COLUMNS": "100"})
    source = subprocess.run(
        [sys.executable, "-m", "webhook", "--help"],
        cwd=build.REPO,
        env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout == source.stdout


def test_certs_bootstrap_help_works(image: Image, scratch: Path) -> None:
    done = engine.run(image, scratch, args=["certs", "bootstrap", "--help"])
    assert done.returncode == 0, done.stderr
    assert "--webhook-config" in done.stdout


def test_certs_bootstrap_creates_the_secret_through_the_kubernetes_client(
    image: Image, scratch: Path
) -> None:
    # The Job's command, run by the image against the fake apiserver on loopback: the locked
    # kubernetes client works with certs/ as the image holds them.
    fake = FakeApiServer()
    fake.store(
        webhook_configuration(
            "shm-webhook",
            service="shm-webhook",
            namespace="shm-system",
            webhooks=("pods.shm-webhook.io",),
            ca_bundle=None,
        )
    )
    config_dir = scratch / "kubeconfig"
    config_dir.mkdir(mode=0o755, exist_ok=True)
    with serve(fake) as url:
        (config_dir / "config").write_text(yaml.safe_dump(kubeconfig(url)))
        done = engine.run(
            image,
            scratch,
            args=["certs", "bootstrap", "--secret", "shm-webhook-tls",
                  "--namespace", "shm-system", "--service", "shm-webhook",
                  "--webhook-config", "shm-webhook", "--kubeconfig", "/tmp/kube/config"],
            env={"NO_PROXY": "*"},
            mounts=[Mount(config_dir, "/tmp/kube")],
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert fake.get(secret_path("shm-system", "shm-webhook-tls")) is not None


def _healthz(port: int, context: ssl.SSLContext) -> int:
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    finally:
        connection.close()


def _wait_until_healthy(running: engine.Running, port: int) -> None:
    """Until /healthz answers 200 over TLS verified against the development CA, which the
    server wrote to its /tmp (a tmpfs this machine reaches through /proc/PID/root)."""

    def healthy() -> bool:
        cas = sorted(Path(f"/proc/{running.pid()}/root/tmp").glob(f"*/{CA_CERT_FILE}"))
        return bool(cas) and _healthz(port, ssl.create_default_context(cafile=str(cas[0]))) == 200

    wait_until_ready(
        healthy,
        process=running.process,
        output=running.output,
        what="the image's serve",
        timeout=START_TIMEOUT_S,
        interval=0.1,
        # runc's state, the CA file and the first handshakes come and go while it starts.
        retry=(OSError, ValueError, subprocess.CalledProcessError, http.client.HTTPException),
    )


def test_serves_healthz_over_tls_and_exits_0_on_sigterm(image: Image, scratch: Path) -> None:
    port = free_port()
    flags = ["--host", "127.0.0.1", "--port", str(port), "--metrics-port", "0"]
    # Every import `serve` makes is logged: the Kubernetes client must not be one of them.
    env = {"PYTHONPROFILEIMPORTTIME": "1"}
    with engine.started(
        image, scratch, args=["serve", *flags, "--shutdown-grace", "1"], env=env
    ) as running:
        _wait_until_healthy(running, port)
        running.process.send_signal(signal.SIGTERM)
        try:
            code = running.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_TIMEOUT_S} s after SIGTERM:\n{running.output()}")
    log = running.output()
    assert code == 0, log
    imported = re.findall(r"^import time:.*\|\s*(\S+)$", log, re.MULTILINE)
    assert "uvicorn" in imported
    assert not [m for m in imported if m.split(".")[0] == "kubernetes"]
