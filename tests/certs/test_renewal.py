"""Renewal predicates and the rotation bundle, with a pinned clock."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from certs.generate import Bundle, dns_names, generate_bundle
from certs.renewal import bundle_after_rotation, ca_needs_rotation, needs_renewal

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
YEAR = timedelta(days=365)
SERVICE, NAMESPACE = "shm-webhook", "tools"
NAMES = [*dns_names(service=SERVICE, namespace=NAMESPACE), "10.0.0.1"]
GARBAGE_BLOCK = (
    b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
)


@functools.cache
def _bundle(issued: datetime = NOW, ca_validity: timedelta = 5 * YEAR) -> Bundle:
    return generate_bundle(
        service=SERVICE,
        namespace=NAMESPACE,
        now=issued,
        extra_names=["10.0.0.1"],
        ca_validity=ca_validity,
    )


def _other() -> Bundle:
    return _bundle(issued=NOW + timedelta(seconds=1))


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _check(**overrides: Any) -> tuple[bool, str]:
    bundle = _bundle()
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
            ["expired", _cert(_bundle().cert_pem).not_valid_after_utc.isoformat()],
            id="an expired certificate is renewed and the reason says when it expired",
        ),
        pytest.param(
            lambda: {"now": NOW - DAY},
            ["not valid before", _cert(_bundle().cert_pem).not_valid_before_utc.isoformat()],
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
            lambda: {"key_pem": _other().key_pem},
            ["tls.key", "tls.crt"],
            id="a key that does not belong to the certificate is renewed",
        ),
        pytest.param(
            lambda: {"ca_pem": _other().ca_cert_pem},
            ["not signed by", _cert(_other().ca_cert_pem).subject.rfc4514_string()],
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
    not_after = _cert(_bundle().cert_pem).not_valid_after_utc
    assert reason.startswith(f"valid until {not_after.isoformat()}")


def test_a_bundle_holding_the_issuing_ca_among_others_is_accepted() -> None:
    renew, _ = _check(ca_pem=_other().ca_cert_pem + _bundle().ca_cert_pem)
    assert not renew


def test_renewal_starts_right_after_the_renew_fraction_of_the_lifetime() -> None:
    cert = _cert(_bundle().cert_pem)
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
            lambda: _bundle().ca_cert_pem,
            NOW + 4 * YEAR,
            ["the CA", "due for renewal"],
            id="a CA past two thirds of its lifetime is rotated",
        ),
        pytest.param(
            lambda: _bundle().ca_cert_pem,
            NOW + 5 * YEAR + DAY,
            ["the CA", "expired"],
            id="an expired CA is rotated",
        ),
        pytest.param(
            lambda: _bundle().ca_cert_pem,
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
            lambda: _bundle().cert_pem,
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
    ca = _cert(_bundle().ca_cert_pem)
    rotate, reason = ca_needs_rotation(_bundle().ca_cert_pem, now=NOW + 3 * YEAR)
    assert not rotate
    assert reason.startswith(f"valid until {ca.not_valid_after_utc.isoformat()}")


# A CA that expires 30 days after NOW, and its successor made 20 days after NOW.
def _old() -> Bundle:
    return _bundle(ca_validity=30 * DAY)


def _new() -> Bundle:
    return _bundle(issued=NOW + 20 * DAY)


def _ders(pem: bytes) -> list[bytes]:
    return [
        ca.public_bytes(serialization.Encoding.DER) for ca in x509.load_pem_x509_certificates(pem)
    ]


@pytest.mark.parametrize(
    ("current", "now", "expected"),
    [
        pytest.param(
            lambda: _old().ca_cert_pem,
            NOW + 25 * DAY,
            lambda: [_new(), _old()],
            id="keeps the old CA while it is valid, after the new one",
        ),
        pytest.param(
            lambda: _old().ca_cert_pem,
            NOW + 31 * DAY,
            lambda: [_new()],
            id="drops the old CA once it expired",
        ),
        pytest.param(
            lambda: b"",
            NOW + 25 * DAY,
            lambda: [_new()],
            id="an empty bundle becomes the new CA alone",
        ),
        pytest.param(
            lambda: _new().ca_cert_pem,
            NOW + 25 * DAY,
            lambda: [_new()],
            id="a bundle that is already the new CA stays as it is",
        ),
        pytest.param(
            lambda: _old().ca_cert_pem + _new().ca_cert_pem + _old().ca_cert_pem,
            NOW + 25 * DAY,
            lambda: [_new(), _old()],
            id="every CA appears once, the new one first",
        ),
        pytest.param(
            lambda: _old().ca_cert_pem + GARBAGE_BLOCK + _other().ca_cert_pem,
            NOW + 25 * DAY,
            lambda: [_new(), _old(), _other()],
            id="an unreadable entry is dropped and the CAs around it kept",
        ),
    ],
)
def test_bundle_after_rotation(
    current: Callable[[], bytes], now: datetime, expected: Callable[[], list[Bundle]]
) -> None:
    bundle = bundle_after_rotation(
        current_bundle_pem=current(), new_ca_pem=_new().ca_cert_pem, now=now
    )
    assert _ders(bundle) == [ca for b in expected() for ca in _ders(b.ca_cert_pem)]


def test_bundle_after_rotation_refuses_an_unreadable_new_ca() -> None:
    with pytest.raises(ValueError, match="new_ca_pem"):
        bundle_after_rotation(current_bundle_pem=b"", new_ca_pem=b"garbage", now=NOW)


# CAs expiring 10, 100 and 1000 days after NOW, plus the new one.
_POOL = [
    lambda: _bundle(ca_validity=10 * DAY),
    lambda: _bundle(ca_validity=100 * DAY),
    lambda: _bundle(ca_validity=1000 * DAY),
    _new,
]


@given(
    picks=st.lists(st.sampled_from(range(len(_POOL))), max_size=8),
    days=st.integers(min_value=20, max_value=1100),
)
def test_bundle_after_rotation_invariants(picks: list[int], days: int) -> None:
    now = NOW + days * DAY
    current = b"".join(_POOL[i]().ca_cert_pem for i in picks)
    new = _new().ca_cert_pem
    bundle = bundle_after_rotation(current_bundle_pem=current, new_ca_pem=new, now=now)
    cas = x509.load_pem_x509_certificates(bundle)
    ders = _ders(bundle)
    assert ders[0] == _ders(new)[0], "the new CA comes first"
    assert len(set(ders)) == len(ders), "no CA twice"
    assert all(ca.not_valid_after_utc > now for ca in cas[1:]), "no expired old CA"
    old = x509.load_pem_x509_certificates(current) if current else []
    live = {c.public_bytes(serialization.Encoding.DER) for c in old if c.not_valid_after_utc > now}
    assert live <= set(ders), "every unexpired old CA stays"
    again = bundle_after_rotation(current_bundle_pem=bundle, new_ca_pem=new, now=now)
    assert again == bundle, "publishing twice changes nothing"
