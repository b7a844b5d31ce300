"""The `shm-webhook` command line: `serve`, `mutate`, `policy`, `check` and
`certs generate|bootstrap|check` (docs/commands.md).

Owns: `main` (errors to exit codes: 2 with one line on stderr for a bad setting or input) and
the argument parser. Every setting is a flag of `serve`, every policy setting a flag of
`mutate`, both derived from `Settings` and `Policy`; what each subcommand does is in
`webhook.subcommands`. Must not import the server, `yaml`, `certs` or the Kubernetes client.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from webhook import subcommands
from webhook.policy import Policy
from webhook.settings import Settings, SettingsError, env_var, flag
from webhook.subcommands import UsageError
from webhook.version import VERSION

POLICY_SETTINGS = tuple(field.name for field in dataclasses.fields(Policy))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print the whole usage; an error is one line (docs/commands.md).
        raise UsageError(f"{self.prog}: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the process exit code."""
    try:
        args = _parser().parse_args(argv)
        return int(args.run(args))
    except (UsageError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except SystemExit as stop:  # --help, and uvicorn's own exits (3: could not start)
        return stop.code if isinstance(stop.code, int) else 1


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="shm-webhook", description="Memory-backed /dev/shm for Kubernetes pods.")
    parser.add_argument("--version", action="version", version=f"shm-webhook {VERSION}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the admission webhook over HTTPS")
    _setting_flags(serve, tuple(Settings.model_fields))
    serve.set_defaults(run=subcommands.serve)
    mutate = commands.add_parser("mutate", help="preview what the webhook does to an object")
    mutate.add_argument(
        "-f",
        "--filename",
        required=True,
        action="append",
        metavar="PATH",
        help="a YAML or JSON manifest, a directory of them, or - for stdin; repeatable",
    )
    mutate.add_argument(
        "--namespace-file",
        action="append",
        metavar="PATH",
        help="Namespace objects whose size annotations apply to the objects in them (or to"
        " objects naming no namespace, when only one is given); repeatable (default none)",
    )
    mutate.add_argument(
        "-o",
        "--output",
        choices=("object", "patch"),
        default="object",
        help="print the objects as the webhook leaves them, or one JSON patch array per object"
        " (default object)",
    )
    _setting_flags(mutate, POLICY_SETTINGS)
    mutate.set_defaults(run=subcommands.mutate)
    _policy_flags(
        commands.add_parser(
            "policy",
            help="print admission policies that do what the webhook does (Kubernetes 1.36+)",
        )
    )
    certs = commands.add_parser("certs", help="TLS certificates for the webhook")
    _certs_commands(certs)
    check = commands.add_parser(
        "check",
        help="diagnose a live install (and a pod of yours)",
        description="Check the webhook's configuration, Service, pods, certificate and scope"
        " through the Kubernetes API, then dry-run a pod and say whether it got its /dev/shm,"
        " or why not (docs/commands.md#check).",
    )
    _check_flags(check)
    return parser


def _check_flags(check: argparse.ArgumentParser) -> None:
    _cluster_flags(check, scope="")
    found = check.add_mutually_exclusive_group()
    found.add_argument(
        "--release-namespace",
        metavar="NS",
        help="check the install whose webhooks call a Service in NS (default: every"
        " MutatingWebhookConfiguration labelled app.kubernetes.io/part-of=shm-webhook)",
    )
    found.add_argument(
        "--webhook-config", metavar="NAME", help="check this MutatingWebhookConfiguration"
    )
    check.add_argument(
        "--namespace",
        metavar="NS",
        help="where the probe pod is dry-run created (default: the -f pod's namespace, else"
        " default)",
    )
    check.add_argument(
        "-f",
        "--filename",
        metavar="PATH",
        help="probe with this Pod (or a workload's pod template), YAML or JSON, - for stdin,"
        " instead of a generated pod",
    )
    check.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="default text"
    )
    check.add_argument(
        "--threshold-days",
        type=_days_or_zero,
        default=14,
        metavar="N",
        help="fail when a serving certificate has fewer days left (default 14)",
    )
    check.add_argument(
        "--handshake",
        action="store_true",
        help="also dial every endpoint of the webhook Service and check what it serves (needs"
        " to run where the pods are reachable)",
    )
    check.set_defaults(run=subcommands.check)


def _policy_flags(policy: argparse.ArgumentParser) -> None:
    """`policy`: the policy settings, and what the chart's values say beyond them."""
    _setting_flags(policy, (*POLICY_SETTINGS, "namespace_policy"))
    policy.add_argument(
        "--name",
        default="shm-webhook",
        help="name of the policies and bindings (default shm-webhook)",
    )
    policy.add_argument(
        "--scope",
        choices=("namespace", "cluster"),
        default="namespace",
        help="namespaces labelled shm-injection=enabled, or all but those labelled"
        " shm-injection=disabled (default namespace)",
    )
    policy.add_argument(
        "--namespace",
        metavar="NS",
        help="the namespace shm-webhook is installed in, never in scope (default none)",
    )
    policy.add_argument(
        "--exclude-namespace",
        action="append",
        default=[],
        dest="exclude_namespaces",
        metavar="NS",
        help="one more namespace never in scope, beside kube-system, kube-public and"
        " kube-node-lease; repeatable (default none)",
    )
    policy.add_argument(
        "--failure-policy",
        choices=("Fail", "Ignore"),
        help="when a policy cannot be evaluated (default Fail without --default-size, Ignore"
        " with one)",
    )
    policy.add_argument(
        "-o",
        "--output",
        choices=("yaml", "json"),
        default="yaml",
        help="YAML documents, or one JSON List (default yaml)",
    )
    policy.set_defaults(run=subcommands.policy)


