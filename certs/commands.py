"""`shm-webhook certs bootstrap` and `certs check`: the TLS commands that reach a cluster or an
endpoint (docs/tls.md).

Owns: the options of both commands, check's report on a certificate read from a file, a
Secret or a live endpoint, and the two errors `webhook.cli` maps to exit codes: `Failed` (the
cluster refused: 1) and `BadInput` (an option or input that cannot be used: 2). What talks to
the Kubernetes API is `certs.cluster`, imported only when a command needs it, so checking a
file or an endpoint never loads the Kubernetes client.

Raises, never exits. Must not import anything in `webhook`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self, TextIO

from cryptography import x509

from certs.describe import describe, fetch_served, load_certificate, parse_endpoint
from certs.generate import KeyType, dns_names


class Failed(Exception):
    """The cluster refused or did not answer as needed; one line (exit code 1)."""


class BadInput(Exception):
    """An option or input that cannot be used; one line (exit code 2)."""


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
    trusts it before any pod can serve a certificate it signed. With `skip_ca_bundle` the
    configuration is never read or waited for, and a CA is replaced only when unusable.
    """
    try:
        dns_names(service=options.service, namespace=options.namespace, extra=options.extra_names)
    except ValueError as error:
        raise BadInput(str(error)) from None
    from certs import cluster

    cluster.bootstrap(options, out=out)


@dataclass(frozen=True, kw_only=True)
class CheckOptions:
    """The options of `certs check`, named as its flags: exactly one of `cert_file`, `secret`
    (with `namespace`, optionally `kubeconfig`) and `endpoint` (optionally `server_name`,
    `ca_file`)."""

    cert_file: Path | None = None
    secret: str | None = None
    namespace: str | None = None
    kubeconfig: Path | None = None
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
        from certs import cluster

        cert = cluster.read_secret_cert(
            options.secret, namespace=options.namespace, kubeconfig=options.kubeconfig
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
    for key, value in report:
        say(f"{key}: {value}", out=out)
    return good and (verification is None or verification[1])


def one_line(text: str) -> str:
    return " ".join(text.split())


def _check_source(options: CheckOptions) -> None:
    sources = [options.cert_file, options.secret, options.endpoint]
    if sum(source is not None for source in sources) != 1:
        raise BadInput("give exactly one of --cert-file, --secret and --endpoint")
    if (options.secret is None) != (options.namespace is None):
        raise BadInput("--secret and --namespace go together")
    if options.kubeconfig is not None and options.secret is None:
        raise BadInput("--kubeconfig applies to --secret only")
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


def say(line: str, *, out: TextIO) -> None:
    # Flushed at once: a Job's log shows how far a run got before it failed.
    print(line, file=out, flush=True)
