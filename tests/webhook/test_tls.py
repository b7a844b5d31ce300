"""The server's TLS against real handshakes: protocol floor, name verification, hot reload."""

from __future__ import annotations

import asyncio
import logging
import ssl
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs.generate import Bundle, generate_bundle
from tests.tlsfixtures import (
    NAMESPACE,
    SERVICE,
    another_serving_cert,
    client_context,
    connect,
    echo,
    peer_serial,
    project_secret,
    serial,
    throwaway_bundle,
    tls_echo_server,
)
from webhook.tls import (
    CertificateReloader,
    TLSConfigError,
    certificate_not_after,
    development_certificate,
    server_context,
)


@pytest.fixture(scope="session")
def bundle() -> Bundle:
    return throwaway_bundle()


@pytest.fixture
def pair_dir(tmp_path: Path, bundle: Bundle) -> Path:
    """A directory holding the throwaway bundle's tls.crt and tls.key as plain files."""
    (tmp_path / "tls.crt").write_bytes(bundle.cert_pem)
    (tmp_path / "tls.key").write_bytes(bundle.key_pem)
    return tmp_path


def _pinned(version: ssl.TLSVersion, ca_pem: bytes) -> ssl.SSLContext:
    context = client_context(ca_pem)
    # OpenSSL 3 only offers TLS < 1.2 at security level 0; without this the client, not the
    # server, would be the one refusing.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = version
    context.maximum_version = version
    return context


@pytest.mark.parametrize(
    ("version", "negotiated"),
    [
        pytest.param(ssl.TLSVersion.TLSv1_2, "TLSv1.2", id="a TLS 1.2 client is served"),
        pytest.param(ssl.TLSVersion.TLSv1_3, "TLSv1.3", id="a TLS 1.3 client is served"),
    ],
)
def test_serves_tls_1_2_and_later(
    pair_dir: Path, bundle: Bundle, version: ssl.TLSVersion, negotiated: str
) -> None:
    context = server_context(pair_dir / "tls.crt", pair_dir / "tls.key")
    with (
        tls_echo_server(context) as port,
        connect(port, context=_pinned(version, bundle.ca_cert_pem)) as tls,
    ):
        assert tls.version() == negotiated


@pytest.mark.parametrize(
    "openssl_policy",
    [
        pytest.param(None, id="a TLS 1.1 client is refused"),
        pytest.param(
            "DEFAULT:@SECLEVEL=0",
            id="a TLS 1.1 client is refused even where OpenSSL's own policy would allow it",
        ),
    ],
)
def test_refuses_a_tls_1_1_client(
    pair_dir: Path, bundle: Bundle, openssl_policy: str | None
) -> None:
    context = server_context(pair_dir / "tls.crt", pair_dir / "tls.key")
    if openssl_policy:
        context.set_ciphers(openssl_policy)
    with pytest.warns(DeprecationWarning, match="TLSv1_1"):
        client = _pinned(ssl.TLSVersion.TLSv1_1, bundle.ca_cert_pem)
    # The alert comes from the server, so the client did offer TLS 1.1 and was turned down.
    with (
        tls_echo_server(context) as port,
        pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"),
    ):
        connect(port, context=client).close()


def _other_ca() -> bytes:
    return generate_bundle(service="other", namespace="default", now=datetime.now(UTC)).ca_cert_pem


@pytest.mark.parametrize(
    ("server_hostname", "trusted_ca", "error"),
    [
        pytest.param(
            "shm-webhook.default.svc",
            None,
            None,
            id="the kube-apiserver's name for the service verifies against the CA",
        ),
        pytest.param(
            "shm-webhook.other.svc",
            None,
            "Hostname mismatch",
            id="a name the certificate does not carry is rejected",
        ),
        pytest.param(
            "shm-webhook.default.svc",
            _other_ca,
            "unable to get local issuer certificate",
            id="a client trusting a different CA rejects the certificate",
        ),
    ],
)
def test_server_name_is_verified_against_the_ca(
    pair_dir: Path,
    bundle: Bundle,
    server_hostname: str,
    trusted_ca: Callable[[], bytes] | None,
    error: str | None,
) -> None:
    client = client_context(trusted_ca() if trusted_ca else bundle.ca_cert_pem)
    context = server_context(pair_dir / "tls.crt", pair_dir / "tls.key")
    with tls_echo_server(context) as port:
        if error is None:
            with connect(port, context=client, server_hostname=server_hostname) as tls:
                assert peer_serial(tls) == serial(bundle.cert_pem)
        else:
            with pytest.raises(ssl.SSLCertVerificationError, match=error):
                connect(port, context=client, server_hostname=server_hostname).close()


