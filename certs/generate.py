"""Certificates for the webhook's HTTPS endpoint: a private CA and serving certificates it signs.

Owns: the names a serving certificate carries (`dns_names`), a fresh CA plus serving certificate
(`generate_bundle`) and a serving certificate from an existing CA (`issue_serving_cert`, for
renewal). Key pairs, extensions and validity windows are decided here and nowhere else.

Pure: no file, network or cluster I/O, and the current time is a parameter (tests pin it). Must
not import kubernetes, fastapi, uvicorn or anything in `webhook` but the shared name checks of
`webhook.checks`; writing the result to disk is `certs.files`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webhook.checks import is_dns_label, is_dns_name

KeyType = Literal["ecdsa", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

DEFAULT_CERT_VALIDITY = timedelta(days=365)
DEFAULT_CA_VALIDITY = timedelta(days=5 * 365)
# Backdating notBefore lets a peer whose clock runs a little behind ours accept a fresh cert.
CLOCK_SKEW = timedelta(minutes=5)

_LABEL_FORM = (
    "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or "
    "digit (e.g. shm-webhook)"
)
# X.509 caps a commonName at 64 characters (RFC 5280 ub-common-name).
_MAX_COMMON_NAME = 64

_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class Bundle:
    """PEM-encoded CA certificate and key, and the serving certificate and key it signed."""

    ca_cert_pem: bytes
    ca_key_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def dns_names(*, service: str, namespace: str, extra: Sequence[str] = ()) -> list[str]:
    """The names under which the Service is reached in-cluster, then `extra`, without repeats."""
    _check_label("service", service)
    _check_label("namespace", namespace)
    for name in extra:
        _general_name(name, field="extra name")
    svc = f"{service}.{namespace}.svc"
    names = [service, f"{service}.{namespace}", svc, f"{svc}.cluster.local", *extra]
    return list(dict.fromkeys(names))


def generate_bundle(
    *,
    service: str,
    namespace: str,
    now: datetime,
    extra_names: Sequence[str] = (),
    cert_validity: timedelta = DEFAULT_CERT_VALIDITY,
    ca_validity: timedelta = DEFAULT_CA_VALIDITY,
    key_type: KeyType = "ecdsa",
) -> Bundle:
    """A new CA and a serving certificate for `service` in `namespace`, valid from `now`."""
    names = dns_names(service=service, namespace=namespace, extra=extra_names)
    _check_now(now)
    _check_validity("cert_validity", cert_validity)
    _check_validity("ca_validity", ca_validity)
    ca_key = _new_key(key_type)
    ca_cert = _self_signed_ca(ca_key, now=now, validity=ca_validity)
    ca_cert_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    ca_key_pem = _key_pem(ca_key)
    cert_pem, key_pem = issue_serving_cert(
        ca_cert_pem=ca_cert_pem,
        ca_key_pem=ca_key_pem,
        dns_names=names,
        now=now,
        validity=cert_validity,
        key_type=key_type,
    )
    return Bundle(
        ca_cert_pem=ca_cert_pem, ca_key_pem=ca_key_pem, cert_pem=cert_pem, key_pem=key_pem
    )


def issue_serving_cert(
    *,
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    dns_names: Sequence[str],
    now: datetime,
    validity: timedelta = DEFAULT_CERT_VALIDITY,
    key_type: KeyType = "ecdsa",
) -> tuple[bytes, bytes]:
    """(cert_pem, key_pem): a serverAuth certificate for `dns_names` signed by the given CA.

    It never outlives the CA: notAfter is `now + validity` or the CA's notAfter if earlier.
    """
    sans = [_general_name(name, field="dns_names entry") for name in dns_names]
    if not sans:
        raise ValueError("dns_names is empty; give at least one name, e.g. from dns_names()")
    _check_now(now)
    _check_validity("validity", validity)
    ca_cert, ca_key = _load_ca(ca_cert_pem, ca_key_pem, now=now)
    key = _new_key(key_type)
    subject = _serving_subject(dns_names)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_serving_key_usage(key_type), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # RFC 5280 §4.2.1.6: with an empty subject the SAN is the only identity, so critical.
        .add_extension(x509.SubjectAlternativeName(sans), critical=not subject)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_identifier(ca_cert, ca_key), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _self_signed_ca(key: PrivateKey, *, now: datetime, validity: timedelta) -> x509.Certificate:
    # The timestamp keeps successive CAs' subjects distinct, so a bundle holding the old and
    # the new CA during a rotation never has two issuers with the same name.
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"shm-webhook-ca@{int(now.timestamp())}")]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _serving_key_usage(key_type: KeyType) -> x509.KeyUsage:
    # RSA key exchange (TLS 1.2 without ECDHE) encrypts the premaster secret to the cert's key.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_type == "rsa",
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _serving_subject(names: Sequence[str]) -> x509.Name:
    """CN = the `S.N.svc` name when there is one (what people grep for), else the first name."""
    cn = next((name for name in names if name.endswith(".svc")), names[0])
    if len(cn) > _MAX_COMMON_NAME:
        return x509.Name([])
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _authority_key_identifier(
    ca_cert: x509.Certificate, ca_key: PrivateKey
) -> x509.AuthorityKeyIdentifier:
    # Chain builders match AKI to the issuer's SKI byte for byte, and a CA made elsewhere may
    # have derived its SKI differently, so copy it rather than recompute it.
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _load_ca(
    ca_cert_pem: bytes, ca_key_pem: bytes, *, now: datetime
) -> tuple[x509.Certificate, PrivateKey]:
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    except ValueError as error:
        raise ValueError(f"ca_cert_pem is not a PEM certificate: {error}") from None
    try:
        ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"ca_key_pem is not an unencrypted PEM private key: {error}") from None
    if not isinstance(ca_key, PrivateKey):
        raise ValueError("ca_key_pem is not an ECDSA or RSA private key")
    if ca_key.public_key() != ca_cert.public_key():
        raise ValueError("ca_key_pem does not match ca_cert_pem; give the key the CA was made with")
    if ca_cert.not_valid_after_utc <= now:
        raise ValueError(
            f"ca_cert_pem expired at {ca_cert.not_valid_after_utc.isoformat()}; "
            "generate a new CA with generate_bundle()"
        )
    return ca_cert, ca_key


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f'key_type {key_type!r} is not supported; write "ecdsa" or "rsa"')


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _general_name(name: str, *, field: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if is_dns_name(name):
        return x509.DNSName(name)
    raise ValueError(
        f"{field} {name!r} is neither a DNS name nor an IP address; write a lowercase DNS-1123 "
        "subdomain (e.g. webhook.example.com) or an address (e.g. 10.0.0.1, ::1)"
    )


def _check_label(field: str, value: str) -> None:
    if not is_dns_label(value):
        raise ValueError(f"{field} {value!r} is not a DNS-1123 label; {_LABEL_FORM}")


def _check_validity(field: str, validity: timedelta) -> None:
    if validity <= timedelta(0):
        raise ValueError(f"{field} must be positive, got {validity}; e.g. timedelta(days=365)")


def _check_now(now: datetime) -> None:
    # A naive datetime would be read as UTC by cryptography and silently shift the validity
    # window by the local UTC offset.
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware, e.g. datetime.now(timezone.utc)")
