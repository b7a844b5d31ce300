"""What `certs check` says about a certificate, and fetching the one an endpoint serves.

Owns: `describe` (the `key: value` report of a certificate, its SHA-256 fingerprint included,
and whether it is good for more than a threshold; the current time is a parameter),
`load_certificate` (the first certificate of a PEM text), `parse_endpoint` (HOST:PORT) and
`fetch_served` (the certificate an endpoint serves over TLS, verified against a CA file when one
is given, fetched unverified otherwise or when verification fails, so it can still be
reported).

Raises ValueError for unreadable input and OSError when an endpoint cannot be reached; never
exits. Must not import kubernetes or anything in `webhook`.
"""

from __future__ import annotations

import math
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from certs.trust import fingerprint

_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Served:
    """The certificate an endpoint served and, when a CA file was given, whether it verified."""

    cert: x509.Certificate
    # None: no CA file, nothing verified. Else "" when verified, or why verification failed.
    problem: str | None


def describe(
    cert: x509.Certificate, *, now: datetime, threshold: timedelta
) -> tuple[bool, list[tuple[str, str]]]:
    """(True when still valid for `threshold` or more, the report as (key, value) pairs)."""
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    left = not_after - now
    if left <= timedelta(0):
        good, status = False, f"expired at {not_after.isoformat()}"
    elif now < not_before:
        good, status = False, f"not valid before {not_before.isoformat()}"
    elif left < threshold:
        good, status = False, f"expires within {_days(threshold)}"
    else:
        good, status = True, f"valid for {_days(threshold)} or more"
    report = [
        ("subject", cert.subject.rfc4514_string() or "(empty)"),
        ("sans", ", ".join(_sans(cert)) or "(none)"),
        ("issuer", cert.issuer.rfc4514_string() or "(empty)"),
        ("serial", f"{cert.serial_number:x}"),
        # What `certs bootstrap --distrust-ca` takes, and what its log names CAs by.
        ("sha256", fingerprint(cert)),
        ("notBefore", not_before.isoformat()),
        ("notAfter", not_after.isoformat()),
        # Whole days still ahead: 0 on the last day, negative once expired.
        ("daysLeft", str(math.floor(left / _DAY))),
        ("status", status),
    ]
    return good, report


def load_certificate(pem: bytes, *, source: str) -> x509.Certificate:
    """The first certificate of `pem`; ValueError naming `source` if there is none."""
    try:
        return x509.load_pem_x509_certificates(pem)[0]
    except ValueError:
        raise ValueError(f"{source} does not hold a PEM certificate") from None


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """(host, port) of `HOST:PORT` or `[IPv6]:PORT`."""
    host, _, port = endpoint.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 2**16:
        raise ValueError(
            f"--endpoint {endpoint!r} is not HOST:PORT; write e.g. "
            "shm-webhook.shm-system.svc:443, 127.0.0.1:8443 or [::1]:8443"
        )
    return host, int(port)


def fetch_served(
    *, host: str, port: int, server_name: str, ca_file: Path | None, timeout: float = 10.0
) -> Served:
    """The certificate served at host:port to a client asking for `server_name`.

    With `ca_file` the handshake verifies chain and name as the kube-apiserver does; when that
    fails the certificate is fetched again unverified, so it can still be described.
    """
    if ca_file is None:
        return Served(
            _handshake(host, port, name=server_name, context=_unverified(), timeout=timeout), None
        )
    try:
        verifying = ssl.create_default_context(cafile=str(ca_file))
    except ssl.SSLError:
        raise ValueError(f"--ca-file {ca_file} does not hold PEM CA certificates") from None
    try:
        return Served(
            _handshake(host, port, name=server_name, context=verifying, timeout=timeout), ""
        )
    except ssl.SSLCertVerificationError as error:
        problem = error.verify_message or str(error)
    served = _handshake(host, port, name=server_name, context=_unverified(), timeout=timeout)
    return Served(served, problem)


def _handshake(
    host: str, port: int, *, name: str, context: ssl.SSLContext, timeout: float
) -> x509.Certificate:
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        context.wrap_socket(sock, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:  # only when no handshake happened, which wrap_socket does not allow
        raise OSError(f"{host}:{port} presented no certificate")
    return x509.load_der_x509_certificate(der)


def _unverified() -> ssl.SSLContext:
    # A report on a certificate nobody trusts yet (or any more) is the point of `check`.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return [*san.get_values_for_type(x509.DNSName), *ips]


def _days(span: timedelta) -> str:
    days = span / _DAY
    return f"{days:g} day" if days == 1 else f"{days:g} days"
