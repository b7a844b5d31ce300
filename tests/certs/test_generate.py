"""Certificate generation with a pinned clock: names, extensions, validity, keys and the chain."""

from __future__ import annotations

import functools
import ipaddress
import re
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store

from certs.generate import Bundle, KeyType, dns_names, generate_bundle, issue_serving_cert

NOW = datetime(2026, 1, 1, tzinfo=UTC)
EXTRA = ("webhook.example.com", "10.0.0.1", "::1")
KEY_TYPES = [
    pytest.param("ecdsa", id="with ECDSA keys"),
    pytest.param("rsa", id="with RSA keys"),
]


@functools.cache
def _bundle(key_type: KeyType) -> Bundle:
    return generate_bundle(
        service="shm-webhook", namespace="tools", now=NOW, extra_names=EXTRA, key_type=key_type
    )


def _certs(key_type: KeyType) -> tuple[x509.Certificate, x509.Certificate]:
    """(serving certificate, CA certificate)."""
    bundle = _bundle(key_type)
    return (
        x509.load_pem_x509_certificate(bundle.cert_pem),
        x509.load_pem_x509_certificate(bundle.ca_cert_pem),
    )


def _ext(cert: x509.Certificate, kind: type[Any]) -> x509.Extension[Any]:
    return cert.extensions.get_extension_for_class(kind)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            (),
            [
                "shm-webhook",
                "shm-webhook.tools",
                "shm-webhook.tools.svc",
                "shm-webhook.tools.svc.cluster.local",
            ],
            id="names the service in every DNS form",
        ),
        pytest.param(
            ("webhook.example.com", "10.0.0.1", "::1"),
            [
                "shm-webhook",
                "shm-webhook.tools",
                "shm-webhook.tools.svc",
                "shm-webhook.tools.svc.cluster.local",
                "webhook.example.com",
                "10.0.0.1",
                "::1",
            ],
            id="puts extra names and addresses after the in-cluster names",
        ),
        pytest.param(
            ("b.example.com", "shm-webhook.tools.svc", "a.example.com", "b.example.com"),
            [
                "shm-webhook",
                "shm-webhook.tools",
                "shm-webhook.tools.svc",
                "shm-webhook.tools.svc.cluster.local",
                "b.example.com",
                "a.example.com",
            ],
            id="drops repeated names and keeps the first occurrence's place",
        ),
    ],
)
def test_dns_names(extra: tuple[str, ...], expected: list[str]) -> None:
    assert dns_names(service="shm-webhook", namespace="tools", extra=extra) == expected


def _issue_from(bundle: Bundle, **overrides: Any) -> tuple[bytes, bytes]:
    arguments: dict[str, Any] = {
        "ca_cert_pem": bundle.ca_cert_pem,
        "ca_key_pem": bundle.ca_key_pem,
        "dns_names": ["shm-webhook.tools.svc"],
        "now": NOW,
    }
    return issue_serving_cert(**(arguments | overrides))


