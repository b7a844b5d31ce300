"""Certificate material at a pinned time, shared by the pure renewal and trust tests: one CA
and serving pair per (issue time, CA validity), cached for the session."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from certs.generate import Bundle, generate_bundle

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
YEAR = timedelta(days=365)
SERVICE, NAMESPACE = "shm-webhook", "tools"


@functools.cache
def bundle_at(issued: datetime = NOW, ca_validity: timedelta = 5 * YEAR) -> Bundle:
    return generate_bundle(
        service=SERVICE,
        namespace=NAMESPACE,
        now=issued,
        extra_names=["10.0.0.1"],
        ca_validity=ca_validity,
    )


def other() -> Bundle:
    """Another CA, issued a second later."""
    return bundle_at(issued=NOW + timedelta(seconds=1))
