"""The Kubernetes side of the certs commands: the client, `certs bootstrap`'s steps in their
order, and reading a Secret's certificate for `certs check`.

Owns: `api_client` (the in-cluster service account, or a kubeconfig file), `bootstrap` (decide
the Secret, trust a new CA in the caBundle first, write the Secret, then the caBundle again;
one line per step), `read_secret_cert`, and the translation of the client's errors into the
commands' one-line `Failed` and `BadInput`.

Imported by `certs.commands` only when a command needs the cluster. Must not import anything
in `webhook`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import urllib3
import yaml
from cryptography import x509
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from certs.cabundle import patch_ca_bundle
from certs.commands import BadInput, BootstrapOptions, Failed, one_line, say
from certs.describe import load_certificate
from certs.files import CERT_FILE
from certs.publish import PublishError, SecretPlan, SecretResult, SecretSpec, ensure_secret


def bootstrap(options: BootstrapOptions, *, out: TextIO) -> None:
    """`certs.commands.bootstrap` once the options are known to be usable."""
    spec = SecretSpec(
        namespace=options.namespace,
        name=options.secret,
        service=options.service,
        extra_names=tuple(options.extra_names),
        key_type=options.key_type,
        rotate_due_ca=not options.skip_ca_bundle,
    )
    now = datetime.now(UTC)
    with api_client(options.kubeconfig) as api, _refusals_as_failures():
        if options.skip_ca_bundle:
            _secret_only(client.CoreV1Api(api), spec, options=options, now=now, out=out)
        else:
            _secret_and_bundle(api, spec, options=options, now=now, out=out)


def read_secret_cert(name: str, *, namespace: str, kubeconfig: Path | None) -> x509.Certificate:
    """The serving certificate (tls.crt) of the Secret; BadInput when it cannot be read."""
    where = f"Secret {namespace}/{name}"
    with api_client(kubeconfig) as api:
        try:
            secret = client.CoreV1Api(api).read_namespaced_secret(name, namespace)
        except ApiException as error:
            raise BadInput(f"cannot read {where}: {api_problem(error)}") from None
        except urllib3.exceptions.HTTPError as error:
            raise BadInput(one_line(f"cannot read {where}: {error}")) from None
    encoded = (secret.data or {}).get(CERT_FILE)
    try:
        return load_certificate(base64.b64decode(encoded or "", validate=True), source=where)
    except (ValueError, binascii.Error):
        raise BadInput(f"{where} holds no PEM certificate in {CERT_FILE}") from None


@contextmanager
def api_client(kubeconfig: Path | None) -> Iterator[client.ApiClient]:
    """A client from `kubeconfig`, or from the pod's service account when None."""
    try:
        if kubeconfig is None:
            configuration = client.Configuration()
            load = config.load_incluster_config  # untyped in the kubernetes package
            load(client_configuration=configuration)  # type: ignore[no-untyped-call]
            api = client.ApiClient(configuration)
        else:
            # persist_config=False: a token refresh must not rewrite the user's file.
            api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), persist_config=False
            )
    # The kubeconfig loader lets parse and lookup errors of a malformed file through as is.
    except (config.ConfigException, OSError, yaml.YAMLError, ValueError, TypeError, KeyError) as e:
        where = (
            f"--kubeconfig {kubeconfig}"
            if kubeconfig is not None
            else "the in-cluster service account (outside a cluster, give --kubeconfig)"
        )
        problem = f"cannot configure the Kubernetes client from {where}: {e}"
        raise BadInput(one_line(problem)) from None
    with api:
        yield api


def api_problem(error: ApiException) -> str:
    """One line: the HTTP status, its reason and the apiserver's message."""
    try:
        status = json.loads(error.body or "")
    except ValueError:  # not a Status: a proxy's or load balancer's page
        status = None
    message = status.get("message") if isinstance(status, dict) else None
    text = f"the Kubernetes API answered {error.status} {error.reason}"
    return one_line(f"{text}: {message}" if message else text)


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


@contextmanager
def _refusals_as_failures() -> Iterator[None]:
    try:
        yield
    except ApiException as error:
        raise Failed(api_problem(error)) from None
    except PublishError as error:
        raise Failed(one_line(str(error))) from None
    except urllib3.exceptions.HTTPError as error:
        reason = getattr(error, "reason", None) or error
        raise Failed(one_line(f"cannot reach the Kubernetes API: {reason}")) from None


def _say_secret(result: SecretResult, *, spec: SecretSpec, out: TextIO) -> None:
    say(f"secret {spec.namespace}/{spec.name}: {result.action} ({result.reason})", out=out)


def _bundle_label(options: BootstrapOptions) -> str:
    return f"caBundle of mutatingwebhookconfiguration {options.webhook_config}"


def _webhooks(count: int) -> str:
    return f"{count} webhook" if count == 1 else f"{count} webhooks"