def _generate(**overrides: Any) -> Bundle:
    return generate_bundle(
        **({"service": "shm-webhook", "namespace": "tools", "now": NOW} | overrides)
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda: _generate(service="Shm-Webhook"),
            "service 'Shm-Webhook' is not a DNS-1123 label; use at most 63 lowercase letters",
            id="an upper-case service name is refused with the accepted form",
        ),
        pytest.param(
            lambda: _generate(service="shm_webhook"),
            "service 'shm_webhook' is not a DNS-1123 label",
            id="an underscore in the service name is refused",
        ),
        pytest.param(
            lambda: _generate(service="-shm"),
            "service '-shm' is not a DNS-1123 label",
            id="a service name starting with a dash is refused",
        ),
        pytest.param(
            lambda: _generate(service=""),
            "service '' is not a DNS-1123 label",
            id="an empty service name is refused",
        ),
        pytest.param(
            lambda: _generate(service="a" * 64),
            "is not a DNS-1123 label",
            id="a service name longer than 63 characters is refused",
        ),
        pytest.param(
            lambda: _generate(namespace="tools.prod"),
            "namespace 'tools.prod' is not a DNS-1123 label",
            id="a namespace with a dot is refused",
        ),
        pytest.param(
            lambda: _generate(extra_names=["bad_name.example.com"]),
            "extra name 'bad_name.example.com' is neither a DNS name nor an IP address",
            id="an extra name that is neither a DNS name nor an address is refused",
        ),
        pytest.param(
            lambda: _generate(cert_validity=timedelta(0)),
            "cert_validity must be positive",
            id="a zero serving certificate validity is refused",
        ),
        pytest.param(
            lambda: _generate(ca_validity=timedelta(days=-1)),
            "ca_validity must be positive",
            id="a negative CA validity is refused",
        ),
        pytest.param(
            lambda: _generate(now=datetime(2026, 1, 1)),
            "now must be timezone-aware",
            id="a naive current time is refused rather than read as UTC",
        ),
        pytest.param(
            lambda: _generate(key_type="dsa"),
            "key_type 'dsa' is not supported",
            id="an unknown key type is refused",
        ),
        pytest.param(
            lambda: _issue_from(_bundle("ecdsa"), dns_names=[]),
            "dns_names is empty",
            id="a serving certificate without names is refused",
        ),
        pytest.param(
            lambda: _issue_from(_bundle("ecdsa"), dns_names=["Upper.example.com"]),
            "dns_names entry 'Upper.example.com' is neither a DNS name nor an IP address",
            id="a serving certificate name that is not a DNS name is refused",
        ),
        pytest.param(
            lambda: _issue_from(_bundle("ecdsa"), validity=timedelta(seconds=-1)),
            "validity must be positive",
            id="a negative renewal validity is refused",
        ),
        pytest.param(
            lambda: _issue_from(_bundle("ecdsa"), ca_key_pem=_bundle("rsa").ca_key_pem),
            "ca_key_pem does not match ca_cert_pem",
            id="a CA key that does not belong to the CA certificate is refused",
        ),
        pytest.param(
            lambda: _issue_from(_bundle("ecdsa"), ca_cert_pem=b"not a certificate"),
            "ca_cert_pem is not a PEM certificate",
            id="a CA certificate that is not PEM is refused",
        ),
        pytest.param(
            lambda: _issue_from(_bundle("ecdsa"), now=NOW + timedelta(days=5 * 365)),
            "ca_cert_pem expired at 2030-12-31T00:00:00+00:00",
            id="an expired CA cannot issue",
        ),
    ],
)
def test_bad_input_raises_value_error_naming_the_field(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_serving_certificate_names_the_service_in_every_form(key_type: KeyType) -> None:
    cert, _ = _certs(key_type)
    san = _ext(cert, x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == [
        "shm-webhook",
        "shm-webhook.tools",
        "shm-webhook.tools.svc",
        "shm-webhook.tools.svc.cluster.local",
        "webhook.example.com",
    ]
    assert san.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "shm-webhook.tools.svc"
    )
    assert not san.critical


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_serving_certificate_is_for_servers_only(key_type: KeyType) -> None:
    cert, ca = _certs(key_type)
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca is False
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.key_encipherment is (key_type == "rsa")
    assert not usage.value.key_cert_sign
    assert not usage.value.crl_sign
    authority = _ext(cert, x509.AuthorityKeyIdentifier).value
    assert authority.key_identifier == _ext(ca, x509.SubjectKeyIdentifier).value.digest


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_ca_can_only_sign_certificates_directly(key_type: KeyType) -> None:
    _, ca = _certs(key_type)
    constraints = _ext(ca, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value == x509.BasicConstraints(ca=True, path_length=0)
    usage = _ext(ca, x509.KeyUsage)
    assert usage.critical
    assert (usage.value.key_cert_sign, usage.value.crl_sign) == (True, True)
    assert not usage.value.digital_signature
    assert _ext(ca, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        ca.public_key()
    )
    assert ca.subject == ca.issuer
    ca.verify_directly_issued_by(ca)


@pytest.mark.parametrize(
    ("make", "not_before", "not_after"),
    [
        pytest.param(
            lambda: _certs("ecdsa")[0],
            NOW - timedelta(minutes=5),
            NOW + timedelta(days=365),
            id="the serving certificate is valid for a year from five minutes ago",
        ),
        pytest.param(
            lambda: _certs("ecdsa")[1],
            NOW - timedelta(minutes=5),
            NOW + timedelta(days=5 * 365),
            id="the CA is valid for five years from five minutes ago",
        ),
        pytest.param(
            lambda: x509.load_pem_x509_certificate(
                _generate(
                    cert_validity=timedelta(days=800), ca_validity=timedelta(days=3650)
                ).cert_pem
            ),
            NOW - timedelta(minutes=5),
            NOW + timedelta(days=800),
            id="the default lifetimes are defaults, not caps",
        ),
        pytest.param(
            lambda: x509.load_pem_x509_certificate(
                _generate(
                    cert_validity=timedelta(days=400), ca_validity=timedelta(days=30)
                ).cert_pem
            ),
            NOW - timedelta(minutes=5),
            NOW + timedelta(days=30),
            id="a serving certificate never outlives its CA",
        ),
        pytest.param(
            lambda: x509.load_pem_x509_certificate(
                _issue_from(_bundle("ecdsa"), now=NOW + timedelta(days=5 * 365 - 10))[0]
            ),
            NOW + timedelta(days=5 * 365 - 10) - timedelta(minutes=5),
            NOW + timedelta(days=5 * 365),
            id="a renewal from a CA near its end stops when the CA does",
        ),
    ],
)
def test_validity_window(
    make: Callable[[], x509.Certificate], not_before: datetime, not_after: datetime
) -> None:
    cert = make()
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (not_before, not_after)


@pytest.mark.parametrize(
    ("key_type", "key_class", "size"),
    [
        pytest.param("ecdsa", ec.EllipticCurvePrivateKey, 256, id="ECDSA keys are P-256"),
        pytest.param("rsa", rsa.RSAPrivateKey, 2048, id="RSA keys are 2048-bit"),
    ],
)
def test_keys_are_unencrypted_pkcs8_of_the_requested_type(
    key_type: KeyType, key_class: type[Any], size: int
) -> None:
    bundle = _bundle(key_type)
    cert, ca = _certs(key_type)
    for key_pem, owner in ((bundle.key_pem, cert), (bundle.ca_key_pem, ca)):
        assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
        key = serialization.load_pem_private_key(key_pem, password=None)
        assert isinstance(key, key_class)
        assert key.key_size == size
        assert key.public_key() == owner.public_key()
    public = cert.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        assert public.curve.name == "secp256r1"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            DNSName("shm-webhook.tools.svc"), id="the chain verifies for the service name"
        ),
        pytest.param(
            DNSName("shm-webhook.tools.svc.cluster.local"),
            id="the chain verifies for the fully qualified service name",
        ),
        pytest.param(
            IPAddress(ipaddress.ip_address("10.0.0.1")),
            id="the chain verifies for an extra address",
        ),
    ],
)
@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_chain_verifies(key_type: KeyType, name: DNSName | IPAddress) -> None:
    cert, ca = _certs(key_type)
    cert.verify_directly_issued_by(ca)
    # Full RFC 5280 path validation, EKU and name included, as a TLS client would do it.
    verifier = PolicyBuilder().store(Store([ca])).time(NOW).build_server_verifier(name)
    assert verifier.verify(cert, []) == [cert, ca]


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_openssl_accepts_the_ca_and_the_key_pair(tmp_path: Path, key_type: KeyType) -> None:
    bundle = _bundle(key_type)
    ssl.create_default_context(cadata=bundle.ca_cert_pem.decode())
    (tmp_path / "tls.crt").write_bytes(bundle.cert_pem)
    (tmp_path / "tls.key").write_bytes(bundle.key_pem)
    # load_cert_chain fails unless the key is the certificate's.
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
        tmp_path / "tls.crt", tmp_path / "tls.key"
    )


