"""`shm-webhook certs bootstrap`: the serving Secret made valid and its CA trusted, and old or
distrusted CAs forgotten, in the one order that never fails an admission (docs/tls.md).

Owns: `BootstrapOptions` (the command's options) and `bootstrap`, the whole sequence:

1. decide the Secret; when it changes, trust its CA in the caBundle first (`certs.cabundle`),
   then write it (`certs.publish`); then publish the caBundle again;
2. forget: when a caBundle holds a CA other than the Secret's, ask every endpoint of the
   webhook Service what it serves (`certs.endpoints`) and drop each CA `certs.trust` says
   nothing may serve a certificate of any more;
3. with `distrust_cas`: step 1 rotates away from a distrusted CA the Secret holds, and step 2
   is repeated, with backoff, until no webhook trusts a distrusted CA (or the timeout).

One line per step. With `skip_ca_bundle` (the chart's pre-install hook, before the
configuration exists) only step 1's Secret half runs, and a CA is replaced only when unusable.

Raises `certs.errors.BadInput` for an option that cannot be used and `certs.errors.Failed` when
the cluster refuses or a distrusted CA is still served at the deadline; never exits. Must not
import anything in `webhook` but `webhook.checks`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Self, TextIO, TypedDict

from kubernetes import client

from certs.cabundle import patch_ca_bundle, read_trusted, rewrite_ca_bundles
from certs.cluster import api_client, refusals_as_failures
from certs.endpoints import serving_answers
from certs.errors import BadInput, Failed, say
from certs.generate import KeyType, dns_names
from certs.publish import SecretPlan, SecretResult, SecretSpec, ensure_secret
from certs.renewal import is_ca, subject
from certs.retry import Clock, wait_for
from certs.trust import (
    SETTLE,
    Verdict,
    bundle_after_serving,
    ca_since,
    cas_of,
    fingerprint,
    parse_fingerprint,
)

_NEW_CA = ("created", "rotated-ca")


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
    context: str | None = None
    timeout: float = 120.0
    # SHA-256 fingerprints of CAs, or files holding them.
    distrust_cas: Sequence[str] = ()

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Self:
        """From parsed arguments (`vars(namespace)`); other entries are ignored."""
        return cls(**{field.name: values[field.name] for field in fields(cls)})


def bootstrap(options: BootstrapOptions, *, out: TextIO, clock: Clock | None = None) -> None:
    """Make the serving Secret valid and, unless `skip_ca_bundle`, its CA trusted by every
    webhook of the configuration and every CA nothing may serve any more forgotten; one line
    per step on `out`.

    A new CA is published before the Secret holding it is written, so the kube-apiserver
    trusts it before any pod can serve a certificate it signed; an old one is dropped only
    once no pod may serve a certificate it signed.
    """
    clock = clock or Clock()
    spec = _spec(options)
    now = clock.now()
    with api_client(options.kubeconfig, context=options.context) as api, refusals_as_failures():
        if options.skip_ca_bundle:
            _secret_only(client.CoreV1Api(api), spec, options=options, now=now, out=out)
            return
        result = _secret_and_bundle(api, spec, options=options, now=now, clock=clock, out=out)
        written_at = clock.now() if result.action in _NEW_CA else None
        forgetting = _Forgetting(
            api=api,
            options=options,
            ca_pem=result.ca_bundle_pem,
            since=ca_since(result.ca_bundle_pem, written_at=written_at),
            clock=clock,
            out=out,
        )
        if spec.distrusted:
            forgetting.until_gone(spec.distrusted)
        else:
            forgetting.once()


def _spec(options: BootstrapOptions) -> SecretSpec:
    """The Secret the options want; BadInput when they cannot be used."""
    try:
        dns_names(service=options.service, namespace=options.namespace, extra=options.extra_names)
    except ValueError as error:
        raise BadInput(str(error)) from None
    distrusted = _distrusted(options.distrust_cas)
    if distrusted and options.skip_ca_bundle:
        raise BadInput("--distrust-ca needs the caBundle republished; drop --skip-ca-bundle")
    return SecretSpec(
        namespace=options.namespace,
        name=options.secret,
        service=options.service,
        extra_names=tuple(options.extra_names),
        key_type=options.key_type,
        rotate_due_ca=not options.skip_ca_bundle,
        distrusted=distrusted,
    )


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
    clock: Clock,
    out: TextIO,
) -> SecretResult:
    label = _bundle_label(options)
    publish = functools.partial(
        patch_ca_bundle,
        client.AdmissionregistrationV1Api(api),
        webhook_config=options.webhook_config,
        now=now,
        timeout=options.timeout,
        sleep=clock.sleep,
        clock=clock.monotonic,
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
    return result


@dataclass
class _Forgetting:
    """Step 2 of the sequence, once the Secret holds `ca_pem` (since `since`)."""

    api: client.ApiClient
    options: BootstrapOptions
    ca_pem: bytes
    since: datetime
    clock: Clock
    out: TextIO
    # The last line said about each CA (by fingerprint), so a retry repeats none.
    said: dict[str, str] = dataclasses.field(default_factory=dict)

    def once(self) -> list[Verdict]:
        """Drop from every caBundle the CAs other than `ca_pem` that nothing may serve a
        certificate of any more; the verdict on each."""
        admission = client.AdmissionregistrationV1Api(self.api)
        waits = self._waits()
        trusted = read_trusted(
            admission,
            webhook_config=self.options.webhook_config,
            service=self.options.service,
            namespace=self.options.namespace,
            **waits,
        )
        own = cas_of(self.ca_pem)
        if all(ca in own for bundle in trusted.bundles for ca in cas_of(bundle)):
            return []  # nothing to forget: no endpoint need be asked
        answers = serving_answers(
            self.api,
            namespace=self.options.namespace,
            service=self.options.service,
            ports=trusted.ports,
        )
        decide = functools.partial(
            bundle_after_serving,
            ca_pem=self.ca_pem,
            answers=answers,
            since=self.since,
            now=self.clock.now(),
        )
        verdicts: dict[str, Verdict] = {}

        def wanted(current: bytes) -> bytes:
            bundle, found = decide(current_bundle_pem=current)
            verdicts.update((fingerprint(verdict.ca), verdict) for verdict in found)
            return bundle

        webhook_config = self.options.webhook_config
        changed = rewrite_ca_bundles(
            admission, webhook_config=webhook_config, wanted=wanted, **waits
        )
        self._say(verdicts, changed=changed)
        return list(verdicts.values())

    def until_gone(self, distrusted: frozenset[str]) -> None:
        """`once` again, with backoff, until no webhook trusts a `distrusted` CA; Failed when one
        is still trusted `timeout` seconds after the pods may all have their new files."""
        left: list[Verdict] = []

        def gone() -> bool | None:
            nonlocal left
            left = [v for v in self.once() if v.kept and fingerprint(v.ca) in distrusted]
            return None if left else True

        settling = max(0.0, (self.since + SETTLE - self.clock.now()).total_seconds())
        timeout = settling + self.options.timeout
        label = _bundle_label(self.options)
        if wait_for(gone, timeout=timeout, sleep=self.clock.sleep, clock=self.clock.monotonic):
            say(f"{label}: trusts no distrusted CA", out=self.out)
            return
        raise Failed(
            f"{label} still trusts a distrusted CA after {timeout:.0f}s: {left[0]}; once that is "
            "fixed, run the same command again"
        )

    def _waits(self) -> _Waits:
        return {
            "timeout": self.options.timeout,
            "sleep": self.clock.sleep,
            "clock": self.clock.monotonic,
        }

    def _say(self, verdicts: Mapping[str, Verdict], *, changed: int) -> None:
        label = _bundle_label(self.options)
        for key, verdict in verdicts.items():
            if self.said.get(key) != (line := f"{label}: {verdict}"):
                say(line, out=self.out)
                self.said[key] = line
        if changed:
            say(
                f"{label}: patched {_webhooks(changed)} to forget what nothing serves", out=self.out
            )


class _Waits(TypedDict):
    """How the caBundle calls wait for the configuration to exist."""

    timeout: float
    sleep: Callable[[float], None]
    clock: Callable[[], float]


def _distrusted(values: Sequence[str]) -> frozenset[str]:
    """The fingerprints `--distrust-ca` names: each value a fingerprint or a PEM file of CAs."""
    found: set[str] = set()
    for value in values:
        if (digits := parse_fingerprint(value)) is not None:
            found.add(digits)
            continue
        try:
            cas = cas_of(Path(value).read_bytes())
        except OSError as error:
            raise BadInput(
                f"--distrust-ca {value!r} is neither a SHA-256 fingerprint (64 hex digits, "
                f"colons allowed) nor a readable file: {error.strerror}"
            ) from None
        if not cas:
            raise BadInput(f"--distrust-ca {value} holds no PEM certificate")
        if not_ca := next((cert for cert in cas if not is_ca(cert)), None):
            raise BadInput(
                f"--distrust-ca {value} holds {subject(not_ca)}, which is not a CA; give the CA "
                "that signed it (the ca.crt of the Secret it came from)"
            )
        found.update(fingerprint(ca) for ca in cas)
    return frozenset(found)


def _say_secret(result: SecretResult, *, spec: SecretSpec, out: TextIO) -> None:
    say(f"secret {spec.namespace}/{spec.name}: {result.action} ({result.reason})", out=out)


def _bundle_label(options: BootstrapOptions) -> str:
    return f"caBundle of mutatingwebhookconfiguration {options.webhook_config}"


def _webhooks(count: int) -> str:
    return f"{count} webhook" if count == 1 else f"{count} webhooks"
