"""Which CAs the webhook's caBundle holds: a new CA is trusted before anything serves a
certificate it signed, and an old one only while something may still serve one.

Owns: `bundle_after_rotation` (the bundle published around a Secret write: the Secret's CA
first, every other unexpired CA kept), `bundle_after_serving` (the bundle once the Secret holds
its CA, given what each endpoint of the webhook Service serves), the times that bound an old
CA's stay (`SETTLE`, `OVERLAP`), and the SHA-256 fingerprints by which a person names a CA to
distrust (`fingerprint`, `parse_fingerprint`).

An old CA is dropped once no endpoint serves a certificate it signed, but never within
`SETTLE` of the Secret getting its current CA: the kubelet takes up to its sync period (1
minute by default) to project a changed Secret into the pods, and a pod not yet listed as an
endpoint may hold the old files until then. When some endpoint cannot be checked the old CA is
kept, but not beyond `OVERLAP` after the Secret got its CA. An endpoint seen serving a
certificate the old CA signed always keeps it: dropping it would fail that pod's admissions.

Pure: no file, network or cluster I/O, and the current time is a parameter. Must not import
kubernetes, fastapi, uvicorn or anything in `webhook` but `webhook.checks`; what the endpoints
serve is found by `certs.endpoints`, and the bundle is patched by `certs.cabundle`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from certs.generate import CLOCK_SKEW
from certs.renewal import check_now, issued_by, subject
from webhook.checks import PEM_CERTIFICATE

# The kubelet's default sync period (1 minute), by which a changed Secret reaches every pod's
# volume, twice over; the server reloads its files within a second of that.
SETTLE = timedelta(minutes=2)
# The backstop when endpoints cannot be checked (no right to list them, a NetworkPolicy in the
# way): thirty times SETTLE, and short enough that the renewal CronJob's next daily run after a
# rotation drops the old CA.
OVERLAP = timedelta(hours=1)

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Answer:
    """What one endpoint of the webhook Service served: a certificate, or why there is none
    (unreachable, or the endpoints could not be listed at all)."""

    endpoint: str
    cert: x509.Certificate | None
    problem: str = ""


@dataclass(frozen=True)
class Verdict:
    """Whether an old CA stays in the bundle, and why."""

    ca: x509.Certificate
    kept: bool
    reason: str

    def __str__(self) -> str:
        return f"{'kept' if self.kept else 'dropped'} CA {ca_name(self.ca)}: {self.reason}"


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 of the certificate's DER, in lowercase hex (`openssl x509 -fingerprint
    -sha256` prints the same digits, in uppercase with colons)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def parse_fingerprint(text: str) -> str | None:
    """The fingerprint `text` spells (64 hex digits; colons, case and a `sha256:` or
    `SHA256 Fingerprint=` prefix allowed) in `fingerprint`'s form; None if it spells none."""
    digits = text.strip().lower().replace(":", "")
    for prefix in ("sha256fingerprint=", "sha256 fingerprint=", "sha256"):
        digits = digits.removeprefix(prefix)
    return digits if _FINGERPRINT.fullmatch(digits) else None


def ca_name(ca: x509.Certificate) -> str:
    """The CA as the bootstrap log names it: its subject and fingerprint."""
    return f"{subject(ca)} (sha256 {fingerprint(ca)})"


def cas_of(bundle_pem: bytes) -> list[x509.Certificate]:
    """The readable certificates of a bundle, in order."""
    # Block by block, so one damaged entry (a hand edit) does not cost the CAs around it.
    readable: list[x509.Certificate] = []
    for block in PEM_CERTIFICATE.finditer(bundle_pem):
        try:
            readable.append(x509.load_pem_x509_certificate(block.group(0)))
        except ValueError:
            continue
    return readable


def ca_since(ca_pem: bytes, *, written_at: datetime | None) -> datetime:
    """When the Secret got the CA of `ca_pem`: `written_at` when this run wrote it, else when
    the CA was made (its notBefore is backdated by `CLOCK_SKEW`), whichever is later."""
    made = x509.load_pem_x509_certificate(ca_pem).not_valid_before_utc + CLOCK_SKEW
    return made if written_at is None else max(made, written_at)


