"""`shm-webhook certs bootstrap`: the serving Secret made valid and its CA trusted, in the one
order that never fails an admission (SPEC §6).

Owns: `BootstrapOptions` (the command's options) and `bootstrap`, the whole sequence: decide
the Secret; when it changes, trust its CA in the caBundle first (`certs.cabundle`), then write
it (`certs.publish`); then publish the caBundle again. One line per step. With
`skip_ca_bundle` (the chart's pre-install hook, before the configuration exists) the
configuration is never read or waited for, and a CA is replaced only when unusable.

Raises `certs.errors.BadInput` for an option that cannot be used and `certs.errors.Failed` when
the cluster refuses; never exits. Must not import anything in `webhook` but `webhook.checks`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TextIO

from kubernetes import client

from certs.cabundle import patch_ca_bundle
from certs.cluster import api_client, refusals_as_failures
from certs.errors import BadInput, say
from certs.generate import KeyType, dns_names
from certs.publish import SecretPlan, SecretResult, SecretSpec, ensure_secret


@dataclass(frozen=True, kw_only=True)
class BootstrapOptions:
    """The options of `certs bootstrap`, named as its flags."""

    secret: str
    namespace: str
    service: str
    webhook_config: str
    extra_names: Sequence[str] = ()
    key_type: KeyType = "ecdsa"
    skip_ca_bundle: bool = False
    kubeconfig: Path | None = None
    timeout: float = 120.0

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Self:
        """From parsed arguments (`vars(namespace)`); other entries are ignored."""
        return cls(**{field.name: values[field.name] for field in fields(cls)})


def bootstrap(options: BootstrapOptions, *, out: TextIO) -> None:
    """Make the serving Secret valid and, unless `skip_ca_bundle`, its CA trusted by every
    webhook of the configuration; one line per step on `out`.

    A new CA is published before the Secret holding it is written, so the kube-apiserver
    trusts it before any pod can serve a certificate it signed.
    """
    try:
        dns_names(service=options.service, namespace=options.namespace, extra=options.extra_names)
    except ValueError as error:
        raise BadInput(str(error)) from None
    spec = SecretSpec(
        namespace=options.namespace,
        name=options.secret,
        service=options.service,
        extra_names=tuple(options.extra_names),
        key_type=options.key_type,
        rotate_due_ca=not options.skip_ca_bundle,
    )
    now = datetime.now(UTC)
    with api_client(options.kubeconfig) as api, refusals_as_failures():
        if options.skip_ca_bundle:
            _secret_only(client.CoreV1Api(api), spec, options=options, now=now, out=out)
        else:
            _secret_and_bundle(api, spec, options=options, now=now, out=out)


def _secret_only(
    core: client.CoreV1Api,
    spec: SecretSpec,
    *,
    options: BootstrapOptions,
    now: datetime,
    out: TextIO,
) -> None:
    result = ensure_secret(core, spec, now=now)
    _say_secret(result, spec=spec, out=out)
    label = _bundle_label(options)
    if result.action == "rotated-ca":
        say(
            f"{label}: must be republished: the Secret holds a new CA that the kube-apiserver "
            "does not trust yet; run certs bootstrap without --skip-ca-bundle (the chart's "
            "post-install and post-upgrade hook does)",
            out=out,
        )
    else:
        say(f"{label}: left to a run without --skip-ca-bundle", out=out)


def _secret_and_bundle(
    api: client.ApiClient,
    spec: SecretSpec,
    *,
    options: BootstrapOptions,
    now: datetime,
    out: TextIO,
) -> None:
    label = _bundle_label(options)
    publish = functools.partial(
        patch_ca_bundle,
        client.AdmissionregistrationV1Api(api),
        webhook_config=options.webhook_config,
        now=now,
        timeout=options.timeout,
    )

    def trust_first(plan: SecretPlan) -> None:
        # Idempotent: no PATCH when the bundle already trusts the plan's CA.
        if changed := publish(ca_bundle_pem=plan.ca_bundle_pem):
            say(f"{label}: patched {_webhooks(changed)} before the Secret is written", out=out)

    result = ensure_secret(client.CoreV1Api(api), spec, now=now, before_write=trust_first)
    _say_secret(result, spec=spec, out=out)
    # Again after the write: a kept Secret skipped trust_first, and after a conflict the CA
    # finally kept may be another writer's.
    changed = publish(ca_bundle_pem=result.ca_bundle_pem)
    say(f"{label}: patched {_webhooks(changed)}" if changed else f"{label}: up to date", out=out)


def _say_secret(result: SecretResult, *, spec: SecretSpec, out: TextIO) -> None:
    say(f"secret {spec.namespace}/{spec.name}: {result.action} ({result.reason})", out=out)


def _bundle_label(options: BootstrapOptions) -> str:
    return f"caBundle of mutatingwebhookconfiguration {options.webhook_config}"


def _webhooks(count: int) -> str:
    return f"{count} webhook" if count == 1 else f"{count} webhooks"
