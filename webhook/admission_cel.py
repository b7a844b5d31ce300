"""CEL building blocks of the policy engine: the webhook's quantity, size and path rules as CEL
text, for the admission policies `webhook.admission_policy` writes (docs/policy-engine.md).

Owns: expression templates, Python functions from CEL expressions to a CEL expression, that
compute in the kube-apiserver what `webhook.quantity`, `webhook.policy` and
`webhook.podfields` compute in the webhook: bytes of a quantity (`to_bytes`), its format, the
canonical text of a byte count (`format_bytes`, `add_bytes`), the refusal of a size
(`parse_size`'s messages), a percentage of a byte count, and `posixpath.normpath`.

CEL has no `let`: `bind` names a value with a one-element list's `map`. A template's arguments
are evaluated once when they are plain (a variable, a literal, a field); callers pass such.
Pure: the standard library only.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_INT64 = 2**63 - 1
# Python's str.isspace(), as an RE2 class: `strip()` in the webhook's size suggestion.
_SPACE = (
    r"[\t-\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}"
    r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
)
_BINARY_SUFFIX = r"(Ki|Mi|Gi|Ti|Pi|Ei)$"
_POWERS_1024 = "[" + ", ".join(str(1024**p) for p in range(7)) + "]"
_POWERS_10 = "[" + ", ".join(str(10**e) for e in range(19)) + "]"
_DECIMAL_SUFFIXES = "{0: '', 3: 'k', 6: 'M', 9: 'G', 12: 'T', 15: 'P', 18: 'E'}"
# Percentages are computed exactly as floor(bytes * N / D) with D = 10^(2 + decimals); the
# intermediate r * N < D^2 fits an int64 up to D = 10^9: 7 decimals.
MAX_PERCENT_DECIMALS = 7
# A text longer than this gets the generic suggestion (the parity table's `long-texts`,
# docs/policy-engine.md#parity-table).
LONGEST_SUGGESTED = 4096
_GENERIC = "'write a size such as 8Gi, 512Mi or 1G'"

_fresh: list[int] = [0]


def begin() -> None:
    """Start an expression: macro variable names count from 1 again, so that one generation
    writes the same text as the next."""
    _fresh[0] = 0


def _name(stem: str) -> str:
    """A macro variable name no enclosing template uses (templates nest)."""
    _fresh[0] += 1
    return f"{stem}{_fresh[0]}"


def literal(text: str) -> str:
    """A CEL string literal of `text` (single quotes; backslash, quote and controls escaped)."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f"'{escaped}'"


def bind(value: str, body: Callable[[str], str]) -> str:
    """`body` of a name bound to `value`, evaluated once."""
    name = _name("v")
    return f"[{value}].map({name}, {body(name)})[0]"


def format_of(text: str) -> str:
    """'BinarySI', 'DecimalExponent' or 'DecimalSI': the format `quantity.parse` gives a text."""
    return (
        f"({text}.matches(r'{_BINARY_SUFFIX}') ? 'BinarySI'"
        f" : {text}.matches(r'[eE][-+]?[0-9]+$') ? 'DecimalExponent' : 'DecimalSI')"
    )


def to_bytes(text: str) -> str:
    """`to_bytes(parse(text))`: the value rounded away from zero to a whole number. A plain
    number of up to 19 digits is read as an int (`isInteger` says no past 18 digits); else
    the float only places the candidates and the comparisons are exact (for fractions below
    2^53 bytes). A count beyond an int64 is a CEL error (docs/policy-engine.md)."""

    def rounded(q: str) -> str:
        c, k = _name("c"), _name("k")
        near = f"{c} - 2, {c} - 1, {c}, {c} + 1, {c} + 2"
        up = f"[{near}].filter({k}, !{q}.isGreaterThan(quantity(string({k}))))[0]"
        down = f"[{near}].filter({k}, !{q}.isLessThan(quantity(string({k})))).reverse()[0]"
        exact = f"[int({q}.asApproximateFloat())].map({c}, sign({q}) >= 0 ? {up} : {down})[0]"

        def read(n: str) -> str:
            fits = f"({n}.size() < 19 || ({n}.size() == 19 && {n} <= '{MAX_INT64}'))"
            value = f"({n} == '' ? 0 : ({text}.startsWith('-') ? -1 : 1) * int({n}))"
            return f"({text}.matches(r'^[+-]?[0-9]+$') && {fits} ? {value} : {exact})"

        plain = bind(f"{text}.find(r'[1-9][0-9]*$')", read)
        return f"({q}.isInteger() ? {q}.asInteger() : {plain})"

    return bind(f"quantity({text})", rounded)


