"""The status annotation's encoding: the orjson fast path writes json's bytes, or steps aside."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhook.status import _compact


def _json(status: dict[str, object]) -> str:
    return json.dumps(status, separators=(",", ":"))


names = st.lists(st.text(max_size=12), max_size=4)


@given(size=st.text(max_size=8), volume=st.text(max_size=12), mounted=names, charged=names)
def test_the_four_fields_encode_as_json_does(
    size: str, volume: str, mounted: list[str], charged: list[str]
) -> None:
    status = {"size": size, "volume": volume, "mounted": mounted, "charged": charged}
    assert _compact(status) == _json(status)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(1e16, id="a float json prints as 1e+16 and orjson as 1e16"),
        pytest.param(math.nan, id="NaN, which orjson would print as null"),
        pytest.param(2**70, id="an integer beyond 64 bits, which orjson refuses"),
        pytest.param({"k": "\x7f\u00e9\ud800"}, id="escapes json writes and orjson does not"),
    ],
)
def test_an_earlier_records_extra_key_encodes_as_json_does(extra: object) -> None:
    status = {"size": "1Gi", "volume": "dshm", "mounted": ["a"], "charged": [], "extra": extra}
    assert _compact(status) == _json(status)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("caf\u00e9", id="a non-ASCII name"),
        pytest.param("\ud800", id="a lone surrogate"),
        pytest.param("del\x7f", id="DEL, which json escapes"),
        pytest.param('quote"back\\slash\nline\x01', id="quotes, backslashes and controls"),
    ],
)
def test_names_json_escapes_encode_as_json_does(name: str) -> None:
    status = {"size": "1Gi", "volume": "dshm", "mounted": [name], "charged": [name]}
    assert _compact(status) == _json(status)
