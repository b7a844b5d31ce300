"""`shm-webhook certs bootstrap` and `certs check` through `webhook.cli.main`, against the fake
apiserver (reached through a kubeconfig file, as from outside a cluster), certificate files and
a TLS server.

The apiserver never looks at certificate dates, so a Secret "from four years ago" is one
whose certificates were generated with `now` four years back; the command itself runs at the
real current time.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.files import write_bundle
from certs.generate import Bundle, dns_names, generate_bundle, issue_serving_cert
from certs.renewal import needs_renewal
from tests.certs.fake_apiserver import (
    CONFIG_GROUP,
    FakeApiServer,
    Request,
    config_path,
    kubeconfig,
    secret_path,
    secrets_path,
    tls_secret,
    webhook_configuration,
)
from tests.processes import free_port
from tests.tlsfixtures import tls_echo_server
from webhook.cli import main

NAMESPACE, SECRET, SERVICE, CONFIG = "shm-system", "shm-webhook-tls", "shm-webhook", "shm-webhook"
WEBHOOKS = ("pods.shm-webhook.io", "pods-kube-system.shm-webhook.io")
SERVER_NAME = f"{SERVICE}.{NAMESPACE}.svc"
YEAR = timedelta(days=365)
FORBIDDEN = (
    f'secrets "{SECRET}" is forbidden: User "system:serviceaccount:{NAMESPACE}:shm-webhook-certs" '
    f'cannot get resource "secrets" in API group "" in the namespace "{NAMESPACE}"'
)


def _now() -> datetime:
    return datetime.now(UTC)


def _bootstrap(kubeconfig_file: Path, *extra: str) -> int:
    return main(
        ["certs", "bootstrap", "--secret", SECRET, "--namespace", NAMESPACE,
         "--service", SERVICE, "--webhook-config", CONFIG,
         "--kubeconfig", str(kubeconfig_file), *extra]
    )  # fmt: skip


def _files(bundle: Bundle) -> dict[str, bytes]:
    return {
        "ca.crt": bundle.ca_cert_pem,
        "ca.key": bundle.ca_key_pem,
        "tls.crt": bundle.cert_pem,
        "tls.key": bundle.key_pem,
    }


def _bundle(now: datetime) -> Bundle:
    return generate_bundle(service=SERVICE, namespace=NAMESPACE, now=now)


def _config(ca_bundle: bytes | None = None) -> dict[str, Any]:
    return webhook_configuration(
        CONFIG, service=SERVICE, namespace=NAMESPACE, webhooks=WEBHOOKS, ca_bundle=ca_bundle
    )


def _stored_files(fake: FakeApiServer) -> dict[str, bytes]:
    secret = fake.get(secret_path(NAMESPACE, SECRET))
    assert secret is not None
    return {key: base64.b64decode(value) for key, value in secret["data"].items()}


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def _cas(bundle_pem: bytes) -> set[bytes]:
    return {ca.public_bytes(serialization.Encoding.DER) for ca in _certs(bundle_pem)}


def _certs(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


def _trusted(fake: FakeApiServer) -> list[set[bytes]]:
    """Per webhook, the DER of each CA its caBundle trusts."""
    config = fake.get(config_path(CONFIG))
    assert config is not None
    return [
        _cas(base64.b64decode(webhook["clientConfig"]["caBundle"]))
        for webhook in config["webhooks"]
    ]


def _patched_bundles(request: Request) -> list[set[bytes]]:
    """The CAs each `add` op of a caBundle PATCH sets."""
    return [_cas(base64.b64decode(op["value"])) for op in request.body if op["op"] == "add"]


def _serves(files: Mapping[str, bytes]) -> bool:
    renew, _ = needs_renewal(
        cert_pem=files["tls.crt"],
        key_pem=files["tls.key"],
        ca_pem=files["ca.crt"],
        dns_names=dns_names(service=SERVICE, namespace=NAMESPACE),
        now=_now(),
    )
    return not renew


def _writes(fake: FakeApiServer) -> list[Request]:
    return [r for r in fake.requests if r.method != "GET"]


def _touches_the_configuration(fake: FakeApiServer) -> bool:
    return any(r.path.startswith(f"/apis/{CONFIG_GROUP}/") for r in fake.requests)


def _step(out: str, subject: str) -> str:
    """The output line about `subject` ("secret" or "caBundle"), the last one if several."""
    lines = [line for line in out.splitlines() if line.startswith(subject)]
    assert lines, out
    return lines[-1]


def test_a_first_install_trusts_the_new_ca_before_creating_the_secret(
    fake: FakeApiServer, kubeconfig_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.store(_config())

    assert _bootstrap(kubeconfig_file) == 0

    files = _stored_files(fake)
    assert _serves(files)
    assert _trusted(fake) == [_cas(files["ca.crt"])] * len(WEBHOOKS)
    methods = [(r.method, r.path) for r in _writes(fake)]
    assert methods == [("PATCH", config_path(CONFIG)), ("POST", secrets_path(NAMESPACE))]
    out = capsys.readouterr().out
    assert _step(out, "secret").startswith(f"secret {NAMESPACE}/{SECRET}: created (")
    assert CONFIG in _step(out, "caBundle")


def test_a_rerun_changes_nothing_and_writes_nothing(
    fake: FakeApiServer, kubeconfig_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.store(_config())
    assert _bootstrap(kubeconfig_file) == 0
    secret, config = fake.get(secret_path(NAMESPACE, SECRET)), fake.get(config_path(CONFIG))
    capsys.readouterr()
    writes = len(_writes(fake))

    assert _bootstrap(kubeconfig_file) == 0

    assert len(_writes(fake)) == writes
    assert fake.get(secret_path(NAMESPACE, SECRET)) == secret
    assert fake.get(config_path(CONFIG)) == config
    out = capsys.readouterr().out
    assert _step(out, "secret").startswith(f"secret {NAMESPACE}/{SECRET}: kept (")
    assert "patched" not in out


def test_a_ca_rotation_patches_old_and_new_ca_into_the_bundle_before_writing_the_secret(
    fake: FakeApiServer, kubeconfig_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _bundle(_now() - 4 * YEAR)  # past two thirds of its five years: due
    fake.store(tls_secret(SECRET, namespace=NAMESPACE, files=_files(old)))
    fake.store(_config(ca_bundle=old.ca_cert_pem))

    assert _bootstrap(kubeconfig_file) == 0

    files = _stored_files(fake)
    new_ca = _der(files["ca.crt"])
    assert new_ca != _der(old.ca_cert_pem)
    assert _serves(files)
    writes = _writes(fake)
    secret_paths = (secrets_path(NAMESPACE), secret_path(NAMESPACE, SECRET))
    secret_write = next(i for i, r in enumerate(writes) if r.path in secret_paths)
    first_trust = next(
        i
        for i, r in enumerate(writes)
        if r.method == "PATCH" and all(new_ca in cas for cas in _patched_bundles(r))
    )
    assert first_trust < secret_write, [(r.method, r.path) for r in writes]
    assert _patched_bundles(writes[first_trust]) == [{new_ca, _der(old.ca_cert_pem)}] * 2
    assert _trusted(fake) == [{new_ca, _der(old.ca_cert_pem)}] * len(WEBHOOKS)
    assert _step(capsys.readouterr().out, "secret").startswith(
        f"secret {NAMESPACE}/{SECRET}: rotated-ca ("
    )


def test_skip_ca_bundle_creates_the_secret_without_touching_or_waiting_for_the_configuration(
    fake: FakeApiServer, kubeconfig_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()

    assert _bootstrap(kubeconfig_file, "--skip-ca-bundle", "--timeout", "30") == 0

    assert time.monotonic() - started < 10, "it waited for the configuration"
    assert not _touches_the_configuration(fake)
    assert _serves(_stored_files(fake))
    assert _step(capsys.readouterr().out, "secret").startswith(
        f"secret {NAMESPACE}/{SECRET}: created ("
    )


def test_skip_ca_bundle_keeps_a_due_but_usable_ca_and_renews_the_certificate_from_it(
    fake: FakeApiServer, kubeconfig_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _files(_bundle(_now() - 4 * YEAR))  # CA due, serving certificate expired
    fake.store(tls_secret(SECRET, namespace=NAMESPACE, files=old))

    assert _bootstrap(kubeconfig_file, "--skip-ca-bundle") == 0

    files = _stored_files(fake)
    assert (files["ca.crt"], files["ca.key"]) == (old["ca.crt"], old["ca.key"])
    assert files["tls.crt"] != old["tls.crt"]
    assert _serves(files)
    assert not _touches_the_configuration(fake)
    out = capsys.readouterr().out
    assert _step(out, "secret").startswith(f"secret {NAMESPACE}/{SECRET}: renewed (")
    assert "republish" not in out


@pytest.mark.parametrize(
    "files",
    [
        pytest.param(lambda: _files(_bundle(_now() - 6 * YEAR)), id="an expired CA"),
        pytest.param(
            lambda: _files(_bundle(_now())) | {"ca.crt": b"not a certificate"},
            id="an unreadable CA",
        ),
        pytest.param(
            lambda: {k: v for k, v in _files(_bundle(_now() - 4 * YEAR)).items() if k != "ca.key"},
            id="a CA whose key is missing when the certificate is due",
        ),
    ],
)
def test_skip_ca_bundle_replaces_an_unusable_ca_and_says_the_bundle_must_be_republished(
    fake: FakeApiServer,
    kubeconfig_file: Path,
    capsys: pytest.CaptureFixture[str],
    files: Callable[[], dict[str, bytes]],
) -> None:
    old = files()
    fake.store(tls_secret(SECRET, namespace=NAMESPACE, files=old))

    assert _bootstrap(kubeconfig_file, "--skip-ca-bundle") == 0

    stored = _stored_files(fake)
    assert stored["ca.crt"] != old["ca.crt"]
    assert _serves(stored)
    assert not _touches_the_configuration(fake)
    out = capsys.readouterr().out
    assert _step(out, "secret").startswith(f"secret {NAMESPACE}/{SECRET}: rotated-ca (")
    assert "republish" in _step(out, "caBundle")


@pytest.mark.parametrize(
    ("method", "path", "writes"),
    [
        pytest.param("GET", secret_path(NAMESPACE, SECRET), 0, id="a refused read of the Secret"),
        pytest.param(
            "PATCH", config_path(CONFIG), 0, id="a refused caBundle patch, before the Secret"
        ),
    ],
)
def test_an_api_error_is_exit_code_1_with_one_line_and_no_secret_written(
    fake: FakeApiServer,
    kubeconfig_file: Path,
    capsys: pytest.CaptureFixture[str],
    method: str,
    path: str,
    writes: int,
) -> None:
    fake.store(_config())
    fake.fail(method, path, code=403, reason="Forbidden", message=FORBIDDEN)

    assert _bootstrap(kubeconfig_file) == 1

    [line] = capsys.readouterr().err.splitlines()
    assert "403" in line
    assert "Forbidden" in line
    assert FORBIDDEN in line
    assert fake.count("POST") + fake.count("PUT") == writes


def test_an_unreachable_apiserver_is_exit_code_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "*")
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig(f"http://127.0.0.1:{free_port()}")))

    assert _bootstrap(path) == 1

    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ")


def test_a_configuration_that_never_appears_is_exit_code_1_after_the_timeout(
    fake: FakeApiServer, kubeconfig_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()

    assert _bootstrap(kubeconfig_file, "--timeout", "1.5") == 1

    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 10
    [line] = capsys.readouterr().err.splitlines()
    assert CONFIG in line
    assert fake.count("POST") == 0, "a Secret whose CA nobody trusts was written"


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--service", "Not_A_Label"], id="a service name that is not a DNS label"),
        pytest.param(["--timeout", "-1"], id="a negative timeout"),
        pytest.param(["--key-type", "dsa"], id="an unknown key type"),
    ],
)
def test_bootstrap_usage_errors_are_exit_code_2_with_one_line(
    fake: FakeApiServer,
    kubeconfig_file: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    assert _bootstrap(kubeconfig_file, *args) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert fake.requests == []


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(None, id="a kubeconfig that does not exist"),
        pytest.param("clusters: [", id="a kubeconfig that is not YAML"),
        pytest.param("just a string", id="a kubeconfig that is not a mapping"),
    ],
)
def test_an_unusable_kubeconfig_is_exit_code_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)

    assert _bootstrap(path) == 2

    [line] = capsys.readouterr().err.splitlines()
    assert str(path) in line


# certs check


def _check(*args: str) -> int:
    return main(["certs", "check", *args])


def _report(out: str) -> dict[str, str]:
    pairs = [line.split(": ", 1) for line in out.splitlines()]
    return dict(pairs)


def _serving_pair(bundle: Bundle, *, issued: datetime, validity: timedelta) -> tuple[bytes, bytes]:
    return issue_serving_cert(
        ca_cert_pem=bundle.ca_cert_pem,
        ca_key_pem=bundle.ca_key_pem,
        dns_names=dns_names(service=SERVICE, namespace=NAMESPACE),
        now=issued,
        validity=validity,
    )


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return _bundle(_now())


def test_check_reports_a_fresh_certificate_file_and_exits_0(
    bundle: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_bundle(bundle, tmp_path)

    assert _check("--cert-file", str(tmp_path / "tls.crt")) == 0

    report = _report(capsys.readouterr().out)
    cert = x509.load_pem_x509_certificate(bundle.cert_pem)
    assert report["sans"].split(", ") == dns_names(service=SERVICE, namespace=NAMESPACE)
    assert report["issuer"] == cert.issuer.rfc4514_string()
    assert datetime.fromisoformat(report["notBefore"]) == cert.not_valid_before_utc
    assert datetime.fromisoformat(report["notAfter"]) == cert.not_valid_after_utc
    assert int(report["daysLeft"]) == (cert.not_valid_after_utc - _now()).days
    assert report["sha256"] == hashlib.sha256(_der(bundle.cert_pem)).hexdigest()


@pytest.mark.parametrize(
    ("issued", "validity", "threshold", "code"),
    [
        pytest.param(0, 10, [], 1, id="10 days left is within the default 30: exit 1"),
        pytest.param(0, 10, ["--threshold-days", "5"], 0, id="10 days left with threshold 5"),
        pytest.param(0, 40, [], 0, id="40 days left with the default 30"),
        pytest.param(-400, 365, [], 1, id="an expired certificate"),
        pytest.param(-400, 365, ["--threshold-days", "0"], 1, id="expired even with threshold 0"),
    ],
)
def test_check_exits_1_when_the_certificate_expires_within_the_threshold(
    bundle: Bundle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    issued: int,
    validity: int,
    threshold: list[str],
    code: int,
) -> None:
    cert_pem, _ = _serving_pair(
        bundle, issued=_now() + timedelta(days=issued), validity=timedelta(days=validity)
    )
    (tmp_path / "tls.crt").write_bytes(cert_pem)

    assert _check("--cert-file", str(tmp_path / "tls.crt"), *threshold) == code

    cert = x509.load_pem_x509_certificate(cert_pem)
    days_left = int(_report(capsys.readouterr().out)["daysLeft"])
    assert days_left == (cert.not_valid_after_utc - _now()).days


def test_check_reads_the_certificate_of_a_secret(
    bundle: Bundle, fake: FakeApiServer, kubeconfig_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.store(tls_secret(SECRET, namespace=NAMESPACE, files=_files(bundle)))

    args = ["--secret", SECRET, "--namespace", NAMESPACE, "--kubeconfig", str(kubeconfig_file)]
    assert _check(*args) == 0

    cert = x509.load_pem_x509_certificate(bundle.cert_pem)
    assert int(_report(capsys.readouterr().out)["serial"], 16) == cert.serial_number
    assert _writes(fake) == []


@pytest.mark.parametrize(
    "context",
    [
        pytest.param([], id="its current context"),
        pytest.param(["--context", "fake"], id="--context"),
    ],
)
def test_check_finds_the_cluster_through_the_kubeconfig_variable(
    bundle: Bundle,
    fake: FakeApiServer,
    kubeconfig_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    context: list[str],
) -> None:
    # No --kubeconfig: KUBECONFIG, a list whose first file does not exist, as a shell may set it.
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}:{kubeconfig_file}")
    fake.store(tls_secret(SECRET, namespace=NAMESPACE, files=_files(bundle)))

    assert _check("--secret", SECRET, "--namespace", NAMESPACE, *context) == 0

    cert = x509.load_pem_x509_certificate(bundle.cert_pem)
    assert int(_report(capsys.readouterr().out)["serial"], 16) == cert.serial_number


def test_bootstrap_finds_the_cluster_through_the_kubeconfig_variable(
    fake: FakeApiServer,
    kubeconfig_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig_file))
    fake.store(_config())

    args = ["--secret", SECRET, "--namespace", NAMESPACE, "--service", SERVICE]
    assert main(["certs", "bootstrap", *args, "--webhook-config", CONFIG, "--context", "fake"]) == 0

    assert "created" in capsys.readouterr().out
    assert fake.get(secret_path(NAMESPACE, SECRET)) is not None


@pytest.mark.parametrize(
    "forbidden",
    [pytest.param(False, id="a missing Secret"), pytest.param(True, id="a forbidden Secret")],
)
def test_check_of_a_secret_it_cannot_read_is_exit_code_2(
    fake: FakeApiServer,
    kubeconfig_file: Path,
    capsys: pytest.CaptureFixture[str],
    forbidden: bool,
) -> None:
    if forbidden:
        fake.store(tls_secret(SECRET, namespace=NAMESPACE, files=_files(_bundle(_now()))))
        path = secret_path(NAMESPACE, SECRET)
        fake.fail("GET", path, code=403, reason="Forbidden", message=FORBIDDEN)

    args = ["--secret", SECRET, "--namespace", NAMESPACE, "--kubeconfig", str(kubeconfig_file)]
    assert _check(*args) == 2

    [line] = capsys.readouterr().err.splitlines()
    assert f"{NAMESPACE}/{SECRET}" in line


@pytest.fixture(scope="module")
def endpoint(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A TLS server on 127.0.0.1 serving the bundle's certificate; HOST:PORT."""
    directory = tmp_path_factory.mktemp("served")
    write_bundle(bundle, directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    with tls_echo_server(context) as port:
        yield f"127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        pytest.param([], 0, id="unverified without a CA file, still reported"),
        pytest.param(["--ca-file", "ca.crt", "--server-name", SERVER_NAME], 0, id="verified"),
        pytest.param(
            ["--ca-file", "other-ca.crt", "--server-name", SERVER_NAME],
            1,
            id="signed by a CA other than the CA file's: exit 1",
        ),
        pytest.param(
            ["--ca-file", "ca.crt", "--server-name", "other.shm-system.svc"],
            1,
            id="not valid for the server name: exit 1",
        ),
        pytest.param(["--ca-file", "ca.crt"], 1, id="the host (127.0.0.1) is not a SAN: exit 1"),
    ],
)
def test_check_reports_the_certificate_an_endpoint_serves(
    bundle: Bundle,
    endpoint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
) -> None:
    (tmp_path / "ca.crt").write_bytes(bundle.ca_cert_pem)
    (tmp_path / "other-ca.crt").write_bytes(_bundle(_now()).ca_cert_pem)
    args = [str(tmp_path / arg) if arg.endswith(".crt") else arg for arg in args]

    assert _check("--endpoint", endpoint, *args) == code

    report = _report(capsys.readouterr().out)
    cert = x509.load_pem_x509_certificate(bundle.cert_pem)
    assert int(report["serial"], 16) == cert.serial_number
    assert report["sans"].split(", ") == dns_names(service=SERVICE, namespace=NAMESPACE)
    # A certificate that did not verify is never reported healthy, however long it is valid.
    if code == 0:
        assert report["status"] == "valid for 30 days or more"
    else:
        assert report["verified"].startswith("no, ")
        assert report["status"] == "not verified; otherwise valid for 30 days or more"


