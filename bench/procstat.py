"""What Linux says about a process: CPU time and memory from /proc (the steady figures).

Owns: `cpu_times(pid)` (utime and stime of every thread) and `memory_kib(pid)` (VmRSS and
VmHWM, the peak resident set).
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds the process (all its threads) has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return utime / _TICKS, stime / _TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """{"VmRSS": ..., "VmHWM": ...} in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found
