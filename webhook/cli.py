"""The `shm-webhook` command line: `serve`, `mutate` and `certs generate|bootstrap|check` (SPEC §5
to §7).

Owns: the argument parser (every setting as a flag), the mutate preview of Pods, workloads
with a pod template and AdmissionReviews, and the mapping of errors to exit codes: 2 with one
line on stderr for a bad setting or input, 1 when the previewed object is denied (or, for
`certs`, when the cluster refuses or the certificate checked is due).

Keeps `serve` lean: the server, `yaml` and `certs` are imported by the subcommand that needs
them, never at module level (PERF-NOTES §7). Must not import the Kubernetes client.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import orjson

from webhook import patches
from webhook.mutation import InvalidObject, Policy, plan
from webhook.review import WebhookError, check_review, planned_pod
from webhook.settings import ACCEPTED, Settings, SettingsError, env_var, flag, load_settings

POLICY_SETTINGS = (
    "annotation",
    "default_size",
    "max_size",
    "memory_policy",
    "on_invalid",
    "volume_name",
    "mount_path",
)
# Where each kind keeps the pod it makes: the whole object for a Pod, else its template.
POD_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "PodTemplate": ("template",),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "AdmissionReview": ("request", "object"),
}


class UsageError(Exception):
    """A bad command line or input; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print the whole usage; SPEC §7 wants one line.
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
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the admission webhook over HTTPS")
    _setting_flags(serve, tuple(Settings.model_fields))
    serve.set_defaults(run=_serve)
    mutate = commands.add_parser("mutate", help="preview what the webhook does to an object")
    mutate.add_argument("-f", "--filename", required=True, help="YAML or JSON file; - for stdin")
    mutate.add_argument("--output", choices=("object", "patch"), default="object")
    _setting_flags(mutate, POLICY_SETTINGS)
    mutate.set_defaults(run=_mutate)
    certs = commands.add_parser("certs", help="TLS certificates for the webhook")
    _certs_commands(certs)
    return parser


def _certs_commands(certs: argparse.ArgumentParser) -> None:
    certs_commands = certs.add_subparsers(required=True, metavar="COMMAND")
    generate = certs_commands.add_parser("generate", help="write a CA and a serving certificate")
    generate.add_argument("--service", required=True)
    generate.add_argument("--namespace", required=True)
    generate.add_argument("--out", required=True, type=Path, help="directory for the files")
    generate.add_argument("--extra-name", action="append", default=[], dest="extra_names")
    generate.add_argument("--key-type", choices=("ecdsa", "rsa"), default="ecdsa")
    # Unset validities take certs.generate's defaults (365 and 1825 days, SPEC §6).
    generate.add_argument("--cert-days", type=_days, help="serving certificate validity")
    generate.add_argument("--ca-days", type=_days, help="CA validity")
    generate.set_defaults(run=_certs_generate)
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
    bootstrap.add_argument("--service", required=True, metavar="S")
    bootstrap.add_argument(
        "--webhook-config", required=True, metavar="NAME", help="MutatingWebhookConfiguration"
    )
    bootstrap.add_argument(
        "--extra-name", action="append", default=[], dest="extra_names", metavar="N"
    )
    bootstrap.add_argument("--key-type", choices=("ecdsa", "rsa"), default="ecdsa")
    bootstrap.add_argument(
        "--skip-ca-bundle",
        action="store_true",
        help="leave the webhook configuration alone (it may not exist yet); keep a CA that is "
        "still usable",
    )
    bootstrap.add_argument(
        "--kubeconfig", type=Path, metavar="PATH", help="default: the in-cluster account"
    )
    bootstrap.add_argument(
        "--timeout",
        type=_seconds,
        default=120.0,
        metavar="SECONDS",
        help="seconds to wait for the webhook configuration to exist (default 120)",
    )
    bootstrap.set_defaults(run=_certs_bootstrap)


def _certs_check_flags(check: argparse.ArgumentParser) -> None:
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--cert-file", type=Path, metavar="FILE")
    source.add_argument("--secret", metavar="NAME", help="a kubernetes.io/tls Secret")
    source.add_argument("--endpoint", metavar="HOST:PORT", help="the certificate served there")
    check.add_argument("--namespace", metavar="NS", help="with --secret")
    check.add_argument(
        "--kubeconfig", type=Path, metavar="PATH", help="with --secret; default: in-cluster"
    )
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
    check.set_defaults(run=_certs_check)


def _setting_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML file of settings")
    for name in names:
        default = Settings.model_fields[name].default
        default = "a self-signed development one" if default is None else repr(default)
        parser.add_argument(
            flag(name),
            dest=name,
            default=argparse.SUPPRESS,  # absent flags leave the lower sources in charge
            metavar="VALUE",
            help=f"{ACCEPTED[name]} (env {env_var(name)}; default {default})".replace("%", "%%"),
        )


