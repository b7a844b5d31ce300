"""Kubernetes resource quantities, parsed and formatted exactly as apimachinery does.

Owns: `parse` (apimachinery `resource.ParseQuantity`, character for character), `to_bytes`
(`Quantity.Value()`), `format_bytes` (`Quantity.String()` of a whole number of bytes) and
`parse_size`, the stricter reading of a /dev/shm size (docs/behaviour.md#sizes).

Arithmetic is exact (`Fraction` and `int`, never floats): a whole value read in the common
form is an `int`, which compares and rounds at a fraction of a `Fraction`'s cost (`plan`:
28 -> 23 µs on the bench's small pod). Pure: imports nothing beyond the standard library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

# apimachinery: the number part is ASCII digits with one optional '.', the suffix is made of
# these letters, optionally followed by a signed exponent.
_DIGITS = frozenset("0123456789")
_SUFFIX_LETTERS = frozenset("eEinumkKMGTP")
_SUFFIX_LETTERS_NO_EXPONENT = "inumkKMGTPE"  # E alone is exa; a lower-case e is an exponent

_DECIMAL_SUFFIXES = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]

NANO = Fraction(1, 10**9)
MAX_INT64 = 2**63 - 1
# apimachinery accepts decimal exponents up to 2^31 (and can spend unbounded time rounding
# some of them); exact arithmetic on 10^(2^31) would hang us, so a non-zero quantity with an
# exponent beyond this is refused. Every such value is far outside a byte count anyway.
_MAX_ABS_EXPONENT = 1000
# Likewise for the digits of the number: Python refuses int <-> str conversions past 4,300
# digits, and no byte count needs more than 19.
_MAX_DIGITS = 1000


class Format(Enum):
    DECIMAL_SI = "DecimalSI"
    BINARY_SI = "BinarySI"
    DECIMAL_EXPONENT = "DecimalExponent"


@dataclass(frozen=True, slots=True)
class Quantity:
    """A parsed quantity: its exact value and the suffix family it keeps when printed."""

    value: Fraction | int  # an int when `parse` read a whole number the common way
    format: Format


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity (apimachinery would reject it too)."""


class SizeError(ValueError):
    """The text is not acceptable as a /dev/shm size; the message quotes it and shows a fix."""


def parse(text: str) -> Quantity:
    """Parse `text` exactly as apimachinery's `resource.ParseQuantity` does."""
    if text == "":
        raise QuantityError("the empty string is not a quantity")
    plain = _parse_plain(text)
    return plain if plain is not None else _parse_general(text)


def _parse_plain(text: str) -> Quantity | None:
    """The form nearly every manifest uses (`512Mi`, `2G`, `100m`, `0`), in integer arithmetic;
    None for anything else (a sign, a dot, an exponent, no digits, more than 18 digits).

    Same results as `_parse_general` at a fifth of its cost: no Fraction arithmetic, no
    rounding (tests/webhook/test_quantity.py checks the two agree).
    """
    digits = text.rstrip(_SUFFIX_LETTERS_NO_EXPONENT)
    if not (0 < len(digits) <= 18 and digits.isascii() and digits.isdigit()):
        return None
    suffix = text[len(digits) :]
    power = _BINARY_SUFFIXES.get(suffix)
    if power is not None:
        # At most (10^18 - 1) * 2^60: capped at 2^63-1 as apimachinery does.
        value = int(digits) << power
        return Quantity(value if value <= MAX_INT64 else MAX_INT64, Format.BINARY_SI)
    exponent = _DECIMAL_SUFFIXES.get(suffix)
    if exponent is None:
        return None
    mantissa = int(digits)
    # m, u and n are whole numbers of nanos: no rounding to do.
    if exponent >= 0:
        return Quantity(mantissa * 10**exponent, Format.DECIMAL_SI)
    return Quantity(Fraction(mantissa, 10**-exponent), Format.DECIMAL_SI)