def _encrypted(key_pem: bytes, form: serialization.PrivateFormat) -> bytes:
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM, form, serialization.BestAvailableEncryption(b"secret")
    )


# Each case rewrites one file of a good pair: (file, new content from the bundle or None to
# delete it, expected message with {cert}/{key} standing for the paths).
@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        pytest.param("tls.crt", None, "cannot read {cert}", id="a missing certificate is named"),
        pytest.param("tls.key", None, "cannot read {key}", id="a missing key is named"),
        pytest.param(
            "tls.crt",
            lambda b: b.key_pem,
            "{cert} does not hold PEM certificates",
            id="a key where the certificate should be is named as the certificate file",
        ),
        pytest.param(
            "tls.key",
            lambda b: b.ca_key_pem,
            "{key} is not the private key of the certificate in {cert}",
            id="a key that belongs to another certificate is reported as a mismatch",
        ),
        pytest.param(
            "tls.key",
            lambda b: b.key_pem[: len(b.key_pem) // 2],
            "{key} does not hold a PEM private key",
            id="a half-written key is named",
        ),
        pytest.param(
            "tls.key",
            lambda b: _encrypted(b.key_pem, serialization.PrivateFormat.PKCS8),
            "{key} is encrypted",
            id="an encrypted key is refused without prompting for a passphrase",
        ),
        pytest.param(
            "tls.key",
            lambda b: _encrypted(b.key_pem, serialization.PrivateFormat.TraditionalOpenSSL),
            "{key} is encrypted",
            id="an encrypted key in the traditional OpenSSL form is refused too",
        ),
        pytest.param(
            "tls.key",
            lambda _: b"",
            "{key} does not hold a PEM private key",
            id="an empty key is named",
        ),
    ],
)
@pytest.mark.parametrize(
    "open_pair",
    [
        pytest.param(server_context, id="by server_context"),
        pytest.param(CertificateReloader, id="by the reloader at start-up"),
    ],
)
def test_a_pair_that_cannot_be_served_is_refused_naming_the_file(
    pair_dir: Path,
    bundle: Bundle,
    file: str,
    content: Callable[[Bundle], bytes] | None,
    message: str,
    open_pair: Callable[[Path, Path], object],
) -> None:
    cert, key = pair_dir / "tls.crt", pair_dir / "tls.key"
    if content is None:
        (pair_dir / file).unlink()
    else:
        (pair_dir / file).write_bytes(content(bundle))
    with pytest.raises(TLSConfigError) as raised:
        open_pair(cert, key)
    assert message.format(cert=cert, key=key) in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_a_new_connection_sees_a_rotated_secret_and_an_open_one_keeps_working(
    tmp_path: Path, bundle: Bundle
) -> None:
    mount = tmp_path / "secret"
    project_secret(
        mount, {"tls.crt": bundle.cert_pem, "tls.key": bundle.key_pem}, version="2026_01_01_v1"
    )
    loaded: list[datetime] = []
    reloader = CertificateReloader(mount / "tls.crt", mount / "tls.key", on_loaded=loaded.append)
    new_cert, new_key = another_serving_cert(bundle, validity=timedelta(days=30))
    client = client_context(bundle.ca_cert_pem)

    with tls_echo_server(reloader.context) as port, connect(port, context=client) as before:
        assert reloader.check() is False
        project_secret(mount, {"tls.crt": new_cert, "tls.key": new_key}, version="2026_02_01_v2")
        assert reloader.check() is True
        assert reloader.check() is False
        with connect(port, context=client) as after:
            assert peer_serial(after) == serial(new_cert)
        echo(before)
        assert peer_serial(before) == serial(bundle.cert_pem)

    assert loaded == [certificate_not_after(bundle.cert_pem), certificate_not_after(new_cert)]
    assert reloader.not_after == loaded[-1]


