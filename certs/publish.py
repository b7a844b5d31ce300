"""Putting the webhook's TLS material into the cluster: the serving Secret and the caBundle.

Owns: `ensure_secret` (create, keep, renew or re-key the `kubernetes.io/tls` Secret, writing
with resourceVersion so concurrent bootstraps cannot overwrite each other) and
`patch_ca_bundle` (JSON-patch the caBundle of every webhook of a MutatingWebhookConfiguration,
keeping a rotated-out CA until it expires). The kubernetes API objects are parameters: this
module never builds a client or reads credentials, and it raises (`PublishError`, or the
client's `ApiException` for what it cannot handle) instead of exiting.

Must not import anything in `webhook`. What a certificate contains is `certs.generate`; when it
must be replaced, and which CAs a bundle keeps, is `certs.renewal`.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from kubernetes.client import (
    AdmissionregistrationV1Api,
    CoreV1Api,
    V1MutatingWebhook,
    V1MutatingWebhookConfiguration,
    V1ObjectMeta,
    V1Secret,
)
from kubernetes.client.exceptions import ApiException

from certs.files import CA_CERT_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE
from certs.generate import (
    DEFAULT_CA_VALIDITY,
    DEFAULT_CERT_VALIDITY,
    KeyType,
    generate_bundle,
    issue_serving_cert,
)
from certs.generate import dns_names as service_dns_names
from certs.renewal import (
    DEFAULT_RENEW_FRACTION,
    bundle_after_rotation,
    ca_needs_rotation,
    needs_renewal,
)

Action = Literal["created", "kept", "renewed", "rotated-ca"]

SECRET_TYPE = "kubernetes.io/tls"
MANAGED_BY = {"app.kubernetes.io/managed-by": "shm-webhook-certs"}

# Conflicts come from another bootstrap Job or CronJob run; a handful of re-reads settles them.
_ATTEMPTS = 5
_FIRST_DELAY = 0.5
_MAX_DELAY = 8.0


class PublishError(RuntimeError):
    """The cluster did not end up in the wanted state; the message says what to check."""


@dataclass(frozen=True)
class SecretResult:
    """What `ensure_secret` did, why, and the CA certificate the Secret now holds."""

    action: Action
    reason: str
    ca_bundle_pem: bytes


@dataclass(frozen=True)
class _Wanted:
    """The serving certificate asked for, at `now`."""

    service: str
    namespace: str
    extra_names: Sequence[str]
    now: datetime
    renew_fraction: float
    cert_validity: timedelta
    ca_validity: timedelta
    key_type: KeyType

    def fresh(self) -> dict[str, bytes]:
        bundle = generate_bundle(
            service=self.service,
            namespace=self.namespace,
            now=self.now,
            extra_names=self.extra_names,
            cert_validity=self.cert_validity,
            ca_validity=self.ca_validity,
            key_type=self.key_type,
        )
        return {
            CA_CERT_FILE: bundle.ca_cert_pem,
            CA_KEY_FILE: bundle.ca_key_pem,
            CERT_FILE: bundle.cert_pem,
            KEY_FILE: bundle.key_pem,
        }

    def decide(self, files: Mapping[str, bytes]) -> tuple[Action, str, dict[str, bytes]]:
        """(action, reason, the files the Secret should hold) for a Secret holding `files`."""
        ca_pem = files.get(CA_CERT_FILE, b"")
        rotate, why = ca_needs_rotation(ca_pem, now=self.now, renew_fraction=self.renew_fraction)
        if rotate:
            return "rotated-ca", why, self.fresh()
        names = service_dns_names(
            service=self.service, namespace=self.namespace, extra=self.extra_names
        )
        renew, why = needs_renewal(
            cert_pem=files.get(CERT_FILE, b""),
            key_pem=files.get(KEY_FILE, b""),
            ca_pem=ca_pem,
            dns_names=names,
            now=self.now,
            renew_fraction=self.renew_fraction,
        )
        if not renew:
            return "kept", why, dict(files)
        try:
            cert_pem, key_pem = issue_serving_cert(
                ca_cert_pem=ca_pem,
                ca_key_pem=files.get(CA_KEY_FILE, b""),
                dns_names=names,
                now=self.now,
                validity=self.cert_validity,
                key_type=self.key_type,
            )
        except ValueError as error:
            # A Secret made elsewhere (e.g. `certs generate` + kubectl) has no ca.key.
            return "rotated-ca", f"{why}; the CA cannot sign a new one: {error}", self.fresh()
        return "renewed", why, {**files, CERT_FILE: cert_pem, KEY_FILE: key_pem}


def ensure_secret(
    core: CoreV1Api,
    *,
    namespace: str,
    name: str,
    service: str,
    now: datetime,
    extra_names: Sequence[str] = (),
    renew_fraction: float = DEFAULT_RENEW_FRACTION,
    cert_validity: timedelta = DEFAULT_CERT_VALIDITY,
    ca_validity: timedelta = DEFAULT_CA_VALIDITY,
    key_type: KeyType = "ecdsa",
) -> SecretResult:
    """Make the TLS Secret `namespace/name` hold a valid serving certificate for `service`.

    Missing: create it. Valid: keep it. Serving certificate due: re-issue it from the same CA.
    CA due (or unusable): a new CA and certificate. Every write is conditional (create, or
    replace at the resourceVersion read), and on a conflict the Secret is read and judged again.
    """
    wanted = _Wanted(
        service=service,
        namespace=namespace,
        extra_names=tuple(extra_names),
        now=now,
        renew_fraction=renew_fraction,
        cert_validity=cert_validity,
        ca_validity=ca_validity,
        key_type=key_type,
    )
    for _ in range(_ATTEMPTS):
        secret = _read_secret(core, namespace=namespace, name=name)
        if secret is None:
            files = wanted.fresh()
            created = _new_secret(namespace=namespace, name=name, files=files)
            if _written(core.create_namespaced_secret, namespace, created):
                reason = f"Secret {namespace}/{name} did not exist"
                return SecretResult("created", reason, files[CA_CERT_FILE])
            continue
        action, reason, files = wanted.decide(_decoded(secret.data or {}))
        if action == "kept":
            return SecretResult(action, reason, files[CA_CERT_FILE])
        # The resourceVersion read above stays in the body: the apiserver refuses the write
        # with 409 if anyone changed the Secret since.
        secret.data = _encoded(files)
        if _written(core.replace_namespaced_secret, name, namespace, secret):
            return SecretResult(action, reason, files[CA_CERT_FILE])
    raise PublishError(
        f"Secret {namespace}/{name} changed under us {_ATTEMPTS} times in a row; another "
        "writer keeps replacing it (is a second shm-webhook release using the same name?)"
    )


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
    out stays trusted until it expires. Waits up to `timeout` seconds for the configuration
    to exist: the chart's hook Job may start before it is created.
    """
    for _ in range(_ATTEMPTS):
        config = _wait_for_config(
            admission, name=webhook_config, timeout=timeout, sleep=sleep, clock=clock
        )
        ops = _ca_bundle_ops(config.webhooks or [], ca_bundle_pem=ca_bundle_pem, now=now)
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
        f"MutatingWebhookConfiguration {webhook_config} changed under us {_ATTEMPTS} times in "
        "a row; another writer keeps editing its webhooks"
    )