def format_bytes(count: str, fmt: str) -> str:
    """`format_bytes(count, fmt)`: Kubernetes' canonical text of a whole number of bytes."""

    def canonical(n: str) -> str:
        m, p, e = _name("m"), _name("p"), _name("e")
        sign = f"({n} < 0 ? '-' : '')"
        binary = (
            f"[[6, 5, 4, 3, 2, 1, 0].filter({p}, {m} % {_POWERS_1024}[{p}] == 0)[0]].map({p},"
            f" {sign} + string({m} / {_POWERS_1024}[{p}])"
            f" + ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'][{p}])[0]"
        )
        exponent = f"({e} == 0 ? '' : 'e' + string({e}))"
        suffix = f"({fmt} == 'DecimalExponent' ? {exponent} : {_DECIMAL_SUFFIXES}[{e}])"
        decimal = (
            f"[[18, 15, 12, 9, 6, 3, 0].filter({e}, {m} % {_POWERS_10}[{e}] == 0)[0]].map({e},"
            f" {sign} + string({m} / {_POWERS_10}[{e}]) + {suffix})[0]"
        )
        either = f"{fmt} == 'BinarySI' && {m} >= 1024 ? {binary} : {decimal}"
        magnitude = f"[{n} < 0 ? -{n} : {n}].map({m}, {either})[0]"
        return f"({n} == 0 ? '0' : {magnitude})"

    return bind(count, canonical)


def add_bytes(text: str, count: str) -> str:
    """`add_bytes(parse(text), count)`: the sum in the quantity's format (BinarySI for 0)."""
    fmt = f"(sign(quantity({text})) != 0 ? {format_of(text)} : 'BinarySI')"
    return format_bytes(f"({to_bytes(text)} + {count})", fmt)


def shown(text: str, field: str) -> str:
    """`field "text"` (`field` is CEL), the text cut to 24 characters as the webhook's messages
    quote it."""
    cut = f"({text}.size() <= 24 ? {text} : {text}.substring(0, 23) + '…')"
    return f"{field} + ' \"' + {cut} + '\"'"


def _suggestion(text: str) -> str:
    """`quantity._suggestion`: an accepted form close to a text that is not a quantity."""

    def from_stripped(s: str) -> str:
        def from_head(h: str) -> str:
            letter = f"{h}.substring({h}.size() - 1).upperAscii()"
            number = f"{h}.substring(0, {h}.size() - 1)"
            unit = f"({letter} == 'K' ? 'k' : {letter})"
            fits = f"{h}.matches(r'[KMGTPEkmgtpe]$') && {number}.matches(r'^[0-9.]+$')"
            return (
                f"({fits} ? 'write ' + {number} + {letter} + 'i or ' + {number} + {unit}"
                f" : {_GENERIC})"
            )

        no_unit = f"{s}.substring(0, {s}.size() - {s}.find(r'[BbIi]*$').size())"
        head = bind(
            no_unit, lambda u: f"{u}.substring(0, {u}.size() - {u}.find(r'{_SPACE}*$').size())"
        )
        return bind(head, from_head)

    lead = f"{text}.find(r'^{_SPACE}*').size()"
    trimmed = bind(
        f"{text}.substring({lead})",
        lambda t: f"{t}.substring(0, {t}.size() - {t}.find(r'{_SPACE}*$').size())",
    )
    full = bind(f"{trimmed}.replace(' ', '').replace('_', '')", from_stripped)
    # Longer texts would exhaust a CEL call's cost limit here; none is a size anyway.
    return f"({text}.size() > {LONGEST_SUGGESTED} ? {_GENERIC} : {full})"


def _beyond_python(text: str) -> str:
    """Quantities apimachinery accepts but `quantity.parse` refuses (more than 1,000 digits, or
    a non-zero value with a decimal exponent beyond ±1,000 once wrapped to 32 bits as
    apimachinery does); checked before `quantity()` ever sees such a text (apimachinery can
    spend unbounded time on some)."""
    number = f"{text}.find(r'^[+-]?[0-9]*\\.?[0-9]*')"

    def too_many_digits(n: str) -> str:
        def count(w: str) -> str:
            fraction = f"({w}.size() > 1 ? {w}[1].size() : 0)"
            return f"{w}[0].find(r'[1-9][0-9]*$').size() + {fraction} > 1000"

        return bind(f"{n}.split('.')", count)

    def exponent_out(sig: str) -> str:
        sign = f"({text}.find(r'[+-]?[0-9]+$').startsWith('-') ? '-' : '')"
        magnitude = bind(
            f"({sig} == '' ? 0 : int({sign} + {sig})) % 4294967296",
            lambda r: bind(
                f"({r} < 0 ? {r} + 4294967296 : {r})",
                lambda u: f"({u} >= 2147483648 ? 4294967296 - {u} : {u})",
            ),
        )
        too_long = f"{sig}.size() > 19 || ({sig}.size() == 19 && {sig} > '{MAX_INT64}')"
        return f"({too_long} || ({number}.matches(r'[1-9]') && {magnitude} > 1000))"

    exponent = bind(f"{text}.find(r'[0-9]+$').find(r'[1-9][0-9]*$')", exponent_out)
    e_notation = f"{text}.matches(r'^[+-]?[0-9]*\\.?[0-9]*[eE][+-]?[0-9]+$')"
    return f"({bind(number, too_many_digits)} || ({e_notation} && {exponent}))"


