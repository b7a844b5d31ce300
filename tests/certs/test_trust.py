"""Which CAs the caBundle holds (certs.trust): trusted before served, forgotten once nothing may
serve them; with a pinned clock."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from certs.generate import CLOCK_SKEW, Bundle
from certs.renewal import issued_by
from certs.trust import (
    OVERLAP,
    SETTLE,
    Answer,
    bundle_after_rotation,
    bundle_after_serving,
    ca_since,
    fingerprint,
    parse_fingerprint,
)
from tests.certs.material import DAY, NOW, bundle_at, other

GARBAGE_BLOCK = (
    b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
)


# A CA that expires 30 days after NOW, and its successor made 20 days after NOW.
def _old() -> Bundle:
    return bundle_at(ca_validity=30 * DAY)


def _new() -> Bundle:
    return bundle_at(issued=NOW + 20 * DAY)


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
            lambda: _old().ca_cert_pem + GARBAGE_BLOCK + other().ca_cert_pem,
            NOW + 25 * DAY,
            lambda: [_new(), _old(), other()],
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
    lambda: bundle_at(ca_validity=10 * DAY),
    lambda: bundle_at(ca_validity=100 * DAY),
    lambda: bundle_at(ca_validity=1000 * DAY),
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


# What the endpoints serve once the Secret holds the new CA (made 20 days after NOW).
SINCE = NOW + 20 * DAY


def _serves(bundle: Callable[[], Bundle], endpoint: str = "10.0.0.5:8443") -> Answer:
    return Answer(endpoint, x509.load_pem_x509_certificate(bundle().cert_pem))


def _unreachable(endpoint: str = "10.0.0.6:8443") -> Answer:
    return Answer(endpoint, None, "timed out")


def _after_serving(
    answers: Sequence[Answer], *, now: datetime, current: bytes | None = None
) -> tuple[bytes, list[bool], list[str]]:
    bundle, verdicts = bundle_after_serving(
        current_bundle_pem=_new().ca_cert_pem + _old_long().ca_cert_pem
        if current is None
        else current,
        ca_pem=_new().ca_cert_pem,
        answers=answers,
        since=SINCE,
        now=now,
    )
    return bundle, [v.kept for v in verdicts], [v.reason for v in verdicts]


def _old_long() -> Bundle:
    """The CA rotated out: made at NOW, valid five years."""
    return bundle_at()


@pytest.mark.parametrize(
    ("answers", "now", "kept", "words"),
    [
        pytest.param(
            lambda: [_serves(_new), _serves(_new, "10.0.0.6:8443")],
            SINCE + SETTLE,
            False,
            ["none of 2 endpoints serves"],
            id="drops the old CA once every endpoint serves the new CA's certificate",
        ),
        pytest.param(
            lambda: [_serves(_new)],
            SINCE + SETTLE - timedelta(seconds=1),
            True,
            ["kubelet", (SINCE + SETTLE).isoformat()],
            id="keeps the old CA within the settle time even when every endpoint serves the new",
        ),
        pytest.param(
            lambda: [_serves(_new), _serves(_old_long, "10.0.0.7:8443 (pod web-2)")],
            SINCE + DAY,
            True,
            ["10.0.0.7:8443 (pod web-2) still serves", "restart"],
            id="keeps the old CA while an endpoint still serves a certificate it signed",
        ),
        pytest.param(
            lambda: [_serves(_old_long)],
            SINCE + 100 * DAY,
            True,
            ["still serves"],
            id="an endpoint serving the old CA's certificate keeps it even long past the overlap",
        ),
        pytest.param(
            lambda: [_serves(_new), _unreachable()],
            SINCE + OVERLAP - timedelta(seconds=1),
            True,
            ["cannot tell", "10.0.0.6:8443: timed out", (SINCE + OVERLAP).isoformat()],
            id="keeps the old CA while an endpoint cannot be checked, up to the overlap",
        ),
        pytest.param(
            lambda: [_serves(_new), _unreachable()],
            SINCE + OVERLAP,
            False,
            ["cannot tell", "10.0.0.6:8443: timed out"],
            id="drops the old CA once the overlap passed though an endpoint cannot be checked",
        ),
        pytest.param(
            lambda: [Answer("the endpoints of Service tools/shm-webhook", None, "403 Forbidden")],
            SINCE + timedelta(minutes=10),
            True,
            ["403 Forbidden"],
            id="keeps the old CA when the endpoints cannot be listed, up to the overlap",
        ),
        pytest.param(
            list,
            SINCE + SETTLE,
            False,
            ["no endpoint serves"],
            id="drops the old CA when the Service has no endpoint, after the settle time",
        ),
    ],
)
def test_bundle_after_serving(
    answers: Callable[[], list[Answer]], now: datetime, kept: bool, words: list[str]
) -> None:
    bundle, verdicts, reasons = _after_serving(answers(), now=now)
    assert verdicts == [kept]
    for word in words:
        assert word in reasons[0]
    expected = [_new(), _old_long()] if kept else [_new()]
    assert _ders(bundle) == [ca for b in expected for ca in _ders(b.ca_cert_pem)]


def test_an_expired_old_ca_is_dropped_even_while_served() -> None:
    bundle, verdicts, reasons = _after_serving(
        [_serves(_old)], now=NOW + 31 * DAY, current=_old().ca_cert_pem
    )
    assert verdicts == [False]
    assert "expired" in reasons[0]
    assert _ders(bundle) == _ders(_new().ca_cert_pem)


def test_each_old_ca_is_judged_by_what_is_served_and_the_secret_s_ca_comes_first() -> None:
    current = _old_long().ca_cert_pem + other().ca_cert_pem  # the Secret's CA not in it yet
    bundle, verdicts, _ = _after_serving(
        [_serves(_new), _serves(other, "10.0.0.8:8443")], now=SINCE + DAY, current=current
    )
    assert verdicts == [False, True]
    assert _ders(bundle) == _ders(_new().ca_cert_pem) + _ders(other().ca_cert_pem)


def test_bundle_after_serving_refuses_an_unreadable_secret_ca() -> None:
    with pytest.raises(ValueError, match="ca_pem"):
        bundle_after_serving(
            current_bundle_pem=b"", ca_pem=b"garbage", answers=[], since=NOW, now=NOW
        )


_ANSWERS = [
    lambda: _serves(_new, "a"),
    lambda: _serves(_old_long, "b"),
    lambda: _serves(other, "c"),
    lambda: _unreachable("d"),
]


@given(
    picks=st.lists(st.sampled_from(range(len(_POOL))), max_size=6),
    answered=st.lists(st.sampled_from(range(len(_ANSWERS))), max_size=4),
    minutes=st.integers(min_value=0, max_value=3 * 24 * 60),
)
def test_bundle_after_serving_invariants(
    picks: list[int], answered: list[int], minutes: int
) -> None:
    now = SINCE + timedelta(minutes=minutes)
    current = b"".join(_POOL[i]().ca_cert_pem for i in picks)
    answers = [_ANSWERS[i]() for i in answered]
    new = _new().ca_cert_pem
    bundle, verdicts = bundle_after_serving(
        current_bundle_pem=current, ca_pem=new, answers=answers, since=SINCE, now=now
    )
    cas = x509.load_pem_x509_certificates(bundle)
    ders = _ders(bundle)
    assert ders[0] == _ders(new)[0], "the Secret's CA comes first"
    assert len(set(ders)) == len(ders), "no CA twice"
    assert all(ca.not_valid_after_utc > now for ca in cas[1:]), "no expired old CA"
    for answer in answers:
        signers = [ca for ca in cas_in(current) if answer.cert and issued_by(answer.cert, ca)]
        live = [ca for ca in signers if ca.not_valid_after_utc > now]
        assert all(_der(ca) in ders for ca in live), "a CA whose certificate is served stays"
    if now < SINCE + SETTLE:
        assert all(v.kept for v in verdicts if v.ca.not_valid_after_utc > now), "nothing goes early"
    if now >= SINCE + OVERLAP and not any(i in (1, 2) for i in answered):
        assert ders == _ders(new), "past the overlap only what is served stays"
    again, _ = bundle_after_serving(
        current_bundle_pem=bundle, ca_pem=new, answers=answers, since=SINCE, now=now
    )
    assert again == bundle, "deciding twice changes nothing"


def cas_in(bundle_pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(bundle_pem) if bundle_pem else []


def _der(ca: x509.Certificate) -> bytes:
    return ca.public_bytes(serialization.Encoding.DER)


def test_the_secret_got_its_ca_when_it_was_written_or_else_when_the_ca_was_made() -> None:
    ca_pem = _new().ca_cert_pem
    made = x509.load_pem_x509_certificate(ca_pem).not_valid_before_utc + CLOCK_SKEW
    assert made == NOW + 20 * DAY
    assert ca_since(ca_pem, written_at=None) == made
    assert ca_since(ca_pem, written_at=made + timedelta(seconds=90)) == made + timedelta(seconds=90)
    assert ca_since(ca_pem, written_at=made - DAY) == made


def _colons(digits: str) -> str:
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2)).upper()


CA_DIGITS = fingerprint(x509.load_pem_x509_certificate(bundle_at().ca_cert_pem))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(CA_DIGITS, CA_DIGITS, id="64 lowercase hex digits"),
        pytest.param(_colons(CA_DIGITS), CA_DIGITS, id="uppercase with colons"),
        pytest.param(f"sha256 Fingerprint={_colons(CA_DIGITS)}", CA_DIGITS, id="openssl 3's line"),
        pytest.param(f"SHA256 Fingerprint={_colons(CA_DIGITS)}", CA_DIGITS, id="openssl 1's line"),
        pytest.param(f"sha256:{CA_DIGITS}", CA_DIGITS, id="a sha256: prefix"),
        pytest.param(f" {CA_DIGITS}\n", CA_DIGITS, id="surrounding whitespace"),
        pytest.param(CA_DIGITS[:-2], None, id="too short"),
        pytest.param(CA_DIGITS[:-1] + "g", None, id="not hex"),
        pytest.param("lost-ca.crt", None, id="a file name"),
    ],
)
def test_parse_fingerprint(text: str, expected: str | None) -> None:
    assert parse_fingerprint(text) == expected


def test_the_fingerprint_is_the_sha256_of_the_der() -> None:
    ca = x509.load_pem_x509_certificate(bundle_at().ca_cert_pem)
    assert fingerprint(ca) == hashlib.sha256(_der(ca)).hexdigest()
