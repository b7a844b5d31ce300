"""`webhook.quantity.parse` against the real thing: kubectl's own `resource.ParseQuantity`.

kubectl is the oracle. For every string, `kubectl set resources --local` either rejects it or
prints the quantity it understood; we must reject exactly the same strings and read exactly the
value of kubectl's printed form (so the same byte count). No expected value is written here.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from webhook import quantity

pytestmark = pytest.mark.integration

# (text, why it is tricky). Only strings apimachinery parses in bounded time: a huge exponent
# such as 1e2147483648 can keep kubectl busy for ever.
CASES = [
    ("8Gi", "a binary suffix"),
    ("512Mi", "a binary suffix below a GiB"),
    ("2G", "a decimal suffix"),
    ("1.5Gi", "a fraction with a binary suffix"),
    ("1e9", "a lowercase e is an exponent"),
    ("1E", "a lone E is exa"),
    ("1e3", "a small lowercase exponent"),
    ("1E3", "an uppercase E followed by digits is an exponent"),
    ("1E0", "an exponent of zero"),
    ("1K", "an uppercase K is no suffix"),
    ("1k", "a lowercase k is kilo"),
    ("1gi", "suffixes are case-sensitive"),
    ("1GB", "a B is no suffix"),
    ("1KiB", "a B after a binary suffix"),
    (" 1Gi", "a leading space"),
    ("1Gi ", "a trailing space"),
    ("1 Gi", "a space before the suffix"),
    ("1_000", "an underscore digit separator"),
    ("\u0661", "an Arabic-Indic digit"),
    ("\uff11", "a fullwidth digit"),
    ("", "the empty string"),
    ("0", "zero"),
    ("-0", "negative zero"),
    ("0.0", "zero with a fraction"),
    ("00000", "only zeros"),
    ("0Ei", "zero exbibytes"),
    ("+1Gi", "a plus sign"),
    ("-1Gi", "a negative quantity"),
    ("+-1", "two signs"),
    ("01Gi", "a leading zero"),
    ("1.", "a trailing dot"),
    (".5", "a leading dot"),
    ("-.5", "a leading dot after a sign"),
    (".", "a dot alone"),
    ("Gi", "a suffix with no number"),
    ("Ti", "tebi with no number"),
    ("Pi", "pebi with no number"),
    ("Ei", "exbi with no number"),
    ("e3", "an exponent with no number"),
    ("1.G", "a trailing dot before the suffix"),
    ("1.5.5", "two dots"),
    ("100m", "milli"),
    ("1m", "one milli"),
    ("1u", "one micro"),
    ("1n", "one nano"),
    ("1.5m", "a fraction of a milli"),
    ("0.5", "half a unit"),
    ("5e-1", "half a unit as an exponent"),
    ("1.0000000001", "finer than nano rounds up"),
    ("1e-10", "below nano rounds up to nano"),
    ("1e-9", "exactly nano"),
    (".e-10", "an exponent on a bare dot"),
    ("0.0001Ki", "a binary quantity below one"),
    ("1.0001Ki", "a binary quantity that is not a whole number"),
    ("1Pi", "one pebibyte"),
    ("1Ei", "one exbibyte"),
    ("8Ei", "the first binary value past int64"),
    ("16Ei", "far past int64 in binary"),
    ("7.99999Ei", "just below 8Ei"),
    ("8E", "8 exa fits in int64"),
    ("9.3E", "exa past int64"),
    ("9223372036854775807", "the largest int64"),
    ("9223372036854775808", "one past the largest int64"),
    ("99999999999999999999", "twenty nines"),
    ("999999999999999999", "eighteen nines, the end of the int64 fast path"),
    ("1.23456789012345678901234567890", "thirty significant digits"),
    ("12345678901234567890Mi", "a huge number of mebibytes"),
    ("123456789012Ki", "twelve digits of kibibytes"),
    ("1e18", "a decimal exa as an exponent"),
    ("1e19", "past int64 as an exponent"),
    ("1e100", "a large exponent"),
    ("1.5e3", "a fraction with an exponent"),
    ("1e+3", "an exponent with a plus sign"),
    ("1E-3", "an uppercase negative exponent"),
    ("1e-3", "a lowercase negative exponent"),
    ("1e", "an e with no exponent"),
    ("2e", "an e with no exponent after 2"),
    ("1ee3", "two e"),
    ("1e3.5", "a fractional exponent"),
    ("1Mi1", "digits after a binary suffix"),
    ("1Ki1", "digits after kibi"),
    ("1m1", "digits after milli"),
    ("1Gi-1", "a signed number after a binary suffix"),
    ("1+", "a sign after the number"),
    ("1000k", "a thousand kilo"),
    ("1500M", "a non-canonical mega"),
    ("1024Ki", "a non-canonical kibi"),
    ("0x10", "a hexadecimal prefix"),
    ("Inf", "infinity"),
    ("1\n", "a trailing newline"),
]

# kubectl's --limits flag splits on "," and "=": such strings would not reach ParseQuantity.
assert not [text for text, _ in CASES if "," in text or "=" in text]
assert len({text for text, _ in CASES}) == len(CASES), "a case is listed twice"

_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "parity"},
    "spec": {"containers": [{"name": "main", "image": "busybox"}]},
}
_TIMEOUT_S = 20
# --local never needs a cluster; a developer's broken kubeconfig must not matter. Copied once,
# here: copying os.environ in the worker threads raced pytest's own edits of it (KeyError).
_KUBECTL_ENV = {**os.environ, "KUBECONFIG": os.devnull}


def _ask_kubectl(kubectl: str, pod: Path, text: str) -> str | None:
    """The memory limit kubectl writes for `text`, or None when it rejects `text`."""
    command = [kubectl, "set", "resources", "--local", "-o", "json", "-f", str(pod)]
    done = subprocess.run(
        [*command, f"--limits=memory={text}"],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
        env=_KUBECTL_ENV,
    )
    if done.returncode != 0:
        # Any other failure (kubectl broken, flag changed) must not pass for a rejection.
        assert "quantit" in done.stderr, f"kubectl failed for {text!r}: {done.stderr}"
        return None
    limits = json.loads(done.stdout)["spec"]["containers"][0]["resources"]["limits"]
    return str(limits["memory"])


@pytest.fixture(scope="module")
def kubectl_answers(
    kubectl: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[str | None]]]:
    """kubectl's answer for every case, computed concurrently: one process each is slow."""
    pod = tmp_path_factory.mktemp("quantity") / "pod.json"
    pod.write_text(json.dumps(_POD))
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 2)) as pool:
        yield {text: pool.submit(_ask_kubectl, kubectl, pod, text) for text, _ in CASES}


def _parse(text: str) -> quantity.Quantity | None:
    try:
        return quantity.parse(text)
    except quantity.QuantityError:
        return None


@pytest.mark.parametrize("text", [pytest.param(text, id=f"{why} {text!a}") for text, why in CASES])
def test_parse_agrees_with_kubectl(
    text: str, kubectl_answers: dict[str, Future[str | None]]
) -> None:
    printed = kubectl_answers[text].result()
    ours = _parse(text)
    theirs = "kubectl rejects it" if printed is None else f"kubectl reads {printed!r}"
    mine = "we reject it" if ours is None else f"we read {ours.value} ({ours.format.value})"
    assert (printed is None) == (ours is None), f"{text!r}: {theirs}, {mine}"
    if printed is not None and ours is not None:
        # Stricter than equal byte counts: Quantity.String() is exact, so the values must match.
        assert quantity.parse(printed).value == ours.value, f"{text!r}: {theirs}, {mine}"