def size_problem(text: str, field: str) -> str:
    """`parse_size(text, field=field)` (`field` is CEL): '' when the text is a size, else the
    webhook's message."""

    def checks(q: str) -> str:
        head = shown(text, field)
        suffix = f"{text}.substring({text}.find(r'^[+\\-0-9.]*').size())"
        powers = "{'m': '-3', 'u': '-6', 'n': '-9'}"
        fraction = bind(
            suffix,
            lambda s: (
                f"{head} + ' is a fraction of a byte (' + {s} + ' = 10^' + {powers}[{s}] + '); '"
                f" + ({s} == 'm' ? 'did you mean ' + {text}.substring(0, {text}.size() - 1) + 'Mi?'"
                " : 'write a size such as 8Gi')"
            ),
        )
        capped = (
            f"{text}.matches(r'{_BINARY_SUFFIX}') && {q}.compareTo(quantity('{MAX_INT64}')) == 0"
        )
        return (
            f"!{text}.matches(r'[0-9]') ? {head} + ' has no number; write a size such as 8Gi'"
            f" : {text}.matches(r'^[+\\-0-9.]*[mun]$') ? {fraction}"
            f" : sign({q}) < 0 ? {head} + ' is negative; write a size such as 8Gi'"
            f" : sign({q}) > 0 && {q}.isLessThan(quantity('1'))"
            f" ? {head} + ' is less than one byte; write a size such as 512Mi'"
            f" : {q}.isGreaterThan(quantity('{MAX_INT64}')) || ({capped})"
            f" ? {head} + ' exceeds the largest size Kubernetes can count (8Ei - 1 byte)' : ''"
        )

    not_quantity = f"{shown(text, field)} + ' is not a Kubernetes quantity; ' + {_suggestion(text)}"
    return (
        f"(({_beyond_python(text)}) || !isQuantity({text}) ? {not_quantity}"
        f" : {bind(f'quantity({text})', checks)})"
    )


def percent_parts(text: str) -> tuple[str, str, str]:
    """For `N%` (a `defaultSize` form): whether it is one the engine computes exactly (the
    webhook's 0 < N <= 100, at most `MAX_PERCENT_DECIMALS` significant decimals), and the CEL
    of its numerator and denominator of a fraction of one."""
    number = f"{text}.substring(0, {text}.size() - 1)"
    whole = f"{number}.split('.')[0]"
    decimals = f"({number}.contains('.') ? {number}.split('.')[1].find(r'^[0-9]*[1-9]') : '')"
    integer = f"{whole}.find(r'[1-9][0-9]*$')"
    valid = (
        f"({text}.matches(r'^[0-9]+(\\.[0-9]+)?%$') && ({integer} != '' || {decimals} != '')"
        f" && ({integer}.size() < 3 || ({integer} == '100' && {decimals} == ''))"
        f" && {decimals}.size() <= {MAX_PERCENT_DECIMALS})"
    )
    numerator = f"int({integer} + {decimals})"
    denominator = f"100 * {_POWERS_10}[{decimals}.size()]"
    return valid, numerator, denominator


def percent_of(count: str, numerator: str, denominator: str) -> str:
    """floor(count * numerator / denominator) without overflowing an int64 (numerator <=
    denominator <= 10^9): count = a * D + r, so the result is a * N + floor(r * N / D)."""
    return bind(
        denominator,
        lambda d: bind(
            numerator, lambda n: f"({count} / {d}) * {n} + (({count} % {d}) * {n}) / {d}"
        ),
    )


def normpath(path: str) -> str:
    """`posixpath.normpath(path)`: empty and `.` parts dropped, `..` cancelling the part before
    it (bracket matching: a part is cancelled when some window from it holds as many `..`),
    a `..` above the root dropped, and a leading `//` (exactly two) kept."""

    def normalised(s: str) -> str:
        def joined(parts: str) -> str:
            i, j, k, x = _name("i"), _name("j"), _name("k"), _name("x")
            size = f"{parts}.size()"
            ups = f"{parts}.slice({i}, {j} + 1).filter({x}, {x} == '..').size()"
            cancelled = f"lists.range({size}).exists({j}, {j} > {i} && {ups} * 2 >= {j} - {i} + 1)"
            downs = f"{parts}.slice({k}, {i} + 1).filter({x}, {x} != '..').size()"
            matched = f"lists.range({i}).exists({k}, {downs} * 2 >= {i} - {k} + 1)"
            kept = f"({parts}[{i}] != '..' ? !{cancelled} : (!{s}.startsWith('/') && !{matched}))"
            return f"lists.range({size}).filter({i}, {kept}).map({i}, {parts}[{i}]).join('/')"

        two = f"{s}.startsWith('//') && !{s}.startsWith('///')"
        root = f"({s}.startsWith('/') ? ({two} ? '//' : '/') : '')"
        part = _name("part")
        rest = bind(f"{s}.split('/').filter({part}, {part} != '' && {part} != '.')", joined)
        return bind(f"{root} + {rest}", lambda r: f"({r} == '' ? '.' : {r})")

    return bind(path, normalised)
