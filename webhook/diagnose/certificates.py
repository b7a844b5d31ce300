"""Would the kube-apiserver accept this serving certificate? The checks of one certificate
against the caBundles of the webhooks that call it, the name it is dialled by and the clock.

Owns: `certificate_checks` (per distinct caBundle: does a CA of it sign the certificate, and
is that CA valid; then: does the certificate name the host the kube-apiserver dials, and how
many days it has left against a threshold) and `names_host` (Go's `VerifyHostname` rules: a
DNS name matches a DNS SAN exactly or a leftmost `*.` wildcard of one label, an IP address
matches an IP SAN; the common name is ignored, as Go does since 1.15). Pure: the current time
is a parameter; no I/O.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509

from certs.renewal import issued_by, subject
from certs.trust import cas_of, fingerprint
from webhook.diagnose.report import Check, failed, passed

_DAY = timedelta(days=1)


def certificate_checks(
    cert: x509.Certificate,
    *,
    holder: str,
    bundles: Sequence[tuple[str, bytes]],
    host: str,
    now: datetime,
    threshold_days: int,
    republish: str,
    renew: str,
) -> list[Check]:
    """The checks of a certificate, `holder` naming it ("certificate of Secret ns/name",
    "certificate served at host:port"): one per distinct caBundle of `bundles` ((webhook name,
    caBundle PEM) pairs), then its name and dates.
    `republish` and `renew` are the hints for a caBundle and a certificate that will not do."""
    checks = [
        _trust(cert, holder=holder, webhooks=names, bundle=bundle, now=now, hint=republish)
        for bundle, names in _distinct(bundles).items()
    ]
    checks.append(
        _validity(cert, holder=holder, host=host, now=now, days=threshold_days, hint=renew)
    )
    return checks


def names_host(cert: x509.Certificate, host: str) -> bool:
    """Whether the certificate is valid for `host` (a DNS name or an IP address)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        wanted = host.lower().rstrip(".")
        return any(
            _dns_match(name.lower(), wanted) for name in san.get_values_for_type(x509.DNSName)
        )
    return address in san.get_values_for_type(x509.IPAddress)


def sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [
        *san.get_values_for_type(x509.DNSName),
        *map(str, san.get_values_for_type(x509.IPAddress)),
    ]


def days_left(cert: x509.Certificate, now: datetime) -> int:
    """Whole days still ahead: 0 on the last day, negative once expired."""
    return math.floor((cert.not_valid_after_utc - now) / _DAY)


def _dns_match(pattern: str, host: str) -> bool:
    if pattern == host:
        return True
    if not pattern.startswith("*."):
        return False
    first, _, rest = host.partition(".")
    return bool(first) and rest == pattern[2:]


def _distinct(bundles: Sequence[tuple[str, bytes]]) -> dict[bytes, list[str]]:
    grouped: dict[bytes, list[str]] = {}
    for webhook, bundle in bundles:
        grouped.setdefault(bundle, []).append(webhook)
    return grouped


def _trust(
    cert: x509.Certificate,
    *,
    holder: str,
    webhooks: list[str],
    bundle: bytes,
    now: datetime,
    hint: str,
) -> Check:
    name = f"caBundle of {', '.join(webhooks)}"
    cas = cas_of(bundle)
    if not cas:
        return failed(name, "holds no readable PEM certificate", hint=hint)
    signers = [ca for ca in cas if issued_by(cert, ca)]
    held = "; ".join(subject(ca) for ca in cas)
    if not signers:
        return failed(
            name,
            f"does not verify the {holder}: it was issued by "
            f"{cert.issuer.rfc4514_string() or '(empty)'}, and the caBundle holds {held}",
            hint=hint,
        )
    live = [ca for ca in signers if ca.not_valid_before_utc <= now < ca.not_valid_after_utc]
    if not live:
        return failed(
            name,
            f"the CA that signed the {holder}, {subject(signers[0])}, is not valid"
            f" now (notBefore {signers[0].not_valid_before_utc.isoformat()}, notAfter"
            f" {signers[0].not_valid_after_utc.isoformat()})",
            hint=hint,
        )
    ca = live[0]
    count = f"{len(cas)} CA{'' if len(cas) == 1 else 's'}"
    return passed(
        name,
        f"verifies the {holder} (signed by {subject(ca)}, sha256"
        f" {fingerprint(ca)[:16]}…; the bundle holds {count})",
    )


def _validity(
    cert: x509.Certificate, *, holder: str, host: str, now: datetime, days: int, hint: str
) -> Check:
    name = holder
    problems = []
    if not names_host(cert, host):
        problems.append(f"is not for {host}: it names {', '.join(sans(cert)) or 'nothing'}")
    left = days_left(cert, now)
    until = cert.not_valid_after_utc.isoformat()
    if cert.not_valid_after_utc <= now:
        problems.append(f"expired at {until}")
    elif now < cert.not_valid_before_utc:
        problems.append(f"not valid before {cert.not_valid_before_utc.isoformat()}")
    elif left < days:
        problems.append(f"expires in {left} days (at {until}), within the {days}-day threshold")
    if problems:
        return failed(name, "; ".join(problems), hint=hint)
    return passed(name, f"for {host}, {left} days left (until {until})")
