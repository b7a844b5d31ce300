"""What each `shm-webhook` subcommand does once its arguments are parsed (docs/commands.md).

Owns: `UsageError` and the adapters from parsed arguments to the library: `serve`, `mutate`,
`policy`, `certs_generate`, `certs_bootstrap`, `certs_check`, `check`, each returning the
process exit code: 0 when it succeeded, 1 when the previewed object is denied or, for `certs`,
the cluster refused or the certificate checked is due, or `check` found a failure; a bad
setting or input raises `UsageError` (exit 2).

Keeps `serve` lean: the server, `yaml`, `certs` and `webhook.diagnose` are imported by the
subcommand that needs them, never at module level (docs/performance.md). Must not import the
Kubernetes client.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import orjson

from webhook import preview
from webhook.settings import Settings, load_settings


class UsageError(Exception):
    """A bad command line or input; printed as one line, exit code 2."""


def settings(args: argparse.Namespace) -> Settings:
    """The settings the flags, the environment and `--config` make together."""
    flags = {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
    return load_settings(flags, config_file=args.config)


def serve(args: argparse.Namespace) -> int:
    from webhook.server import ListenError  # uvicorn and TLS only for this subcommand
    from webhook.server import serve as run

    try:
        return run(settings(args))
    except ListenError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3  # as uvicorn's own exit when the HTTPS port cannot be bound


def mutate(args: argparse.Namespace) -> int:
    policy = settings(args).policy()
    try:
        documents, as_json = preview.read(args.filename)
        given, _ = preview.read(args.namespace_file) if args.namespace_file else ([], True)
        namespaces = preview.Namespaces(given + documents, policy)
        previews = [preview.preview(document, policy, namespaces) for document in documents]
    except preview.InputError as error:
        raise UsageError(str(error)) from None
    for result in previews:
        for line in result.report:
            print(line, file=sys.stderr)
    if args.output == "patch":
        sys.stdout.write("".join(orjson.dumps(p.ops).decode() + "\n" for p in previews))
    else:
        sys.stdout.write(preview.encode([p.document for p in previews], as_json=as_json))
    return 1 if any(result.denied for result in previews) else 0


def policy(args: argparse.Namespace) -> int:
    """Print the admission policies of the policy engine for these settings."""
    from webhook.admission_policy import Engine, EngineError, policies
    from webhook.checks import is_dns_label, is_dns_subdomain

    if not is_dns_subdomain(f"{args.name}-warnings"):
        raise UsageError(f"--name {args.name!r} is not a DNS-1123 subdomain of at most 244")
    for namespace in filter(None, [args.namespace, *args.exclude_namespaces]):
        if not is_dns_label(namespace):
            raise UsageError(f"namespace {namespace!r} is not a DNS-1123 label")
    engine = Engine(
        name=args.name,
        scope=args.scope,
        namespace=args.namespace,
        exclude_namespaces=tuple(args.exclude_namespaces),
        failure_policy=args.failure_policy,
    )
    try:
        objects = policies(settings(args), engine)
    except EngineError as error:
        raise UsageError(str(error)) from None
    if args.output == "json":
        listed = {"apiVersion": "v1", "kind": "List", "items": objects}
        sys.stdout.write(orjson.dumps(listed, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        import yaml  # only here: `serve` never pays for it

        sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False, width=2**31))
    return 0


def certs_generate(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from certs.files import write_bundle
    from certs.generate import generate_bundle

    validities = {
        key: timedelta(days=days)
        for key, days in (("cert_validity", args.cert_days), ("ca_validity", args.ca_days))
        if days is not None
    }
    try:
        bundle = generate_bundle(
            service=args.service,
            namespace=args.namespace,
            now=datetime.now(UTC),
            extra_names=args.extra_names,
            key_type=args.key_type,
            **validities,
        )
        write_bundle(bundle, args.out)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot write to {args.out}: {error.strerror}") from None
    print(f"wrote ca.crt, tls.crt and tls.key to {args.out}", file=sys.stderr)
    return 0


def certs_bootstrap(args: argparse.Namespace) -> int:
    from certs.bootstrap import BootstrapOptions, bootstrap  # the Kubernetes client only here

    options = BootstrapOptions.from_values(vars(args))

    def run() -> bool:
        bootstrap(options, out=sys.stdout)
        return True

    return _certs_outcome(run)


def certs_check(args: argparse.Namespace) -> int:
    from certs.check import CheckOptions, check

    options = CheckOptions.from_values(vars(args))
    return _certs_outcome(lambda: check(options, out=sys.stdout))


def check(args: argparse.Namespace) -> int:
    from webhook.diagnose.command import CheckOptions, run  # the Kubernetes client only here

    options = CheckOptions.from_values(vars(args))
    return _certs_outcome(lambda: run(options, out=sys.stdout) == 0)


def _certs_outcome(command: Callable[[], bool]) -> int:
    """0 when the command succeeds, 1 when it fails or finds a problem, 2 for bad input."""
    from certs.errors import BadInput, Failed

    try:
        return 0 if command() else 1
    except BadInput as error:
        raise UsageError(str(error)) from None
    except Failed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
