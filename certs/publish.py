"""Putting the webhook's serving Secret into the cluster, in two steps a caller can separate.

Owns: `decide_secret` (read the `kubernetes.io/tls` Secret and decide: created, kept, renewed
or rotated-ca, with the data it should hold; no write), `apply_secret` (the conditional write:
create, or replace at the resourceVersion read, so concurrent bootstraps cannot overwrite each
other) and `ensure_secret` (both, deciding again after a conflict, with a hook between decision
and write where `certs bootstrap` publishes a new CA first). The kubernetes API object is a
parameter: this module never builds a client or reads credentials, and it raises
(`certs.errors.PublishError`, or the client's `ApiException` for what it cannot handle) instead
of exiting.

Must not import anything in `webhook`. What a certificate contains is `certs.generate`; when it
must be replaced is `certs.renewal`; the caBundle that trusts the CA is `certs.cabundle`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from kubernetes.client import (
    CoreV1Api,
    V1ObjectMeta,
    V1Secret,
)
from kubernetes.client.exceptions import ApiException

from certs.errors import PublishError
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
    ca_needs_rotation,
    needs_renewal,
)
from certs.retry import ATTEMPTS
from certs.trust import ca_name, cas_of, fingerprint

Action = Literal["created", "kept", "renewed", "rotated-ca"]

SECRET_TYPE = "kubernetes.io/tls"
MANAGED_BY = {"app.kubernetes.io/managed-by": "shm-webhook-certs"}


@dataclass(frozen=True, kw_only=True)
class SecretSpec:
    """The serving Secret wanted: where it lives and what its certificate must be."""

    namespace: str
    name: str
    service: str
    extra_names: Sequence[str] = ()
    renew_fraction: float = DEFAULT_RENEW_FRACTION
    cert_validity: timedelta = DEFAULT_CERT_VALIDITY
    ca_validity: timedelta = DEFAULT_CA_VALIDITY
    key_type: KeyType = "ecdsa"
    # False when the caBundle cannot be republished in the same run (the chart's pre-install
    # hook): a CA that is due but still trusted is then kept, since a new one would be served
    # before the kube-apiserver trusts it; only an unusable CA is replaced.
    rotate_due_ca: bool = True
    # SHA-256 fingerprints (`certs.trust.fingerprint`) of CAs nobody may trust any more: a
    # Secret holding one gets a new CA at once, so the caBundle must be republished in the run.
    distrusted: frozenset[str] = frozenset()

    def dns_names(self) -> list[str]:
        return service_dns_names(
            service=self.service, namespace=self.namespace, extra=self.extra_names
        )


@dataclass(frozen=True, kw_only=True)
class SecretPlan:
    """What the Secret should become, decided from one read of it; nothing is written yet."""

    spec: SecretSpec
    action: Action
    reason: str
    files: Mapping[str, bytes]
    # The Secret as read, whose resourceVersion makes the write conditional; None: create it.
    read: V1Secret | None

    @property
    def ca_bundle_pem(self) -> bytes:
        """The CA certificate the Secret holds once the plan is applied."""
        return self.files[CA_CERT_FILE]


@dataclass(frozen=True)
class SecretResult:
    """What `ensure_secret` did, why, and the CA certificate the Secret now holds."""

    action: Action
    reason: str
    ca_bundle_pem: bytes


def decide_secret(core: CoreV1Api, spec: SecretSpec, *, now: datetime) -> SecretPlan:
    """Read the Secret and decide what it should hold at `now`; no write.

    Missing: create it. Valid: keep it. Serving certificate due: re-issue it from the same CA.
    CA due (see `SecretSpec.rotate_due_ca`), unusable or distrusted: a new CA and certificate.
    """
    secret = _read_secret(core, namespace=spec.namespace, name=spec.name)
    if secret is None:
        reason = f"Secret {spec.namespace}/{spec.name} did not exist"
        files = _fresh(spec, now=now)
        return SecretPlan(spec=spec, action="created", reason=reason, files=files, read=None)
    action, reason, files = _decide(spec, _decoded(secret.data or {}), now=now)
    return SecretPlan(spec=spec, action=action, reason=reason, files=files, read=secret)


def apply_secret(core: CoreV1Api, plan: SecretPlan) -> bool:
    """Write the plan (create, or replace at the resourceVersion read); False when the
    apiserver refused it with 409 because someone else wrote first: decide again."""
    if plan.action == "kept":
        return True
    spec = plan.spec
    if plan.read is None:
        created = _new_secret(namespace=spec.namespace, name=spec.name, files=plan.files)
        return _written(core.create_namespaced_secret, spec.namespace, created)
    # The resourceVersion read stays in the body: the apiserver refuses the write with 409 if
    # anyone changed the Secret since.
    read = plan.read
    replaced = V1Secret(
        api_version="v1",
        kind="Secret",
        type=read.type,
        metadata=read.metadata,
        immutable=read.immutable,
        data=_encoded(plan.files),
    )
    return _written(core.replace_namespaced_secret, spec.name, spec.namespace, replaced)


def ensure_secret(
    core: CoreV1Api,
    spec: SecretSpec,
    *,
    now: datetime,
    before_write: Callable[[SecretPlan], None] | None = None,
) -> SecretResult:
    """Make the TLS Secret of `spec` hold a valid serving certificate: decide, then apply,
    deciding again from a fresh read when a concurrent writer got there first.

    `before_write` runs before each write (never when the Secret is kept): `certs bootstrap`
    publishes the new CA there, so the kube-apiserver trusts it before any pod can serve it.
    """
    for _ in range(ATTEMPTS):
        plan = decide_secret(core, spec, now=now)
        if plan.action != "kept" and before_write is not None:
            before_write(plan)
        if apply_secret(core, plan):
            return SecretResult(plan.action, plan.reason, plan.ca_bundle_pem)
    raise PublishError(
        f"Secret {spec.namespace}/{spec.name} changed under us {ATTEMPTS} times in a row; "
        "another writer keeps replacing it (is a second shm-webhook release using the same name?)"
    )


def _fresh(spec: SecretSpec, *, now: datetime) -> dict[str, bytes]:
    bundle = generate_bundle(
        service=spec.service,
        namespace=spec.namespace,
        now=now,
        extra_names=spec.extra_names,
        cert_validity=spec.cert_validity,
        ca_validity=spec.ca_validity,
        key_type=spec.key_type,
    )
    return {
        CA_CERT_FILE: bundle.ca_cert_pem,
        CA_KEY_FILE: bundle.ca_key_pem,
        CERT_FILE: bundle.cert_pem,
        KEY_FILE: bundle.key_pem,
    }


def _decide(
    spec: SecretSpec, files: Mapping[str, bytes], *, now: datetime
) -> tuple[Action, str, dict[str, bytes]]:
    """(action, reason, the files the Secret should hold) for a Secret holding `files`."""
    ca_pem = files.get(CA_CERT_FILE, b"")
    if distrusted := _distrusted(ca_pem, spec.distrusted):
        return "rotated-ca", f"the CA {distrusted} is distrusted", _fresh(spec, now=now)
    rotate, why = ca_needs_rotation(ca_pem, now=now, renew_fraction=spec.renew_fraction)
    postponed = ""
    if rotate:
        # With a renew fraction of 1 the CA is due only once nobody can trust it any more:
        # expired, not yet valid, unreadable or not a CA.
        unusable, _ = ca_needs_rotation(ca_pem, now=now, renew_fraction=1.0)
        if spec.rotate_due_ca or unusable:
            return "rotated-ca", why, _fresh(spec, now=now)
        postponed = f"; {why}, its rotation is left to a run that publishes the caBundle"
    renew, why = needs_renewal(
        cert_pem=files.get(CERT_FILE, b""),
        key_pem=files.get(KEY_FILE, b""),
        ca_pem=ca_pem,
        dns_names=spec.dns_names(),
        now=now,
        renew_fraction=spec.renew_fraction,
    )
    if not renew:
        return "kept", why + postponed, dict(files)
    try:
        cert_pem, key_pem = issue_serving_cert(
            ca_cert_pem=ca_pem,
            ca_key_pem=files.get(CA_KEY_FILE, b""),
            dns_names=spec.dns_names(),
            now=now,
            validity=spec.cert_validity,
            key_type=spec.key_type,
        )
    except ValueError as error:
        # A Secret made elsewhere (e.g. `certs generate` + kubectl) has no ca.key.
        return "rotated-ca", f"{why}; the CA cannot sign a new one: {error}", _fresh(spec, now=now)
    return "renewed", why + postponed, {**files, CERT_FILE: cert_pem, KEY_FILE: key_pem}


def _distrusted(ca_pem: bytes, distrusted: frozenset[str]) -> str:
    """The name of the first CA of `ca_pem` that is distrusted, or ""."""
    return next((ca_name(ca) for ca in cas_of(ca_pem) if fingerprint(ca) in distrusted), "")


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
