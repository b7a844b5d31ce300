"""Renewal predicates, with a pinned clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509

from certs.generate import dns_names
from certs.renewal import ca_needs_rotation, needs_renewal
from tests.certs.material import DAY, NAMESPACE, NOW, SERVICE, YEAR, bundle_at, other

NAMES = [*dns_names(service=SERVICE, namespace=NAMESPACE), "10.0.0.1"]


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _check(**overrides: Any) -> tuple[bool, str]:
    bundle = bundle_at()
    arguments: dict[str, Any] = {
        "cert_pem": bundle.cert_pem,
        "key_pem": bundle.key_pem,
        "ca_pem": bundle.ca_cert_pem,
        "dns_names": NAMES,
        "now": NOW + DAY,
    }
    return needs_renewal(**(arguments | overrides))


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        pytest.param(
            lambda: {"now": NOW + YEAR + DAY},
            ["expired", _cert(bundle_at().cert_pem).not_valid_after_utc.isoformat()],
            id="an expired certificate is renewed and the reason says when it expired",
        ),
        pytest.param(
            lambda: {"now": NOW - DAY},
            ["not valid before", _cert(bundle_at().cert_pem).not_valid_before_utc.isoformat()],
            id="a certificate that is not valid yet is renewed",
        ),
        pytest.param(
            lambda: {"now": NOW + 250 * DAY},
            ["due for renewal"],
            id="a certificate past two thirds of its lifetime is renewed",
        ),
        pytest.param(
            lambda: {"now": NOW + 40 * DAY, "renew_fraction": 0.1},
            ["due for renewal"],
            id="a smaller renew fraction renews earlier",
        ),
        pytest.param(
            lambda: {"dns_names": [*NAMES, "webhook.example.com"]},
            ["webhook.example.com"],
            id="a certificate missing a required DNS name is renewed and the name is given",
        ),
        pytest.param(
            lambda: {"dns_names": [*NAMES, "10.0.0.2"]},
            ["10.0.0.2"],
            id="a certificate missing a required address is renewed",
        ),
        pytest.param(
            lambda: {"key_pem": other().key_pem},
            ["tls.key", "tls.crt"],
            id="a key that does not belong to the certificate is renewed",
        ),
        pytest.param(
            lambda: {"ca_pem": other().ca_cert_pem},
            ["not signed by", _cert(other().ca_cert_pem).subject.rfc4514_string()],
            id="a certificate signed by another CA is renewed and the reason names the CA",
        ),
        pytest.param(
            lambda: {"cert_pem": b"not a certificate"},
            ["tls.crt"],
            id="an unreadable certificate is renewed",
        ),
        pytest.param(
            lambda: {"key_pem": b"not a key"},
            ["tls.key"],
            id="an unreadable key is renewed",
        ),
        pytest.param(
            lambda: {"ca_pem": b""},
            ["ca.crt"],
            id="an unreadable CA is renewed",
        ),
    ],
)
def test_needs_renewal_says_why(overrides: Callable[[], dict[str, Any]], words: list[str]) -> None:
    renew, reason = _check(**overrides())
    assert renew
    for word in words:
        assert word in reason


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="a fresh certificate is kept"),
        pytest.param(
            {"now": NOW + 200 * DAY},
            id="a certificate within two thirds of its lifetime is kept",
        ),
        pytest.param(
            {"dns_names": ["SHM-WEBHOOK.tools.svc"]},
            id="DNS names match whatever their case",
        ),
        pytest.param({"dns_names": []}, id="no required names asks for none"),
    ],
)
def test_needs_renewal_keeps_a_good_certificate(overrides: dict[str, Any]) -> None:
    renew, reason = _check(**overrides)
    assert not renew
    not_after = _cert(bundle_at().cert_pem).not_valid_after_utc
    assert reason.startswith(f"valid until {not_after.isoformat()}")


def test_a_bundle_holding_the_issuing_ca_among_others_is_accepted() -> None:
    renew, _ = _check(ca_pem=other().ca_cert_pem + bundle_at().ca_cert_pem)
    assert not renew


def test_renewal_starts_right_after_the_renew_fraction_of_the_lifetime() -> None:
    cert = _cert(bundle_at().cert_pem)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    due = cert.not_valid_before_utc + lifetime * 3 / 4
    assert not _check(now=due, renew_fraction=3 / 4)[0]
    assert _check(now=due + timedelta(seconds=1), renew_fraction=3 / 4)[0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"now": datetime(2026, 1, 1)}, "timezone-aware", id="a naive time is refused"),
        pytest.param({"renew_fraction": 0}, "renew_fraction", id="a zero fraction is refused"),
        pytest.param(
            {"renew_fraction": 1.5}, "renew_fraction", id="a fraction above one is refused"
        ),
    ],
)
def test_needs_renewal_refuses_bad_arguments(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _check(**overrides)


@pytest.mark.parametrize(
    ("ca_pem", "now", "words"),
    [
        pytest.param(
            lambda: bundle_at().ca_cert_pem,
            NOW + 4 * YEAR,
            ["the CA", "due for renewal"],
            id="a CA past two thirds of its lifetime is rotated",
        ),
        pytest.param(
            lambda: bundle_at().ca_cert_pem,
            NOW + 5 * YEAR + DAY,
            ["the CA", "expired"],
            id="an expired CA is rotated",
        ),
        pytest.param(
            lambda: bundle_at().ca_cert_pem,
            NOW - DAY,
            ["the CA", "not valid before"],
            id="a CA that is not valid yet is rotated",
        ),
        pytest.param(
            lambda: b"-----BEGIN CERTIFICATE-----\n",
            NOW,
            ["ca.crt"],
            id="an unreadable CA is rotated",
        ),
        pytest.param(
            lambda: bundle_at().cert_pem,
            NOW + DAY,
            ["not a CA"],
            id="a serving certificate given as the CA is rotated",
        ),
    ],
)
def test_ca_needs_rotation_says_why(
    ca_pem: Callable[[], bytes], now: datetime, words: list[str]
) -> None:
    rotate, reason = ca_needs_rotation(ca_pem(), now=now)
    assert rotate
    for word in words:
        assert word in reason


def test_a_ca_within_two_thirds_of_its_lifetime_is_kept() -> None:
    ca = _cert(bundle_at().ca_cert_pem)
    rotate, reason = ca_needs_rotation(bundle_at().ca_cert_pem, now=NOW + 3 * YEAR)
    assert not rotate
    assert reason.startswith(f"valid until {ca.not_valid_after_utc.isoformat()}")