def _certs_commands(certs: argparse.ArgumentParser) -> None:
    certs_commands = certs.add_subparsers(required=True, metavar="COMMAND")
    generate = certs_commands.add_parser("generate", help="write a CA and a serving certificate")
    _service_flags(generate, service_help="the webhook's Service: its DNS names go in the SANs")
    generate.add_argument(
        "--namespace", required=True, metavar="NS", help="the namespace of the Service"
    )
    generate.add_argument("--out", required=True, type=Path, help="directory for the files")
    # Unset validities take certs.generate's defaults (365 and 1825 days, docs/tls.md).
    generate.add_argument(
        "--cert-days", type=_days, metavar="N", help="serving certificate validity (default 365)"
    )
    generate.add_argument("--ca-days", type=_days, metavar="N", help="CA validity (default 1825)")
    generate.set_defaults(run=subcommands.certs_generate)
    _certs_bootstrap_flags(
        certs_commands.add_parser(
            "bootstrap", help="create or renew the serving Secret and publish its CA (in-cluster)"
        )
    )
    _certs_check_flags(
        certs_commands.add_parser("check", help="report a certificate and when it expires")
    )


def _certs_bootstrap_flags(bootstrap: argparse.ArgumentParser) -> None:
    bootstrap.add_argument(
        "--secret", required=True, metavar="NAME", help="a kubernetes.io/tls Secret"
    )
    bootstrap.add_argument("--namespace", required=True, metavar="NS", help="of Secret and Service")
    _service_flags(bootstrap, service_help="the webhook's Service, in --namespace")
    bootstrap.add_argument(
        "--webhook-config", required=True, metavar="NAME", help="MutatingWebhookConfiguration"
    )
    bootstrap.add_argument(
        "--skip-ca-bundle",
        action="store_true",
        help="leave the webhook configuration alone (it may not exist yet); keep a CA that is "
        "still usable",
    )
    _cluster_flags(bootstrap, scope="")
    bootstrap.add_argument(
        "--timeout",
        type=_seconds,
        default=120.0,
        metavar="SECONDS",
        help="seconds to wait for the webhook configuration to exist and, with --distrust-ca, "
        "for every endpoint to serve the new certificate once the pods may have it (default 120)",
    )
    bootstrap.add_argument(
        "--distrust-ca",
        action="append",
        default=[],
        dest="distrust_cas",
        metavar="SHA256|FILE",
        help="stop trusting this CA (its SHA-256 fingerprint, or a PEM file of it): a new CA if "
        "the Secret holds it, then, once every endpoint serves the new certificate, a caBundle "
        "without it (docs/runbook-key-leak.md); repeatable (default none)",
    )
    bootstrap.set_defaults(run=subcommands.certs_bootstrap)


def _certs_check_flags(check: argparse.ArgumentParser) -> None:
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--cert-file", type=Path, metavar="FILE", help="a PEM certificate file")
    source.add_argument("--secret", metavar="NAME", help="a kubernetes.io/tls Secret")
    source.add_argument("--endpoint", metavar="HOST:PORT", help="the certificate served there")
    check.add_argument("--namespace", metavar="NS", help="with --secret")
    _cluster_flags(check, scope="with --secret: ")
    check.add_argument("--server-name", metavar="NAME", help="with --endpoint; default: HOST")
    check.add_argument(
        "--ca-file", type=Path, metavar="FILE", help="with --endpoint: verify against these CAs"
    )
    check.add_argument(
        "--threshold-days",
        type=_days_or_zero,
        default=30,
        metavar="N",
        help="exit 1 when fewer days are left (default 30)",
    )
    check.set_defaults(run=subcommands.certs_check)


def _cluster_flags(parser: argparse.ArgumentParser, *, scope: str) -> None:
    """--kubeconfig and --context, resolved as kubectl does (`certs.cluster.api_client`)."""
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="PATH",
        help=f"{scope}a kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else the"
        " in-cluster service account)",
    )
    parser.add_argument(
        "--context", metavar="NAME", help=f"{scope}the kubeconfig context (default: its current)"
    )


def _service_flags(parser: argparse.ArgumentParser, *, service_help: str) -> None:
    """The flags that shape a serving certificate, alike for `generate` and `bootstrap`."""
    parser.add_argument("--service", required=True, metavar="NAME", help=service_help)
    parser.add_argument(
        "--extra-name",
        action="append",
        default=[],
        dest="extra_names",
        metavar="NAME",
        help="one more DNS name or IP address for the SANs; repeatable (default none)",
    )
    parser.add_argument(
        "--key-type",
        choices=("ecdsa", "rsa"),
        default="ecdsa",
        help="ECDSA P-256 or RSA 2048 keys (default ecdsa)",
    )


def _setting_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML file of settings")
    for name in names:
        setting = Settings.model_fields[name]
        default = setting.default
        shown = "none" if default is None else repr(default)
        parser.add_argument(
            flag(name),
            dest=name,
            default=argparse.SUPPRESS,  # absent flags leave the lower sources in charge
            metavar="VALUE",
            help=f"{setting.description} (env {env_var(name)}; default {shown})".replace("%", "%%"),
        )


def _days(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days of at least 1")
    return int(text)


def _days_or_zero(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days (0 or more)")
    return int(text)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return seconds
