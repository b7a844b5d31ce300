"""`shm-webhook certs check`: report a certificate read from a file, a Secret or a live endpoint
(docs/tls.md).

Owns: `CheckOptions` (the command's options), `check` (the `key: value` report and whether the
certificate is good for the threshold), and reading the certificate from each source. Only a
Secret needs the Kubernetes client (`certs.cluster`), imported then and only then, so checking
a file or an endpoint never loads it.

Raises `certs.errors.BadInput` for an input that cannot be used; never exits. Must not import
anything in `webhook` but `webhook.checks`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self, TextIO

from cryptography import x509

from certs.describe import describe, fetch_served, load_certificate, parse_endpoint
from certs.errors import BadInput, say
from certs.files import CERT_FILE
from webhook.checks import one_line


@dataclass(frozen=True, kw_only=True)
class CheckOptions:
    """The options of `certs check`, named as its flags: exactly one of `cert_file`, `secret`
    (with `namespace`, optionally `kubeconfig` and `context`) and `endpoint` (optionally
    `server_name`, `ca_file`)."""

    cert_file: Path | None = None
    secret: str | None = None
    namespace: str | None = None
    kubeconfig: Path | None = None
    context: str | None = None
    endpoint: str | None = None
    server_name: str | None = None
    ca_file: Path | None = None
    threshold_days: int = 30

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Self:
        """From parsed arguments (`vars(namespace)`); other entries are ignored."""
        return cls(**{field.name: values[field.name] for field in fields(cls)})


def check(options: CheckOptions, *, out: TextIO, now: datetime | None = None) -> bool:
    """Print the certificate's report, one `key: value` per line; True when it is valid for at
    least `threshold_days` more (and, with `ca_file`, verified for the server name)."""
    _check_source(options)
    verification: tuple[str, bool] | None = None
    if options.cert_file is not None:
        cert = _read_cert_file(options.cert_file)
    elif options.secret is not None and options.namespace is not None:
        cert = _read_secret_cert(
            options.secret,
            namespace=options.namespace,
            kubeconfig=options.kubeconfig,
            context=options.context,
        )
    elif options.endpoint is not None:
        cert, verification = _read_served_cert(
            options.endpoint, server_name=options.server_name, ca_file=options.ca_file
        )
    else:  # _check_source let nothing else through
        raise BadInput("give exactly one of --cert-file, --secret and --endpoint")
    threshold = timedelta(days=options.threshold_days)
    good, report = describe(cert, now=now or datetime.now(UTC), threshold=threshold)
    if verification is not None:
        report.insert(-1, ("verified", verification[0]))
        if not verification[1]:
            # A certificate the kube-apiserver would refuse is never reported as healthy.
            key, status = report[-1]
            report[-1] = (
                key,
                f"not verified; otherwise {status}" if good else f"not verified; {status}",
            )
            good = False
    for key, value in report:
        say(f"{key}: {value}", out=out)
    return good


def _check_source(options: CheckOptions) -> None:
    sources = [options.cert_file, options.secret, options.endpoint]
    if sum(source is not None for source in sources) != 1:
        raise BadInput("give exactly one of --cert-file, --secret and --endpoint")
    if (options.secret is None) != (options.namespace is None):
        raise BadInput("--secret and --namespace go together")
    if (options.kubeconfig or options.context) is not None and options.secret is None:
        raise BadInput("--kubeconfig and --context apply to --secret only")
    if options.endpoint is None and (options.server_name or options.ca_file) is not None:
        raise BadInput("--server-name and --ca-file apply to --endpoint only")
    if options.threshold_days < 0:
        raise BadInput(f"--threshold-days must be 0 or more, got {options.threshold_days}")


def _read_cert_file(path: Path) -> x509.Certificate:
    try:
        return load_certificate(path.read_bytes(), source=str(path))
    except OSError as error:
        raise BadInput(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise BadInput(str(error)) from None


def _read_secret_cert(
    name: str, *, namespace: str, kubeconfig: Path | None, context: str | None
) -> x509.Certificate:
    """The serving certificate (tls.crt) of the Secret; BadInput when it cannot be read."""
    import urllib3  # with the Kubernetes client, only for this source
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from certs.cluster import api_client, api_problem

    where = f"Secret {namespace}/{name}"
    with api_client(kubeconfig, context=context) as api:
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


def _read_served_cert(
    endpoint: str, *, server_name: str | None, ca_file: Path | None
) -> tuple[x509.Certificate, tuple[str, bool]]:
    """The served certificate, and what its verification found and whether that is fine."""
    try:
        host, port = parse_endpoint(endpoint)
        name = server_name or host
        served = fetch_served(host=host, port=port, server_name=name, ca_file=ca_file)
    except ValueError as error:
        raise BadInput(str(error)) from None
    except OSError as error:
        problem = f"cannot fetch the certificate of {endpoint}: {error}"
        raise BadInput(one_line(problem)) from None
    if served.problem is None:
        return served.cert, ("not checked (no --ca-file)", True)
    if served.problem:
        return served.cert, (f"no, not for {name} by {ca_file}: {served.problem}", False)
    return served.cert, (f"yes, for {name} by {ca_file}", True)
