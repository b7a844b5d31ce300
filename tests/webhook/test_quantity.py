"""Kubernetes quantity parsing and formatting, and the stricter size rules of SPEC §2.

Expected values are worked out from apimachinery's documented grammar and its source
(resource/quantity.go); tests/webhook/test_quantity_kubectl.py asks kubectl itself.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from webhook import quantity
from webhook.quantity import (
    Format,
    QuantityError,
    SizeError,
    add_bytes,
    format_bytes,
    parse,
    parse_size,
    to_bytes,
)

GI = 2**30
MI = 2**20


@pytest.mark.parametrize(
    ("text", "value", "fmt"),
    [
        pytest.param("8Gi", 8 * GI, Format.BINARY_SI, id="8Gi is eight binary gigabytes"),
        pytest.param("512Mi", 512 * MI, Format.BINARY_SI, id="512Mi is binary megabytes"),
        pytest.param("2G", 2 * 10**9, Format.DECIMAL_SI, id="2G is decimal"),
        pytest.param("1.5Gi", 3 * GI // 2, Format.BINARY_SI, id="a binary fraction is exact"),
        pytest.param("1e9", 10**9, Format.DECIMAL_EXPONENT, id="1e9 is an exponent"),
        pytest.param("1E", 10**18, Format.DECIMAL_SI, id="E alone is exa, not an exponent"),
        pytest.param("1e3", 1000, Format.DECIMAL_EXPONENT, id="lower-case e with digits is 10^3"),
        pytest.param("1E3", 1000, Format.DECIMAL_EXPONENT, id="upper-case E with digits is 10^3"),
        pytest.param("1e+3", 1000, Format.DECIMAL_EXPONENT, id="an exponent may carry a plus sign"),
        pytest.param("1k", 1000, Format.DECIMAL_SI, id="k is kilo"),
        pytest.param("+1Gi", GI, Format.BINARY_SI, id="a leading plus sign is allowed"),
        pytest.param("01Gi", GI, Format.BINARY_SI, id="leading zeros are allowed"),
        pytest.param("1.", 1, Format.DECIMAL_SI, id="a trailing dot is allowed"),
        pytest.param(".5", Fraction(1, 2), Format.DECIMAL_SI, id="a leading dot is allowed"),
        pytest.param("100m", Fraction(1, 10), Format.DECIMAL_SI, id="m is milli"),
        pytest.param("0", 0, Format.DECIMAL_SI, id="zero"),
        pytest.param("-1Gi", -GI, Format.BINARY_SI, id="negative values parse"),
        pytest.param("Gi", 0, Format.BINARY_SI, id="a suffix with no number is zero"),
        pytest.param(".", 0, Format.DECIMAL_SI, id="a lone dot is zero"),
        pytest.param("+", 0, Format.DECIMAL_SI, id="a lone sign is zero"),
        pytest.param("Ti", 0, Format.BINARY_SI, id="Ti alone stays on the int64 path and is zero"),
        pytest.param("1n", Fraction(1, 10**9), Format.DECIMAL_SI, id="n is nano"),
        pytest.param(
            "1e-10", Fraction(1, 10**9), Format.DECIMAL_EXPONENT, id="below nano rounds up to 1n"
        ),
        pytest.param(
            "8Ei", 2**63 - 1, Format.BINARY_SI, id="binary quantities are capped at 2^63-1"
        ),
        pytest.param(
            "99999999999999999999",
            99999999999999999999,
            Format.DECIMAL_SI,
            id="decimal quantities are not capped",
        ),
        pytest.param(
            "0.5Ki", 512, Format.BINARY_SI, id="a binary fraction above one keeps its format"
        ),
        pytest.param(
            "0.0000001Ki", Fraction(1024, 10**7), Format.DECIMAL_SI, id="binary below 1 turns SI"
        ),
        pytest.param(
            "1e4294967296", 1, Format.DECIMAL_EXPONENT, id="the exponent wraps as an int32"
        ),
    ],
)
def test_parse_matches_apimachinery(text: str, value: int | Fraction, fmt: Format) -> None:
    quantity = parse(text)
    assert quantity.value == value
    assert quantity.format is fmt


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="the empty string"),
        pytest.param("1K", id="upper-case K is not a suffix"),
        pytest.param("1gi", id="suffixes are case-sensitive"),
        pytest.param("1GB", id="a bytes unit is not a suffix"),
        pytest.param("1KiB", id="KiB is not a suffix"),
        pytest.param(" 1Gi", id="a leading space"),
        pytest.param("1Gi ", id="a trailing space"),
        pytest.param("1_000", id="digit separators"),
        pytest.param("\u0661", id="Arabic-Indic digits"),
        pytest.param("\uff11", id="full-width digits"),
        pytest.param("1ee3", id="a doubled exponent marker"),
        pytest.param("2e", id="an exponent marker without digits is not a suffix"),
        pytest.param("1.5.5", id="two decimal points"),
        pytest.param("1Mi1", id="digits after a binary suffix"),
        pytest.param("Ei", id="Ei alone needs inf.Dec, which needs a digit"),
        pytest.param("Pi", id="Pi alone needs inf.Dec, which needs a digit"),
        pytest.param(".e-10", id="a below-nano exponent with no digit"),
        pytest.param("abc", id="words"),
    ],
)
def test_parse_rejects_what_apimachinery_rejects(text: str) -> None:
    with pytest.raises(QuantityError):
        parse(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1.5", 2, id="a fraction of a byte rounds up"),
        pytest.param("100m", 1, id="a tenth of a byte rounds up to one"),
        pytest.param("-1.5", -2, id="negative values round away from zero"),
        pytest.param("1536Mi", 3 * GI // 2, id="whole values are exact"),
    ],
)
def test_to_bytes_rounds_like_value(text: str, expected: int) -> None:
    assert to_bytes(parse(text)) == expected


@pytest.mark.parametrize(
    ("count", "fmt", "expected"),
    [
        pytest.param(3 * GI // 2, Format.BINARY_SI, "1536Mi", id="1.5Gi prints as 1536Mi"),
        pytest.param(8 * GI + 512 * MI, Format.BINARY_SI, "8704Mi", id="8Gi plus 512Mi"),
        pytest.param(1000, Format.BINARY_SI, "1k", id="binary below 1024 prints as decimal SI"),
        pytest.param(1500, Format.DECIMAL_SI, "1500", id="exponent kept a multiple of three"),
        pytest.param(15000, Format.DECIMAL_SI, "15k", id="trailing zeros become a suffix"),
        pytest.param(10**9, Format.DECIMAL_EXPONENT, "1e9", id="exponent format keeps e"),
        pytest.param(1000, Format.DECIMAL_EXPONENT, "1e3", id="exponent format for a thousand"),
        pytest.param(12, Format.DECIMAL_EXPONENT, "12", id="no exponent for small numbers"),
        pytest.param(2**60, Format.BINARY_SI, "1Ei", id="Ei is the largest binary suffix"),
        pytest.param(2**63 - 1, Format.BINARY_SI, "9223372036854775807", id="odd maximum"),
        pytest.param(10**21, Format.DECIMAL_SI, "1e21", id="beyond E decimal SI turns exponent"),
        pytest.param(0, Format.BINARY_SI, "0", id="zero"),
    ],
)
def test_format_bytes_is_canonical(count: int, fmt: Format, expected: str) -> None:
    assert format_bytes(count, fmt) == expected
    assert to_bytes(parse(expected)) == count


def test_add_bytes_keeps_the_format_of_the_existing_value() -> None:
    assert add_bytes(parse("8Gi"), 512 * MI) == "8704Mi"
    assert add_bytes(parse("1G"), GI) == "2073741824"
    assert add_bytes(parse("0"), GI) == "1Gi"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("8Gi", 8 * GI, id="a binary size"),
        pytest.param("2G", 2 * 10**9, id="a decimal size"),
        pytest.param("1e9", 10**9, id="an exponent size"),
        pytest.param("1.5", 2, id="a fractional byte count rounds up"),
        pytest.param("0", 0, id="zero means no injection"),
        pytest.param("0Gi", 0, id="zero with a suffix"),
        pytest.param("9223372036854775807", 2**63 - 1, id="the largest byte count"),
    ],
)
def test_parse_size_accepts(text: str, expected: int) -> None:
    assert to_bytes(parse_size(text, field="shm-size")) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param("8GB", "write 8Gi or 8G", id="8GB suggests 8Gi or 8G"),
        pytest.param("8gi", "write 8Gi or 8G", id="lower case suggests the right case"),
        pytest.param("1KiB", "write 1Ki or 1k", id="KiB suggests Ki or k"),
        pytest.param("lots", "such as 8Gi", id="words get an example"),
        pytest.param("Gi", "has no number", id="a suffix alone is refused"),
        pytest.param(".", "has no number", id="a lone dot is refused"),
        pytest.param("100m", "100Mi", id="milli suggests Mi"),
        pytest.param("5u", "fraction of a byte", id="micro is refused"),
        pytest.param("5n", "fraction of a byte", id="nano is refused"),
        pytest.param("0.5", "less than one byte", id="half a byte is refused"),
        pytest.param("-1Gi", "negative", id="negative sizes are refused"),
        pytest.param("8Ei", "largest size", id="8Ei hits the int64 cap"),
        pytest.param("9223372036854775808", "largest size", id="2^63 overflows"),
        pytest.param("1e20", "largest size", id="a huge exponent overflows"),
    ],
)
def test_parse_size_refuses_with_a_helpful_message(text: str, needle: str) -> None:
    with pytest.raises(SizeError) as caught:
        parse_size(text, field="shm-size")
    message = str(caught.value)
    assert needle in message
    assert message.startswith(f'shm-size "{text}"')
    assert len(message) <= 120


def test_a_long_bad_value_is_shortened_in_the_message() -> None:
    with pytest.raises(SizeError) as caught:
        parse_size("x" * 5000, field="shm-size")
    assert len(str(caught.value)) <= 120


# Everything `_parse_plain` might be handed, and its near misses: a sign, a dot, an exponent,
# upper-case K, a suffix made of several suffix letters, non-ASCII digits, 19 digits and more.
_PLAIN_LIKE = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["", "", "", "+", "-", "0", "00"]),
        st.text(alphabet="0123456789", max_size=21) | st.sampled_from(["\u0661", "\uff11"]),
        st.sampled_from(["", "", ".", ".5"]),
        st.sampled_from(["", "n", "u", "m", "k", "K", "M", "G", "T", "P", "E", "e3", "Ki", "Mi"])
        | st.sampled_from(["Gi", "Ti", "Pi", "Ei", "iK", "Mm", "EE", "kKi", "E-9", "i"]),
    ),
).filter(bool)  # parse refuses the empty string itself


@given(_PLAIN_LIKE)
@example("999999999999999999Ei")  # the largest plain binary value: capped at 2^63-1
@example("999999999999999999n")
@example("0Ki")
def test_the_integer_shortcut_agrees_with_exact_arithmetic(text: str) -> None:
    try:
        expected = quantity._parse_general(text)
    except QuantityError:
        with pytest.raises(QuantityError):
            parse(text)
        return
    assert parse(text) == expected