@pytest.mark.parametrize(
    ("cert_part", "key_part"),
    [
        pytest.param(1.0, 0.5, id="a new certificate with a half-written key keeps the old pair"),
        pytest.param(0.5, 1.0, id="a half-written certificate keeps the old pair"),
        pytest.param(1.0, 0.0, id="a new certificate with an empty key keeps the old pair"),
    ],
)
def test_files_that_do_not_load_keep_the_old_certificate_until_they_do(
    pair_dir: Path, bundle: Bundle, cert_part: float, key_part: float
) -> None:
    loaded: list[datetime] = []
    cert, key = pair_dir / "tls.crt", pair_dir / "tls.key"
    reloader = CertificateReloader(cert, key, on_loaded=loaded.append)
    new_cert, new_key = another_serving_cert(bundle, validity=timedelta(days=30))
    client = client_context(bundle.ca_cert_pem)

    with tls_echo_server(reloader.context) as port:
        cert.write_bytes(new_cert[: int(len(new_cert) * cert_part)])
        key.write_bytes(new_key[: int(len(new_key) * key_part)])
        assert reloader.check() is False
        assert reloader.check() is False
        with connect(port, context=client) as tls:
            assert peer_serial(tls) == serial(bundle.cert_pem)
        assert loaded == [certificate_not_after(bundle.cert_pem)]

        cert.write_bytes(new_cert)
        key.write_bytes(new_key)
        assert reloader.check() is True
        with connect(port, context=client) as tls:
            assert peer_serial(tls) == serial(new_cert)
    assert loaded[-1] == certificate_not_after(new_cert)


def test_a_key_that_disappears_keeps_the_old_certificate(pair_dir: Path, bundle: Bundle) -> None:
    reloader = CertificateReloader(pair_dir / "tls.crt", pair_dir / "tls.key")
    (pair_dir / "tls.key").unlink()
    assert reloader.check() is False
    with (
        tls_echo_server(reloader.context) as port,
        connect(port, context=client_context(bundle.ca_cert_pem)) as tls,
    ):
        assert peer_serial(tls) == serial(bundle.cert_pem)


def test_a_file_that_stays_bad_is_logged_once(
    pair_dir: Path, bundle: Bundle, caplog: pytest.LogCaptureFixture
) -> None:
    reloader = CertificateReloader(pair_dir / "tls.crt", pair_dir / "tls.key")
    (pair_dir / "tls.key").write_bytes(bundle.ca_key_pem)
    with caplog.at_level(logging.WARNING, logger="webhook.tls"):
        for _ in range(3):
            assert reloader.check() is False
    assert len(caplog.records) == 1
    assert "is not the private key of the certificate" in caplog.records[0].getMessage()


def test_watch_reloads_in_the_background_until_cancelled(tmp_path: Path, bundle: Bundle) -> None:
    mount = tmp_path / "secret"
    project_secret(mount, {"tls.crt": bundle.cert_pem, "tls.key": bundle.key_pem}, version="v1")
    new_cert, new_key = another_serving_cert(bundle, validity=timedelta(days=30))

    async def scenario() -> list[datetime]:
        loaded: list[datetime] = []
        reloader = CertificateReloader(
            mount / "tls.crt", mount / "tls.key", on_loaded=loaded.append
        )
        watcher = asyncio.create_task(reloader.watch(interval=0.01))
        project_secret(mount, {"tls.crt": new_cert, "tls.key": new_key}, version="v2")
        async with asyncio.timeout(5):
            while len(loaded) < 2:
                await asyncio.sleep(0.01)
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher
        return loaded

    assert asyncio.run(scenario())[-1] == certificate_not_after(new_cert)


