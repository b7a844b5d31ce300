"""The certs package's errors and how its commands speak.

Owns: `BadInput` (an option or input that cannot be used: exit code 2) and `Failed` (the
cluster refused or did not answer as needed: exit code 1), which `webhook.subcommands` maps to
exit codes; `PublishError`, what `certs.publish` and `certs.cabundle` raise when the cluster
does not end up as wanted; and `say`, one line of a command's progress.

The bottom of the package: imports nothing from `certs` or `webhook`.
"""

from __future__ import annotations

from typing import TextIO


class BadInput(Exception):
    """An option or input that cannot be used; one line (exit code 2)."""


class Failed(Exception):
    """The cluster refused or did not answer as needed; one line (exit code 1)."""


class PublishError(RuntimeError):
    """The cluster did not end up in the wanted state; the message says what to check."""


def say(line: str, *, out: TextIO) -> None:
    """Print one line of progress."""
    # Flushed at once: a Job's log shows how far a run got before it failed.
    print(line, file=out, flush=True)