def _read_secret(core: CoreV1Api, *, namespace: str, name: str) -> V1Secret | None:
    try:
        secret: V1Secret = core.read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return secret


def _written(write: Callable[..., object], *args: object) -> bool:
    """False when the apiserver refused the write with 409 (AlreadyExists or Conflict)."""
    try:
        write(*args)
    except ApiException as error:
        if error.status == 409:
            return False
        raise
    return True


def _new_secret(*, namespace: str, name: str, files: Mapping[str, bytes]) -> V1Secret:
    return V1Secret(
        api_version="v1",
        kind="Secret",
        type=SECRET_TYPE,
        metadata=V1ObjectMeta(name=name, namespace=namespace, labels=dict(MANAGED_BY)),
        data=_encoded(files),
    )


def _encoded(files: Mapping[str, bytes]) -> dict[str, bytes | str]:
    return {key: base64.b64encode(value).decode("ascii") for key, value in files.items()}


def _decoded(data: Mapping[str, bytes | str]) -> dict[str, bytes]:
    # An undecodable value reads as empty, which the renewal checks report as unreadable.
    files = {}
    for key, value in data.items():
        try:
            files[key] = base64.b64decode(value, validate=True)
        except binascii.Error:
            files[key] = b""
    return files


def _wait_for_config(
    admission: AdmissionregistrationV1Api,
    *,
    name: str,
    timeout: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> V1MutatingWebhookConfiguration:
    deadline = clock() + timeout
    delay = _FIRST_DELAY
    while (config := _read_config(admission, name=name)) is None:
        remaining = deadline - clock()
        if remaining <= 0:
            raise PublishError(
                f"MutatingWebhookConfiguration {name} still does not exist after {timeout:g}s; "
                "check that the chart installed it under this name"
            )
        sleep(min(delay, remaining))
        delay = min(delay * 2, _MAX_DELAY)
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
    webhooks: Sequence[V1MutatingWebhook], *, ca_bundle_pem: bytes, now: datetime
) -> list[dict[str, str]]:
    ops: list[dict[str, str]] = []
    for index, webhook in enumerate(webhooks):
        current = _text(webhook.client_config.ca_bundle)
        bundle = bundle_after_rotation(
            current_bundle_pem=_pem(current), new_ca_pem=ca_bundle_pem, now=now
        )
        wanted = base64.b64encode(bundle).decode("ascii")
        if wanted == current:
            continue
        path = f"/webhooks/{index}"
        # The `test` ops make the patch a compare-and-swap: if the list was reordered or the
        # bundle rewritten since the read, the apiserver refuses it and we read again.
        ops.append({"op": "test", "path": f"{path}/name", "value": webhook.name})
        if current:
            ops.append({"op": "test", "path": f"{path}/clientConfig/caBundle", "value": current})
        # `add` sets the member whether or not the chart rendered one (`replace` needs it).
        ops.append({"op": "add", "path": f"{path}/clientConfig/caBundle", "value": wanted})
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
