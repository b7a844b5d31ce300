"""How often and how patiently the certs commands retry the cluster.

Owns: `ATTEMPTS` (how many times a write is decided again after a concurrent writer got there
first), `wait_for` (poll with exponential backoff until a value appears or a deadline passes),
shared by the Secret (`certs.publish`), the caBundle (`certs.cabundle`) and `certs bootstrap`'s
wait for the pods to serve a new certificate; and `Clock`, the time they see. Time and sleep
are parameters, so tests never wait.

Imports nothing from `certs` or `webhook`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

T = TypeVar("T")

# Conflicts come from another bootstrap Job or CronJob run; a handful of re-reads settles them.
ATTEMPTS = 5

# The chart's hook Job may start before what it waits for exists: poll, doubling the delay.
FIRST_DELAY = 0.5
MAX_DELAY = 8.0


@dataclass(frozen=True)
class Clock:
    """The wall clock, a monotonic clock and sleep, as a command sees them; tests substitute
    clocks that move only when slept."""

    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> T | None:
    """The first value `probe` returns that is not None, polling with backoff; None once
    `timeout` seconds passed without one (`probe` runs at least once, and once at the end)."""
    deadline = clock() + timeout
    delay = FIRST_DELAY
    while (found := probe()) is None:
        remaining = deadline - clock()
        if remaining <= 0:
            return None
        sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_DELAY)
    return found
