"""AdmissionLines' timestamp, formatted once a second: the same text as the formatter's."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import pytest

from webhook import server


@pytest.mark.parametrize(
    "nanoseconds",
    [
        pytest.param([1_764_876_000_005_000_000], id="milliseconds are zero-padded"),
        pytest.param(
            [1_764_876_000_999_999_999, 1_764_876_001_000_000_000],
            id="the next second is formatted anew",
        ),
        pytest.param([1_764_876_000_100_000_000, 1_764_876_000_900_000_000], id="within a second"),
    ],
)
def test_the_time_is_iso_8601_utc_to_the_millisecond(
    monkeypatch: pytest.MonkeyPatch, nanoseconds: list[int]
) -> None:
    stream = io.BytesIO()
    lines = server.AdmissionLines(stream)
    for ns in nanoseconds:
        monkeypatch.setattr(server.time, "time_ns", lambda ns=ns: ns)
        lines(logging.INFO, {"uid": "u"})
    written = [json.loads(line)["time"] for line in stream.getvalue().splitlines()]
    expected = [
        datetime.fromtimestamp(ns // 1_000_000 / 1000, UTC).isoformat(timespec="milliseconds")
        for ns in nanoseconds
    ]
    assert written == expected