def _days(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days of at least 1")
    return int(text)


def _settings(args: argparse.Namespace) -> Settings:
    flags = {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
    return load_settings(flags, config_file=args.config)


def _serve(args: argparse.Namespace) -> int:
    from webhook.server import serve  # uvicorn and TLS only for this subcommand

    return serve(_settings(args))


def _certs_generate(args: argparse.Namespace) -> int:
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


def _certs_bootstrap(args: argparse.Namespace) -> int:
    from certs import commands  # the Kubernetes client only for this subcommand

    options = commands.BootstrapOptions.from_values(vars(args))

    def run() -> bool:
        commands.bootstrap(options, out=sys.stdout)
        return True

    return _certs_outcome(run)


def _certs_check(args: argparse.Namespace) -> int:
    from certs import commands

    options = commands.CheckOptions.from_values(vars(args))
    return _certs_outcome(lambda: commands.check(options, out=sys.stdout))


def _certs_outcome(command: Callable[[], bool]) -> int:
    """0 when the command succeeds, 1 when it fails or finds a problem, 2 for bad input."""
    from certs.commands import BadInput, Failed

    try:
        return 0 if command() else 1
    except BadInput as error:
        raise UsageError(str(error)) from None
    except Failed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


@dataclass
class _Preview:
    """One document's result: the object to print, the ops relative to it, what to say."""

    document: dict[str, Any]
    ops: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    denial: str | None = None


def _mutate(args: argparse.Namespace) -> int:
    policy = _settings(args).policy()
    text = _read_input(args.filename)
    documents, as_json = _decode(text, args.filename)
    previews = [_preview(document, policy) for document in documents]
    for preview in previews:
        for warning in preview.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if preview.denial is not None:
            print(f"denied: {preview.denial}", file=sys.stderr)
    admitted = [preview for preview in previews if preview.denial is None]
    if args.output == "patch":
        sys.stdout.write("".join(orjson.dumps(p.ops).decode() + "\n" for p in admitted))
    else:
        sys.stdout.write(_encode([p.document for p in admitted], as_json=as_json))
    return 1 if len(admitted) < len(previews) else 0


def _read_input(filename: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if filename == "-" else Path(filename).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {filename}: {error.strerror}") from None


def _decode(text: bytes, filename: str) -> tuple[list[dict[str, Any]], bool]:
    """The documents of the input, and whether it was JSON (else YAML, maybe several)."""
    try:
        documents, as_json = [orjson.loads(text)], True
    except orjson.JSONDecodeError:
        import yaml  # only for YAML input

        try:
            documents = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise UsageError(f"{filename} is neither JSON nor YAML{where}") from None
        as_json = False
    if not documents:
        raise UsageError(f"{filename} holds no object")
    for number, document in enumerate(documents, start=1):
        if not isinstance(document, dict) or not isinstance(document.get("kind"), str):
            raise UsageError(f"{filename}: document {number} is not a Kubernetes object (no kind)")
    return documents, as_json


def _preview(document: dict[str, Any], policy: Policy) -> _Preview:
    kind = document["kind"]
    who = f"{kind}/{_name(document)}"
    path = POD_PATHS.get(kind)
    if path is None:
        return _Preview(document, warnings=[f"{who}: not a pod or pod template; left unchanged"])
    pod = _pod(document, path, who=who)
    if pod is None:
        return _Preview(
            document, warnings=[f"{who}: not a Pod CREATE; the webhook allows it as is"]
        )
    try:
        result = plan(pod, policy)
    except InvalidObject as error:
        raise UsageError(f"{who}: {error}") from None
    warnings = [f"{who}: {warning}" for warning in result.warnings]
    if result.outcome == "denied":
        return _Preview(document, warnings=warnings, denial=f"{who}: {result.message}")
    prefix = patches.pointer(*path)
    ops = [{**op, "path": prefix + op["path"]} for op in result.ops]
    return _Preview(_apply(document, ops), ops=ops, warnings=warnings)


def _pod(document: dict[str, Any], path: tuple[str, ...], *, who: str) -> Mapping[str, Any] | None:
    """The pod (or pod template, with its metadata) that the webhook would see."""
    if document["kind"] == "AdmissionReview":
        try:
            return planned_pod(check_review(document))
        except WebhookError as error:
            raise UsageError(f"{who}: {error.message}") from None
    pod: object = document
    for key in path:
        pod = pod.get(key) if isinstance(pod, dict) else None
    if not isinstance(pod, dict):
        raise UsageError(f"{who}: {'.'.join(path)} is missing or not an object")
    return pod


def _apply(document: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    import jsonpatch  # the same RFC 6902 semantics the kube-apiserver applies

    return jsonpatch.apply_patch(document, ops)  # type: ignore[no-any-return]


def _name(document: Mapping[str, Any]) -> str:
    if document.get("kind") == "AdmissionReview":
        request = document.get("request")
        pod = request.get("object") if isinstance(request, dict) else None
        return _name(pod) if isinstance(pod, dict) else "(no object)"
    metadata = document.get("metadata")
    if isinstance(metadata, dict):
        name = metadata.get("name") or metadata.get("generateName")
        if isinstance(name, str):
            return name
    return "(unnamed)"


def _encode(documents: list[dict[str, Any]], *, as_json: bool) -> str:
    if as_json:
        return "".join(
            orjson.dumps(d, option=orjson.OPT_INDENT_2).decode() + "\n" for d in documents
        )
    import yaml

    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True) if documents else ""
