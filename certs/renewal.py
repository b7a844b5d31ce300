"""When a serving certificate or its CA must be replaced.

Owns: `needs_renewal` (the serving certificate) and `ca_needs_rotation` (the CA), each
answering with a reason a person can act on, so `certs check` and the bootstrap log say why
something happened; and the certificate facts both use and `certs.trust` shares: `issued_by`,
`subject`, `is_ca`, `check_now`.

Pure: no file, network or cluster I/O, and the current time is a parameter (tests pin it). Must
not import kubernetes, fastapi, uvicorn or anything in `webhook`; making certificates is
`certs.generate`, which CAs the caBundle holds is `certs.trust`, writing them to the cluster is
`certs.publish`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

# Renewing once two thirds of the lifetime has passed leaves a third for retries: for the
# default one-year certificate that is four months of failed CronJob runs before an outage.
DEFAULT_RENEW_FRACTION = 2 / 3


def needs_renewal(
    *,
    cert_pem: bytes,
    key_pem: bytes,
    ca_pem: bytes,
    dns_names: Sequence[str],
    now: datetime,
    renew_fraction: float = DEFAULT_RENEW_FRACTION,
) -> tuple[bool, str]:
    """(True, why) when the serving certificate must be re-issued, else (False, "valid until …").

    It must be re-issued when it is unreadable, outside its validity period, past
    `renew_fraction` of its lifetime, not signed by (one of) the CAs in `ca_pem`, not the
    certificate of `key_pem`, or missing one of `dns_names` (DNS names or IP addresses).
    """
    _check_arguments(now=now, renew_fraction=renew_fraction)
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return True, "the certificate (tls.crt) is not a PEM certificate"
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return True, "the key (tls.key) is not an unencrypted PEM private key"
    try:
        cas = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        return True, "the CA (ca.crt) is not a PEM certificate"
    if due := _time_due(cert, label="the certificate", now=now, renew_fraction=renew_fraction):
        return True, due
    if not any(issued_by(cert, ca) for ca in cas):
        return True, f"the certificate was not signed by the CA {subject(cas[0])}"
    if key.public_key() != cert.public_key():
        return True, "the key (tls.key) does not belong to the certificate (tls.crt)"
    if missing := [name for name in dns_names if not _names(cert, name)]:
        return True, f"the certificate does not name {', '.join(missing)}"
    return False, _valid_until(cert, renew_fraction=renew_fraction)


def ca_needs_rotation(
    ca_pem: bytes, *, now: datetime, renew_fraction: float = DEFAULT_RENEW_FRACTION
) -> tuple[bool, str]:
    """(True, why) when the CA must be replaced by a new one, else (False, "valid until …")."""
    _check_arguments(now=now, renew_fraction=renew_fraction)
    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError:
        return True, "the CA (ca.crt) is not a PEM certificate"
    if not is_ca(ca):
        return True, f"{subject(ca)} is not a CA certificate (basicConstraints CA:FALSE)"
    if due := _time_due(ca, label="the CA", now=now, renew_fraction=renew_fraction):
        return True, due
    return False, _valid_until(ca, renew_fraction=renew_fraction)


def _time_due(
    cert: x509.Certificate, *, label: str, now: datetime, renew_fraction: float
) -> str | None:
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now >= not_after:
        return f"{label} expired at {not_after.isoformat()}"
    if now < not_before:
        return f"{label} is not valid before {not_before.isoformat()}"
    renew_at = _renew_at(cert, renew_fraction=renew_fraction)
    if now > renew_at:
        return (
            f"{label} is due for renewal since {renew_at.isoformat()} "
            f"(expires {not_after.isoformat()})"
        )
    return None


def _renew_at(cert: x509.Certificate, *, renew_fraction: float) -> datetime:
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_before_utc + lifetime * renew_fraction


def _valid_until(cert: x509.Certificate, *, renew_fraction: float) -> str:
    renew_at = _renew_at(cert, renew_fraction=renew_fraction)
    return (
        f"valid until {cert.not_valid_after_utc.isoformat()} "
        f"(renewal due after {renew_at.isoformat()})"
    )


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether `ca` signed `cert` (its issuer name matches and the signature verifies)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _names(cert: x509.Certificate, name: str) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        return ipaddress.ip_address(name) in san.get_values_for_type(x509.IPAddress)
    except ValueError:
        # DNS names compare case-insensitively (RFC 4343).
        return name.lower() in (dns.lower() for dns in san.get_values_for_type(x509.DNSName))


def is_ca(cert: x509.Certificate) -> bool:
    """Whether basicConstraints says CA:TRUE."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def subject(cert: x509.Certificate) -> str:
    """The subject as an RFC 4514 string, or a note that it is empty."""
    return cert.subject.rfc4514_string() or "(empty subject)"


def check_now(now: datetime) -> None:
    """ValueError unless `now` is timezone-aware."""
    # A naive datetime would compare as an error against cryptography's aware UTC times.
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware, e.g. datetime.now(timezone.utc)")


def _check_arguments(*, now: datetime, renew_fraction: float) -> None:
    check_now(now)
    if not 0 < renew_fraction <= 1:
        raise ValueError(f"renew_fraction must be in (0, 1], got {renew_fraction}; e.g. 2/3")
