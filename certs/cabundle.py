"""Trusting the webhook's CA: the caBundle of every webhook of a MutatingWebhookConfiguration.

Owns: `patch_ca_bundle` (trust a CA: each webhook's caBundle becomes `bundle_after_rotation` of
its current one, so the CAs it already trusts stay), `rewrite_ca_bundles` (the general form:
wait for the configuration, then JSON-patch each webhook's caBundle to what a function of the
current one says; the patch carries `test` ops, making it a compare-and-swap) and
`read_trusted` (what each webhook trusts, and which ports of the webhook Service they call).
The kubernetes API object is a parameter: this module never builds a client or reads
credentials, and it raises (`certs.errors.PublishError`, or the client's `ApiException` for what
it cannot handle) instead of exiting.

Must not import anything in `webhook`. Which CAs a bundle keeps is `certs.trust`; the Secret
holding the CA is `certs.publish`; how often to retry is `certs.retry`.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from kubernetes.client import (
    AdmissionregistrationV1Api,
    V1MutatingWebhook,
    V1MutatingWebhookConfiguration,
)
from kubernetes.client.exceptions import ApiException

from certs.errors import PublishError
from certs.retry import ATTEMPTS, wait_for
from certs.trust import bundle_after_rotation

# A webhook's service reference without a port calls 443 (admissionregistration/v1).
DEFAULT_SERVICE_PORT = 443


@dataclass(frozen=True)
class Trusted:
    """What the webhooks of a configuration trust and call."""

    bundles: list[bytes]  # the PEM caBundle of each webhook, in order
    ports: frozenset[int]  # the ports of the webhook Service they call


def patch_ca_bundle(
    admission: AdmissionregistrationV1Api,
    *,
    webhook_config: str,
    ca_bundle_pem: bytes,
    now: datetime,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Trust `ca_bundle_pem` in every webhook of the MutatingWebhookConfiguration; return how
    many webhooks changed (0: already up to date, nothing written).

    Each webhook's bundle becomes `bundle_after_rotation` of its current one, so a CA rotated
    out stays trusted until `certs.trust.bundle_after_serving` lets it go. Waits up to
    `timeout` seconds for the configuration to exist: the chart's hook Job may start before it
    is created.
    """

    def wanted(current: bytes) -> bytes:
        return bundle_after_rotation(current_bundle_pem=current, new_ca_pem=ca_bundle_pem, now=now)

    return rewrite_ca_bundles(
        admission,
        webhook_config=webhook_config,
        wanted=wanted,
        timeout=timeout,
        sleep=sleep,
        clock=clock,
    )


def rewrite_ca_bundles(
    admission: AdmissionregistrationV1Api,
    *,
    webhook_config: str,
    wanted: Callable[[bytes], bytes],
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Make each webhook's caBundle `wanted(its current PEM bundle)`; return how many webhooks
    changed (0: nothing written). Reads again and retries when another writer got there first.
    """
    for _ in range(ATTEMPTS):
        config = _wait_for_config(
            admission, name=webhook_config, timeout=timeout, sleep=sleep, clock=clock
        )
        ops = _ca_bundle_ops(config.webhooks or [], wanted=wanted)
        if not ops:
            return 0
        try:
            admission.patch_mutating_webhook_configuration(webhook_config, ops)
        except ApiException as error:
            # 422: a `test` op failed, so the webhooks changed since the read; read again.
            if error.status != 422:
                raise
            continue
        return sum(op["op"] == "add" for op in ops)
    raise PublishError(
        f"MutatingWebhookConfiguration {webhook_config} changed under us {ATTEMPTS} times in "
        "a row; another writer keeps editing its webhooks"
    )


def read_trusted(
    admission: AdmissionregistrationV1Api,
    *,
    webhook_config: str,
    service: str,
    namespace: str,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Trusted:
    """Each webhook's caBundle, and the ports by which they call Service `namespace/service`
    (none when they call something else, e.g. a URL)."""
    config = _wait_for_config(
        admission, name=webhook_config, timeout=timeout, sleep=sleep, clock=clock
    )
    webhooks = config.webhooks or []
    ports = {
        reference.port or DEFAULT_SERVICE_PORT
        for webhook in webhooks
        if (reference := webhook.client_config.service) is not None
        and (reference.name, reference.namespace) == (service, namespace)
    }
    bundles = [_pem(_text(webhook.client_config.ca_bundle)) for webhook in webhooks]
    return Trusted(bundles=bundles, ports=frozenset(ports))


def _wait_for_config(
    admission: AdmissionregistrationV1Api,
    *,
    name: str,
    timeout: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> V1MutatingWebhookConfiguration:
    # The chart's hook Job may start before the configuration exists.
    config = wait_for(
        lambda: _read_config(admission, name=name), timeout=timeout, sleep=sleep, clock=clock
    )
    if config is None:
        raise PublishError(
            f"MutatingWebhookConfiguration {name} still does not exist after {timeout:g}s; "
            "check that the chart installed it under this name"
        )
    return config


def _read_config(
    admission: AdmissionregistrationV1Api, *, name: str
) -> V1MutatingWebhookConfiguration | None:
    try:
        config: V1MutatingWebhookConfiguration = admission.read_mutating_webhook_configuration(name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return config


def _ca_bundle_ops(
    webhooks: Sequence[V1MutatingWebhook], *, wanted: Callable[[bytes], bytes]
) -> list[dict[str, str]]:
    ops: list[dict[str, str]] = []
    for index, webhook in enumerate(webhooks):
        current = _text(webhook.client_config.ca_bundle)
        encoded = base64.b64encode(wanted(_pem(current))).decode("ascii")
        if encoded == current:
            continue
        path = f"/webhooks/{index}"
        # The `test` ops make the patch a compare-and-swap: if the list was reordered or the
        # bundle rewritten since the read, the apiserver refuses it and we read again.
        ops.append({"op": "test", "path": f"{path}/name", "value": webhook.name})
        if current:
            ops.append({"op": "test", "path": f"{path}/clientConfig/caBundle", "value": current})
        # `add` sets the member whether or not the chart rendered one (`replace` needs it).
        ops.append({"op": "add", "path": f"{path}/clientConfig/caBundle", "value": encoded})
    return ops


def _text(ca_bundle: bytes | str | None) -> str:
    if isinstance(ca_bundle, bytes):
        return ca_bundle.decode("ascii")
    return ca_bundle or ""


def _pem(ca_bundle: str) -> bytes:
    try:
        return base64.b64decode(ca_bundle, validate=True)
    except binascii.Error:
        return b""
