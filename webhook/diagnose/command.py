"""`shm-webhook check`: every check of a live install, then the end-to-end probe, printed.

Owns: `CheckOptions` (the command's options, named as its flags) and `run`: resolve the
cluster (`certs.cluster.api_client`), find the MutatingWebhookConfiguration(s) (`--webhook-config`,
else those labelled `app.kubernetes.io/part-of=shm-webhook`, kept to the ones calling a Service
in `--release-namespace` when given), check each (`webhook.diagnose.install`), the scope of
each entry and the namespaces' policies (`webhook.diagnose.scope`), dry-run the probe pod
(`webhook.diagnose.probe`), print the report as text or JSON and return the exit code (0 when
nothing failed, 1 otherwise). A `-f` file that cannot be used, or a cluster that cannot be
configured, raises `certs.errors.BadInput` (exit 2) before any check is printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self, TextIO

from certs.cluster import api_client
from certs.errors import BadInput
from webhook import preview
from webhook.diagnose import report as rendering
from webhook.diagnose.cluster import PART_OF_LABEL, Reader, Refused, rights_hint
from webhook.diagnose.install import configuration_checks
from webhook.diagnose.probe import Outcome, probe_pod, user_pod, verdict
from webhook.diagnose.report import Report, failed
from webhook.diagnose.scope import name_of, policy_checks, scope_checks
from webhook.diagnose.serving import Limits
from webhook.policy import Policy

DEFAULT_NAMESPACE = "default"
DEFAULT_THRESHOLD_DAYS = 14


@dataclass(frozen=True, kw_only=True)
class CheckOptions:
    """The options of `check`, named as its flags."""

    kubeconfig: Path | None = None
    context: str | None = None
    release_namespace: str | None = None
    webhook_config: str | None = None
    namespace: str | None = None
    filename: str | None = None
    output: Literal["text", "json"] = "text"
    threshold_days: int = DEFAULT_THRESHOLD_DAYS
    handshake: bool = False

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Self:
        """From parsed arguments (`vars(namespace)`); other entries are ignored."""
        return cls(**{field.name: values[field.name] for field in fields(cls)})


def run(options: CheckOptions, *, out: TextIO, now: datetime | None = None) -> int:
    """Check the install and print the report on `out`; the exit code (0 or 1)."""
    if options.threshold_days < 0:
        raise BadInput(f"--threshold-days must be 0 or more, got {options.threshold_days}")
    submitted, named = _read_pod(options.filename)
    namespace = options.namespace or named or DEFAULT_NAMESPACE
    limits = Limits(
        now=now or datetime.now(UTC),
        threshold_days=options.threshold_days,
        handshake=options.handshake,
    )
    found = Report()
    with api_client(options.kubeconfig, context=options.context) as api:
        reader = Reader(api)
        configurations = _configurations(reader, options, found)
        if configurations:
            namespaces, entries, policy = _install(reader, configurations, found, limits=limits)
            pod = submitted or probe_pod(namespace=namespace, annotation=policy.annotation)
            pod["metadata"]["namespace"] = namespace
            what = f"pod of {options.filename}" if options.filename else "probe pod"
            _probe(reader, pod, found, namespaces=namespaces, entries=entries, policy=policy,
                   name=f"{what} in namespace {namespace}")  # fmt: skip
    out.write(rendering.as_json(found) if options.output == "json" else rendering.text(found))
    return found.exit_code()


def _install(
    reader: Reader, configurations: list[dict[str, Any]], found: Report, *, limits: Limits
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]], Policy]:
    """Every check of the configurations, then their scope and the namespaces' policies; the
    namespaces (None when they cannot be listed), all the webhook entries, and the policy of
    the first Deployment found (the defaults when none)."""
    entries: list[dict[str, Any]] = []
    policy: Policy | None = None
    for configuration in configurations:
        checks, deployed = configuration_checks(reader, configuration, limits=limits)
        found.checks += checks
        policy = policy or deployed
        entries += configuration.get("webhooks") or []
    policy = policy or Policy()
    namespaces = _namespaces(reader, found)
    for configuration in configurations if namespaces is not None else []:
        webhooks = configuration.get("webhooks") or []
        found.checks += scope_checks(webhooks, namespaces or [])
        found.checks += policy_checks(webhooks, namespaces or [], policy)
    return namespaces, entries, policy


def _read_pod(filename: str | None) -> tuple[dict[str, Any] | None, str | None]:
    if filename is None:
        return None, None
    try:
        documents, _ = preview.read([filename])
        if len(documents) != 1:
            raise ValueError(f"{filename} holds {len(documents)} objects; -f takes one pod")
        return user_pod(documents[0], source=filename)
    except ValueError as error:  # preview.InputError too
        raise BadInput(str(error)) from None


def _configurations(reader: Reader, options: CheckOptions, found: Report) -> list[dict[str, Any]]:
    """The configurations to check; a failed check in `found` when there are none."""
    name = f"MutatingWebhookConfiguration {options.webhook_config or ''}".rstrip()
    try:
        if options.webhook_config is not None:
            configurations = [reader.webhook_configuration(options.webhook_config)]
        else:
            configurations = reader.webhook_configurations()
    except Refused as refused:
        hint = rights_hint(refused, verb="get", resource="mutatingwebhookconfigurations") or (
            "kubectl get mutatingwebhookconfigurations" if refused.code == 404 else ""
        )
        found.checks.append(failed(name, refused.problem, hint=hint))
        return []
    if not configurations:
        found.checks.append(
            failed(
                name,
                f"none is labelled {PART_OF_LABEL}",
                hint="install the chart, or name the configuration with --webhook-config",
            )
        )
        return []
    wanted = options.release_namespace
    if wanted is None:
        return configurations
    kept = [c for c in configurations if wanted in _service_namespaces(c)]
    if not kept:
        names = ", ".join(name_of(c) for c in configurations)
        found.checks.append(
            failed(
                name,
                f"none of {names} calls a Service in namespace {wanted}",
                hint="give the namespace the chart is installed in (helm list -A)",
            )
        )
    return kept


def _service_namespaces(configuration: Mapping[str, Any]) -> set[str]:
    return {
        str(((webhook.get("clientConfig") or {}).get("service") or {}).get("namespace"))
        for webhook in configuration.get("webhooks") or []
    }


def _namespaces(reader: Reader, found: Report) -> list[dict[str, Any]] | None:
    try:
        return reader.namespaces()
    except Refused as refused:
        hint = rights_hint(refused, verb="list", resource="namespaces")
        found.checks.append(failed("namespaces", refused.problem, hint=hint))
        return None


def _probe(
    reader: Reader,
    pod: dict[str, Any],
    found: Report,
    *,
    namespaces: list[dict[str, Any]] | None,
    entries: list[dict[str, Any]],
    policy: Policy,
    name: str,
) -> None:
    namespace = pod["metadata"]["namespace"]
    try:
        stored, warnings = reader.dry_run_pod(namespace, pod)
        outcome = Outcome(stored=stored, warnings=tuple(warnings))
    except Refused as refused:
        outcome = Outcome(code=refused.code, message=refused.message)
    known = {name_of(n): n for n in namespaces or []}
    check, result = verdict(
        pod, outcome, namespace=known.get(namespace), entries=entries, policy=policy, name=name
    )
    found.checks.append(check)
    found.probe = result
