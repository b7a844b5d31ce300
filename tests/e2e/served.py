"""`shm-webhook serve` as the e2e tier imports it: the one served-process harness of
tests/serving.py (`ServedWebhook(certificates=..., server_name="127.0.0.1")`, its admission
log lines, `stop`), `generate_certs` and `cli`. Nothing of its own."""

from __future__ import annotations

from tests.serving import ServedWebhook, cli, generate_certs

__all__ = ["ServedWebhook", "cli", "generate_certs"]
