"""Would the kube-apiserver accept a serving certificate: signed by a CA of the caBundle that
is valid now, for the name it dials, and far enough from its end. Certificates come from our
own `certs.generate`; the time is pinned."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certs.generate import Bundle, generate_bundle
from webhook.diagnose.certificates import certificate_checks, names_host
from webhook.diagnose.report import Check

NOW = datetime(2026, 3, 1, tzinfo=UTC)
HOST = "shm-webhook.shm-system.svc"


def bundle(*, now: datetime = NOW, days: int = 365, extra: tuple[str, ...] = ()) -> Bundle:
    return generate_bundle(
        service="shm-webhook",
        namespace="shm-system",
        now=now,
        cert_validity=timedelta(days=days),
        extra_names=extra,
    )


def cert_of(made: Bundle) -> x509.Certificate:
    return x509.load_pem_x509_certificate(made.cert_pem)


def checks(
    cert: x509.Certificate, bundles: list[tuple[str, bytes]], *, host: str = HOST
) -> list[Check]:
    return certificate_checks(
        cert,
        holder="certificate of Secret shm-system/shm-webhook-tls",
        bundles=bundles,
        host=host,
        now=NOW,
        threshold_days=14,
        republish="republish",
        renew="renew",
    )


@pytest.fixture(scope="module")
def good() -> Bundle:
    return bundle()


def test_a_certificate_the_bundle_signs_for_the_service_name_passes(good: Bundle) -> None:
    trust, validity = checks(cert_of(good), [("w1", good.ca_cert_pem), ("w2", good.ca_cert_pem)])

    assert trust.name == "caBundle of w1, w2"  # one check for the webhooks sharing a bundle
    assert trust.level == "ok"
    assert trust.message.startswith(
        "verifies the certificate of Secret shm-system/shm-webhook-tls (signed by"
        " CN=shm-webhook-ca@"
    )
    assert validity.level == "ok"
    assert validity.message == (
        f"for {HOST}, 365 days left (until {cert_of(good).not_valid_after_utc.isoformat()})"
    )


def test_each_distinct_bundle_is_checked_and_one_without_the_ca_fails(good: Bundle) -> None:
    other = bundle()
    found = checks(cert_of(good), [("w1", good.ca_cert_pem), ("w2", other.ca_cert_pem)])

    assert [(c.name, c.level) for c in found] == [
        ("caBundle of w1", "ok"),
        ("caBundle of w2", "fail"),
        ("certificate of Secret shm-system/shm-webhook-tls", "ok"),
    ]
    issuer = cert_of(good).issuer.rfc4514_string()
    assert found[1].message.startswith(
        f"does not verify the certificate of Secret shm-system/shm-webhook-tls: it was issued by"
        f" {issuer}, and the caBundle holds CN=shm-webhook-ca@"
    )
    assert found[1].hint == "republish"


def test_a_bundle_of_old_and_new_cas_verifies_a_certificate_of_either(good: Bundle) -> None:
    older = bundle()
    (trust, _) = checks(cert_of(good), [("w", older.ca_cert_pem + good.ca_cert_pem)])

    assert trust.level == "ok"
    assert "the bundle holds 2 CAs" in trust.message


def test_a_bundle_without_a_certificate_fails(good: Bundle) -> None:
    (trust, _) = checks(cert_of(good), [("w", b"not PEM")])

    assert (trust.level, trust.message) == ("fail", "holds no readable PEM certificate")


@pytest.mark.parametrize(
    ("made", "problem"),
    [
        pytest.param(
            {"now": NOW - timedelta(days=40), "days": 30},
            "expired at 2026-02-19T00:00:00+00:00",
            id="expired",
        ),
        pytest.param(
            {"now": NOW - timedelta(days=20), "days": 30},
            "expires in 10 days (at 2026-03-11T00:00:00+00:00), within the 14-day threshold",
            id="within the threshold",
        ),
        pytest.param(
            {"now": NOW + timedelta(days=2)}, "not valid before 2026-03-02T23:55:00+00:00",
            id="not valid yet",
        ),
    ],
)  # fmt: skip
def test_a_certificate_near_or_past_its_dates_fails(made: dict[str, Any], problem: str) -> None:
    made_bundle = bundle(**made)
    _, validity = checks(cert_of(made_bundle), [("w", made_bundle.ca_cert_pem)])

    assert validity.level == "fail"
    assert validity.message == problem
    assert validity.hint == "renew"


def test_a_certificate_for_another_name_fails_naming_what_it_is_for(good: Bundle) -> None:
    _, validity = checks(cert_of(good), [("w", good.ca_cert_pem)], host="other.shm-system.svc")

    assert validity.level == "fail"
    assert validity.message.startswith(
        "is not for other.shm-system.svc: it names shm-webhook, shm-webhook.shm-system,"
    )


def test_an_expired_ca_fails_the_bundle_check() -> None:
    made = bundle(now=NOW - timedelta(days=6 * 365))  # CA of 5 years, cert of 1, both over
    trust, _ = checks(cert_of(made), [("w", made.ca_cert_pem)])

    assert trust.level == "fail"
    assert "is not valid now" in trust.message


@pytest.mark.parametrize(
    ("names", "host", "expected"),
    [
        pytest.param(["a.b.svc"], "a.b.svc", True, id="an exact DNS name"),
        pytest.param(["A.B.svc"], "a.b.svc", True, id="case does not matter"),
        pytest.param(["*.b.svc"], "a.b.svc", True, id="a wildcard covers one label"),
        pytest.param(["*.b.svc"], "x.a.b.svc", False, id="a wildcard covers one label only"),
        pytest.param(["*.b.svc"], "b.svc", False, id="a wildcard needs a label"),
        pytest.param(["127.0.0.1"], "127.0.0.1", True, id="an IP address SAN"),
        pytest.param(["127.0.0.1"], "127.0.0.2", False, id="another IP address"),
        pytest.param(["a.b.svc"], "127.0.0.1", False, id="an IP is not matched by DNS names"),
    ],
)
def test_names_host_follows_the_rules_the_apiserver_verifies_by(
    names: list[str], host: str, expected: bool
) -> None:
    # Built by hand: certs.generate refuses wildcards and capitals, which others' CAs issue.
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .sign(key, hashes.SHA256())
    )
    assert names_host(cert, host) is expected