def test_watch_survives_a_failing_callback(
    pair_dir: Path, bundle: Bundle, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[datetime] = []

    def record_then_fail(not_after: datetime) -> None:
        calls.append(not_after)
        if len(calls) == 2:
            raise RuntimeError("metrics are down")

    new_cert, new_key = another_serving_cert(bundle, validity=timedelta(days=30))
    third_cert, third_key = another_serving_cert(bundle, validity=timedelta(days=60))

    async def scenario() -> None:
        reloader = CertificateReloader(
            pair_dir / "tls.crt", pair_dir / "tls.key", on_loaded=record_then_fail
        )
        watcher = asyncio.create_task(reloader.watch(interval=0.01))
        for cert, key, calls_after in ((new_cert, new_key, 2), (third_cert, third_key, 3)):
            (pair_dir / "tls.key").write_bytes(key)
            (pair_dir / "tls.crt").write_bytes(cert)
            async with asyncio.timeout(5):
                while len(calls) < calls_after:
                    await asyncio.sleep(0.01)
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher

    with caplog.at_level(logging.ERROR, logger="webhook.tls"):
        asyncio.run(scenario())
    assert calls[-1] == certificate_not_after(third_cert)
    assert "callback failed" in caplog.text


def _self_signed(not_after: datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "far future")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    "cert_pem",
    [
        pytest.param(lambda b: b.cert_pem, id="a serving certificate"),
        pytest.param(lambda b: b.ca_cert_pem, id="a CA certificate"),
        pytest.param(lambda b: b.cert_pem + b.ca_cert_pem, id="the first of a chain"),
        pytest.param(
            lambda _: _self_signed(datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)),
            id="the last UTCTime year",
        ),
        pytest.param(
            lambda _: _self_signed(datetime(2051, 6, 1, 12, 0, 0, tzinfo=UTC)),
            id="a GeneralizedTime after 2049",
        ),
    ],
)
def test_certificate_not_after_reads_what_cryptography_reads(
    bundle: Bundle, cert_pem: Callable[[Bundle], bytes]
) -> None:
    pem = cert_pem(bundle)
    assert certificate_not_after(pem) == x509.load_pem_x509_certificate(pem).not_valid_after_utc


@pytest.mark.parametrize(
    "cert_pem",
    [
        pytest.param(lambda b: b.key_pem, id="a key"),
        pytest.param(lambda b: b.cert_pem[: len(b.cert_pem) // 2], id="half a certificate"),
        pytest.param(lambda b: b.cert_pem.replace(b"MII", b"MIZ", 1), id="a corrupt certificate"),
    ],
)
def test_certificate_not_after_refuses_what_is_not_a_certificate(
    bundle: Bundle, cert_pem: Callable[[Bundle], bytes]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (any ValueError: the message is not pinned)
        certificate_not_after(cert_pem(bundle))


def test_certificate_not_after_reads_pem_bytes_and_files(pair_dir: Path, bundle: Bundle) -> None:
    from_bytes = certificate_not_after(bundle.cert_pem)
    assert from_bytes == certificate_not_after(pair_dir / "tls.crt")
    assert from_bytes.tzinfo is not None
    assert from_bytes > datetime.now(UTC) + timedelta(days=364)


@pytest.mark.parametrize(
    "server_hostname",
    [
        pytest.param("localhost", id="the development certificate serves localhost"),
        pytest.param("127.0.0.1", id="the development certificate serves 127.0.0.1"),
        pytest.param(
            f"{SERVICE}.{NAMESPACE}.svc", id="the development certificate serves the service name"
        ),
    ],
)
def test_development_certificate_is_served_and_verifies_against_its_ca(
    tmp_path: Path, server_hostname: str
) -> None:
    cert, key, ca = development_certificate(tmp_path / "dev", now=datetime.now(UTC))
    assert (cert.name, key.name, ca.name) == ("tls.crt", "tls.key", "ca.crt")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "dev").iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    client = ssl.create_default_context(cafile=ca)
    with (
        tls_echo_server(server_context(cert, key)) as port,
        connect(port, context=client, server_hostname=server_hostname) as tls,
    ):
        assert peer_serial(tls) == serial(cert.read_bytes())