def bundle_after_rotation(*, current_bundle_pem: bytes, new_ca_pem: bytes, now: datetime) -> bytes:
    """The caBundle to publish: `new_ca_pem`, then each other CA of the current bundle not yet
    expired at `now`, each once.

    Keeping the old CA lets the kube-apiserver trust both the serving certificate still in the
    pods and the one they are about to load; `bundle_after_serving` decides when it goes. An
    unreadable entry of the current bundle is dropped; an unreadable `new_ca_pem` raises
    ValueError.
    """
    check_now(now)
    new = _cas(new_ca_pem, name="new_ca_pem")
    kept = [ca for ca in cas_of(current_bundle_pem) if ca.not_valid_after_utc > now]
    return _pem(_unique([*new, *kept]))


def bundle_after_serving(
    *,
    current_bundle_pem: bytes,
    ca_pem: bytes,
    answers: Sequence[Answer],
    since: datetime,
    now: datetime,
) -> tuple[bytes, list[Verdict]]:
    """The caBundle once the Secret holds `ca_pem` (since `since`), given what the endpoints
    answered, and a verdict on each other CA of the current bundle (see the module docstring).

    `ca_pem` comes first and always stays; an unreadable `ca_pem` raises ValueError.
    """
    check_now(now)
    current = _cas(ca_pem, name="ca_pem")
    kept: list[x509.Certificate] = []
    verdicts = []
    for ca in _unique(cas_of(current_bundle_pem)):
        if ca in current:
            continue
        verdict = _verdict(ca, answers=answers, since=since, now=now)
        verdicts.append(verdict)
        if verdict.kept:
            kept.append(ca)
    return _pem(_unique([*current, *kept])), verdicts


def _verdict(
    ca: x509.Certificate, *, answers: Sequence[Answer], since: datetime, now: datetime
) -> Verdict:
    if ca.not_valid_after_utc <= now:
        return Verdict(ca, False, f"expired at {_when(ca.not_valid_after_utc)}")
    serving = [a.endpoint for a in answers if a.cert is not None and issued_by(a.cert, ca)]
    served = (
        f"{', '.join(serving)} still serve{'s' if len(serving) == 1 else ''} a certificate it "
        "signed"
    )
    unknown = "; ".join(f"{a.endpoint}: {a.problem}" for a in answers if a.cert is None)
    seen = (
        f"; {served}" if serving else f"; cannot tell what is served ({unknown})" if unknown else ""
    )
    if now < since + SETTLE:
        return Verdict(
            ca,
            True,
            f"the Secret got a new CA at {_when(since)} and pods may serve the old one's "
            f"certificate until the kubelet updates their files: kept until {_when(since + SETTLE)}"
            f" at least{seen}",
        )
    if serving:
        return Verdict(
            ca,
            True,
            f"{served}, {_span(SETTLE)} after the Secret got a new CA: restart what does not "
            "reload",
        )
    if unknown and now < since + OVERLAP:
        return Verdict(
            ca, True, f"cannot tell what is served ({unknown}): kept until {_when(since + OVERLAP)}"
        )
    if unknown:
        return Verdict(
            ca,
            False,
            f"cannot tell what is served ({unknown}), but the Secret got its CA more than "
            f"{_span(OVERLAP)} ago",
        )
    checked = f"none of {len(answers)} endpoints serves" if answers else "no endpoint serves"
    return Verdict(ca, False, f"{checked} a certificate it signed")


def _span(span: timedelta) -> str:
    minutes = round(span / timedelta(minutes=1))
    return f"{minutes // 60} hours" if minutes % 60 == 0 and minutes > 60 else f"{minutes} minutes"


def _when(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def _cas(pem: bytes, *, name: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as error:
        raise ValueError(f"{name} is not a PEM certificate: {error}") from None


def _unique(cas: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    return list({ca.public_bytes(serialization.Encoding.DER): ca for ca in cas}.values())


def _pem(cas: Sequence[x509.Certificate]) -> bytes:
    return b"".join(ca.public_bytes(serialization.Encoding.PEM) for ca in cas)