def test_check_of_an_endpoint_that_fails_both_verification_and_dates_says_both(
    bundle: Bundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert_pem, key_pem = _serving_pair(bundle, issued=_now() - timedelta(days=400), validity=YEAR)
    (tmp_path / "tls.crt").write_bytes(cert_pem)
    (tmp_path / "tls.key").write_bytes(key_pem)
    (tmp_path / "ca.crt").write_bytes(bundle.ca_cert_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    with tls_echo_server(context) as port:
        code = _check(
            *("--endpoint", f"127.0.0.1:{port}", "--server-name", SERVER_NAME),
            *("--ca-file", str(tmp_path / "ca.crt")),
        )

    assert code == 1
    report = _report(capsys.readouterr().out)
    assert "expired" in report["verified"]
    assert report["status"].startswith("not verified; expired at ")


def test_check_of_an_endpoint_nobody_listens_on_is_exit_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    assert _check("--endpoint", f"127.0.0.1:{port}") == 2

    [line] = capsys.readouterr().err.splitlines()
    assert f"127.0.0.1:{port}" in line


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="no source"),
        pytest.param(["--cert-file", "x", "--endpoint", "h:1"], id="two sources"),
        pytest.param(["--secret", "s"], id="a Secret without its namespace"),
        pytest.param(["--cert-file", "x", "--ca-file", "y"], id="a CA file for a file"),
        pytest.param(["--endpoint", "no-port"], id="an endpoint without a port"),
        pytest.param(["--cert-file", "x", "--threshold-days", "-1"], id="a negative threshold"),
        pytest.param(["--cert-file", "/nonexistent/tls.crt"], id="a file that does not exist"),
    ],
)
def test_check_usage_errors_and_unreadable_input_are_exit_code_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    assert _check(*args) == 2
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1
    assert captured.out == ""