def _parse_general(text: str) -> Quantity:
    """Every form of the grammar, in exact rational arithmetic (`parse` without its shortcut)."""
    positive, value_text, num, denom, suffix = _scan(text)
    base, exponent, fmt = _interpret_suffix(suffix, text)
    if not any(ch in _DIGITS for ch in value_text) and _takes_slow_path(fmt, exponent, num, denom):
        # inf.Dec.SetString needs a digit; apimachinery answers ErrNumeric.
        raise QuantityError(f"{text!r}: unable to parse the numeric part")
    if len(num) + len(denom) > _MAX_DIGITS:
        raise QuantityError(f"{text[:40]!r}...: more than {_MAX_DIGITS} digits")
    mantissa = int(num + denom)
    if mantissa == 0:
        return Quantity(Fraction(0), fmt)
    if abs(exponent) > _MAX_ABS_EXPONENT:
        raise QuantityError(f"{text!r}: exponent {exponent} is out of range")
    magnitude = Fraction(mantissa, 10 ** len(denom))
    magnitude *= Fraction(10) ** exponent if base == 10 else 2**exponent
    # Values finer than nano round up (away from zero) to the next nano.
    magnitude = Fraction(math.ceil(magnitude / NANO)) * NANO
    if fmt is Format.BINARY_SI:
        magnitude = min(magnitude, Fraction(MAX_INT64))
        if 0 < magnitude < 1:
            fmt = Format.DECIMAL_SI
    return Quantity(magnitude if positive else -magnitude, fmt)


def to_bytes(quantity: Quantity) -> int:
    """`Quantity.Value()`: the value rounded up, away from zero, to a whole number."""
    value = quantity.value
    if type(value) is int:
        return value
    return math.ceil(value) if value >= 0 else -math.ceil(-value)


def format_bytes(count: int, fmt: Format) -> str:
    """`Quantity.String()` of a whole number in the given format: the canonical form."""
    if count == 0:
        return "0"
    sign, magnitude = ("-", -count) if count < 0 else ("", count)
    if fmt is Format.BINARY_SI and magnitude >= 1024:
        power = 0
        while magnitude % 1024 == 0 and power < len(_BINARY_BY_POWER) - 1:
            magnitude //= 1024
            power += 1
        return f"{sign}{magnitude}{_BINARY_BY_POWER[power]}"
    exponent = 0
    while magnitude % 10 == 0:
        magnitude //= 10
        exponent += 1
    magnitude *= 10 ** (exponent % 3)
    exponent -= exponent % 3
    if fmt is not Format.DECIMAL_EXPONENT and exponent in _DECIMAL_BY_EXPONENT:
        return f"{sign}{magnitude}{_DECIMAL_BY_EXPONENT[exponent]}"
    return f"{sign}{magnitude}e{exponent}" if exponent else f"{sign}{magnitude}"


def add_bytes(existing: Quantity, count: int) -> str:
    """`existing + count` bytes, whole bytes, printed in `existing`'s format (as `Quantity.Add`)."""
    fmt = existing.format if existing.value != 0 else Format.BINARY_SI
    return format_bytes(to_bytes(existing) + count, fmt)


