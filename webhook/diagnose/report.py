"""The report of `shm-webhook check`: its checks, their order, how they print, the exit code.

Owns: `Check` (one line: a name, a level, a message, a hint for what to do, detail lines),
the builders `passed`, `warned`, `failed` and `skipped`, `Report` (the checks and the
end-to-end probe's result), and its renderings: `text` (a line `✔ name: message` per check,
`‼` a warning, `✘` a failure, `-` a skipped check, the hint and the details indented under it,
then a summary) and `as_json` (one object). Pure: the standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Level = Literal["ok", "warn", "fail", "skip"]
MARKS: dict[Level, str] = {"ok": "✔", "warn": "‼", "fail": "✘", "skip": "-"}
INDENT = "    "


@dataclass(frozen=True)
class Check:
    """One finding. Only `fail` makes the command exit 1; a warning is worth reading."""

    name: str
    level: Level
    message: str
    hint: str = ""
    details: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.level != "fail"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "level": self.level,
            "message": self.message,
            "hint": self.hint,
            "details": list(self.details),
        }


def passed(name: str, message: str, *, details: tuple[str, ...] = ()) -> Check:
    return Check(name, "ok", message, details=details)


def warned(name: str, message: str, *, hint: str = "", details: tuple[str, ...] = ()) -> Check:
    return Check(name, "warn", message, hint, details)


def failed(name: str, message: str, *, hint: str = "", details: tuple[str, ...] = ()) -> Check:
    return Check(name, "fail", message, hint, details)


def skipped(name: str, message: str) -> Check:
    return Check(name, "skip", message)


@dataclass
class Report:
    """Every check in the order it was made, and what the end-to-end probe found."""

    checks: list[Check] = field(default_factory=list)
    probe: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def exit_code(self) -> int:
        return 0 if self.ok else 1


def text(report: Report) -> str:
    """The report for a terminal: one line per check, hints and details under it."""
    lines = []
    for check in report.checks:
        lines.append(f"{MARKS[check.level]} {check.name}: {check.message}")
        lines += [f"{INDENT}{detail}" for detail in check.details]
        if check.hint:
            lines.append(f"{INDENT}hint: {check.hint}")
    lines.append(summary(report))
    return "\n".join(lines) + "\n"


def summary(report: Report) -> str:
    """`12 checks: 10 passed, 1 warning, 1 failed`, skipped ones counted when there are any."""
    counts = dict.fromkeys(MARKS, 0)
    for check in report.checks:
        counts[check.level] += 1
    parts = [f"{counts['ok']} passed"]
    if counts["warn"]:
        parts.append(f"{counts['warn']} warning{'' if counts['warn'] == 1 else 's'}")
    parts.append(f"{counts['fail']} failed")
    if counts["skip"]:
        parts.append(f"{counts['skip']} skipped")
    total = len(report.checks)
    return f"{total} check{'' if total == 1 else 's'}: {', '.join(parts)}"


def as_json(report: Report) -> str:
    """One JSON object: `ok`, `checks` (each `name`, `ok`, `level`, `message`, `hint`,
    `details`) and `probe`."""
    document = {
        "ok": report.ok,
        "checks": [check.as_json() for check in report.checks],
        "probe": report.probe,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