def test_renewal_from_the_same_ca_gives_a_new_key_and_serial() -> None:
    bundle = _bundle("ecdsa")
    cert_pem, key_pem = _issue_from(bundle, now=NOW + timedelta(days=300))
    renewed = x509.load_pem_x509_certificate(cert_pem)
    cert, ca = _certs("ecdsa")
    renewed.verify_directly_issued_by(ca)
    assert renewed.serial_number != cert.serial_number
    assert key_pem != bundle.key_pem
    assert renewed.issuer == ca.subject


def test_names_too_long_for_a_common_name_leave_the_san_as_the_identity() -> None:
    service, namespace = "s" * 63, "n" * 63
    bundle = _generate(service=service, namespace=namespace)
    cert = x509.load_pem_x509_certificate(bundle.cert_pem)
    ca = x509.load_pem_x509_certificate(bundle.ca_cert_pem)
    assert cert.subject == x509.Name([])
    assert _ext(cert, x509.SubjectAlternativeName).critical
    name = DNSName(f"{service}.{namespace}.svc")
    PolicyBuilder().store(Store([ca])).time(NOW).build_server_verifier(name).verify(cert, [])


def test_successive_cas_have_distinct_subjects() -> None:
    first = x509.load_pem_x509_certificate(_generate().ca_cert_pem)
    second = x509.load_pem_x509_certificate(_generate(now=NOW + timedelta(days=1)).ca_cert_pem)
    assert first.subject != second.subject