def parse_size(text: str, *, field: str) -> Quantity:
    """Read a /dev/shm size: a quantity of at least one byte that fits in an int64 of bytes.

    Zero is allowed (it means "no /dev/shm for this pod"). `field` names where the text came
    from in error messages, e.g. `shm-size` or `--default-size`.
    """
    shown = f'{field} "{text if len(text) <= 24 else text[:23] + "…"}"'
    try:
        quantity = parse(text)
    except QuantityError:
        raise SizeError(f"{shown} is not a Kubernetes quantity; {_suggestion(text)}") from None
    if _DIGITS.isdisjoint(text):
        raise SizeError(f"{shown} has no number; write a size such as 8Gi")
    suffix = text.lstrip("+-0123456789.")
    if suffix in ("m", "u", "n"):
        hint = f"did you mean {text[:-1]}Mi?" if suffix == "m" else "write a size such as 8Gi"
        raise SizeError(
            f"{shown} is a fraction of a byte ({suffix} = 10^{_DECIMAL_SUFFIXES[suffix]}); {hint}"
        )
    if quantity.value < 0:
        raise SizeError(f"{shown} is negative; write a size such as 8Gi")
    if 0 < quantity.value < 1:
        raise SizeError(f"{shown} is less than one byte; write a size such as 512Mi")
    if quantity.value > MAX_INT64 or _binary_capped(quantity, text):
        raise SizeError(f"{shown} exceeds the largest size Kubernetes can count (8Ei - 1 byte)")
    return quantity


def _binary_capped(quantity: Quantity, text: str) -> bool:
    # apimachinery silently caps binary quantities at 2^63-1 ("8Ei" parses as 8Ei - 1 byte):
    # a size that hit the cap did not mean what it says.
    return (
        quantity.format is Format.BINARY_SI
        and quantity.value == MAX_INT64
        and text != str(MAX_INT64)
    )


def _suggestion(text: str) -> str:
    """An accepted form close to what the user wrote, for error messages."""
    stripped = text.strip().replace(" ", "").replace("_", "")
    head = stripped.rstrip("BbIi").rstrip()
    letter = head[-1:].upper() if head[-1:].upper() in "KMGTPE" and head[-1:] else ""
    number = head[: len(head) - len(letter)] if letter else head
    if letter and number and all(ch in _DIGITS or ch == "." for ch in number):
        return f"write {number}{letter}i or {number}{'k' if letter == 'K' else letter}"
    return "write a size such as 8Gi, 512Mi or 1G"


def _takes_slow_path(fmt: Format, exponent: int, num: str, denom: str) -> bool:
    """Whether apimachinery leaves its int64 fast path for inf.Dec (which needs a digit)."""
    if fmt is Format.BINARY_SI:
        # int32(float32(exponent)*3/10) is exact for the binary exponents 10..60.
        return denom != "" or 15 - len(num) - exponent * 3 // 10 - 1 < 0
    if 18 - (len(num) + len(denom)) < 0:
        return True
    return exponent - len(denom) < -9


def _interpret_suffix(suffix: str, text: str) -> tuple[int, int, Format]:
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], Format.DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], Format.BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        exponent_text = suffix[1:]
        digits = exponent_text.lstrip("+-")
        if len(exponent_text) - len(digits) <= 1 and digits and all(ch in _DIGITS for ch in digits):
            sign = exponent_text[: len(exponent_text) - len(digits)]
            significant = digits.lstrip("0") or "0"
            # strconv.ParseInt(..., 64), then int32(...). Past 19 digits ParseInt fails
            # (ErrSuffix), and int() of thousands of leading zeros would refuse them anyway.
            if len(significant) <= 19 and abs(exponent := int(sign + significant)) <= MAX_INT64:
                wrapped = (exponent + 2**31) % 2**32 - 2**31
                return 10, wrapped, Format.DECIMAL_EXPONENT
    raise QuantityError(f"{text!r}: unable to parse the suffix {suffix!r}")


def _scan(text: str) -> tuple[bool, str, str, str, str]:
    """apimachinery `parseQuantityString`: (positive, value, numerator, denominator, suffix)."""
    end = len(text)
    positive = True
    pos = 0
    if text[0] in "+-":
        positive = text[0] == "+"
        pos = 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "0", "", ""
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    num = text[start:pos] or "0"
    if pos >= end:
        return positive, text, num, "", ""
    denom = ""
    if text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        denom = text[start:pos]
        if pos >= end:
            return positive, text, num, denom, ""
    value = text[:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_LETTERS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise QuantityError(f"{text!r} does not match ^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
    return positive, value, num, denom, text[suffix_start:]
