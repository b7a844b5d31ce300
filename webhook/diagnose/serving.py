"""What the webhook serves, dialled as the kube-apiserver dials it: the certificate of every
endpoint of its Service, or of its URL, checked against the caBundles that must verify it.

Owns: `Limits` (the time, the days-left threshold and whether to dial endpoints), `ca_bundle`
(an entry's caBundle as PEM), `handshake_checks` (one check per endpoint of a Service, or its
externalName: verified by every caBundle, valid for the Service's name and not near expiry,
and the Secret's certificate rather than an older one) and `url_checks` (for an entry with a
`url`: what it serves, since the Service, Deployment and Secret checks do not apply). The
handshakes are `certs.describe.fetch_served`; listing endpoints is
`certs.endpoints.serving_answers`.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from certs.describe import fetch_served
from certs.endpoints import serving_answers
from certs.trust import fingerprint
from webhook.diagnose.certificates import certificate_checks
from webhook.diagnose.cluster import Reader
from webhook.diagnose.report import Check, failed, passed, skipped, warned

Json = Mapping[str, Any]
HANDSHAKE_TIMEOUT_S = 5.0
Bundles = Sequence[tuple[str, bytes]]  # (webhook name, caBundle PEM)


@dataclass(frozen=True)
class Limits:
    """What the certificate checks compare against, and whether to dial the endpoints."""

    now: datetime
    threshold_days: int
    handshake: bool


def ca_bundle(entry: Json) -> bytes:
    """The entry's caBundle, PEM; b"" when absent or not base64."""
    try:
        return base64.b64decode((entry.get("clientConfig") or {}).get("caBundle") or "")
    except (ValueError, binascii.Error):
        return b""


def handshake_checks(
    reader: Reader,
    target: tuple[str, str, int],
    *,
    dial: tuple[str, int] | None,
    bundles: Bundles,
    secret_cert: x509.Certificate | None,
    limits: Limits,
) -> list[Check]:
    """What each endpoint of the Service `target` serves, or `dial` (host, port) serves for an
    ExternalName Service, to a client asking for `<service>.<namespace>.svc`."""
    namespace, service, port = target
    host = f"{service}.{namespace}.svc"
    answers: list[tuple[str, x509.Certificate | None, str]]
    if dial is not None:
        where = f"{dial[0]}:{dial[1]}"
        try:
            served = fetch_served(
                host=dial[0], port=dial[1], server_name=host, ca_file=None,
                timeout=HANDSHAKE_TIMEOUT_S,
            )  # fmt: skip
            answers = [(where, served.cert, "")]
        except OSError as error:
            answers = [(where, None, str(error) or type(error).__name__)]
    else:
        found = serving_answers(
            reader.api, namespace=namespace, service=service, ports=[port],
            timeout=HANDSHAKE_TIMEOUT_S,
        )  # fmt: skip
        answers = [(answer.endpoint, answer.cert, answer.problem) for answer in found]
    checks = []
    for endpoint, cert, problem in answers:
        name = f"endpoint {endpoint}"
        if cert is None:
            checks.append(
                failed(
                    name,
                    f"no TLS handshake: {problem}",
                    hint="check must run where it can reach the pods (the cluster network),"
                    " or without --handshake",
                )
            )
        else:
            checks.append(
                _served(name, cert, host=host, bundles=bundles, secret=secret_cert, limits=limits)
            )
    return checks


def _served(
    name: str,
    cert: x509.Certificate,
    *,
    host: str,
    bundles: Bundles,
    secret: x509.Certificate | None,
    limits: Limits,
) -> Check:
    """One line for what an endpoint serves: the failures of its certificate checks, if any."""
    found = certificate_checks(
        cert, holder=f"certificate {name} serves", bundles=bundles, host=host, now=limits.now,
        threshold_days=limits.threshold_days, republish="", renew="",
    )  # fmt: skip
    problems = [
        f"{c.name} {c.message}" if c.name.startswith("caBundle") else c.message
        for c in found
        if not c.ok
    ]
    if problems:
        return failed(name, "; ".join(problems))
    if secret is not None and fingerprint(cert) != fingerprint(secret):
        return warned(
            name,
            "serves a certificate the caBundle verifies, but not the Secret's (sha256"
            f" {fingerprint(cert)[:16]}…)",
            hint="the kubelet updates a Secret volume within about a minute and the server"
            " reloads it within a second; restart a pod that keeps serving an old one",
        )
    return passed(name, "serves the Secret's certificate, which every caBundle verifies")


def url_checks(url: str, *, entries: Sequence[Json], limits: Limits) -> list[Check]:
    """For the entries calling `url`: the skipped Service checks, then what the URL serves."""
    names = ", ".join(str(entry["name"]) for entry in entries)
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    port = parsed.port or 443
    checks = [
        skipped(
            f"webhook {names}",
            "calls a URL, not a Service: Service, endpoint, Deployment, PodDisruptionBudget"
            " and Secret checks skipped",
        )
    ]
    holder = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        served = fetch_served(
            host=host, port=port, server_name=host, ca_file=None, timeout=HANDSHAKE_TIMEOUT_S
        )
    except OSError as error:
        cannot = warned(
            f"certificate served at {holder}",
            f"cannot fetch it from here: {error}",
            hint="the probe below shows whether the kube-apiserver reaches it",
        )
        return [*checks, cannot]
    bundles = [(str(entry["name"]), ca_bundle(entry)) for entry in entries if ca_bundle(entry)]
    return checks + certificate_checks(
        served.cert,
        holder=f"certificate served at {holder}",
        bundles=bundles,
        host=host,
        now=limits.now,
        threshold_days=limits.threshold_days,
        republish=f"put the CA that signed the certificate {holder} serves in the caBundle",
        renew=f"serve a certificate valid for {host} for longer",
    )
