"""The figures the tier measured, printed in pytest's terminal summary ("cluster tier:").

A test notes a line with `note("what: figure")`; tests/cluster/conftest.py prints them all at
the end of the run, passed or failed, so every number of a run is in its output.
"""

from __future__ import annotations

NOTED: list[str] = []


def note(line: str) -> None:
    NOTED.append(line)
