"""The webhook's pods behind its Service: the Deployment, its PodDisruptionBudget, the serving
Secret it mounts and the policy its environment sets.

Owns: `deployment_checks` (the Deployment whose pod template the Service selects: replicas
available, at least one; then a PodDisruptionBudget selecting its pods), `secret_name` (the
Secret of the Deployment's `tls` volume, else the chart's `<fullname>-tls`), `read_secret_cert`
and `policy_of` (the `SHM_WEBHOOK_*` environment of the webhook container as a `Policy`, so the
probe uses the annotation the server reads). The I/O goes through `webhook.diagnose.cluster`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cryptography import x509

from certs.describe import load_certificate
from webhook.diagnose.cluster import Reader, Refused, rights_hint
from webhook.diagnose.report import Check, failed, passed, warned
from webhook.diagnose.selectors import matches
from webhook.policy import Policy, parse_default_size, parse_max_size
from webhook.quantity import SizeError

Json = Mapping[str, Any]
TLS_VOLUME = "tls"  # the chart's name for the serving Secret's volume
CERT_KEY = "tls.crt"
_SUFFIXED_MAX = 51  # the chart's suffixedName: <fullname cut to 51 - len(suffix)>-<suffix>


def suffixed(fullname: str, suffix: str) -> str:
    """The chart's `shm-webhook.suffixedName`: `<fullname>-<suffix>` within 52 characters."""
    return f"{fullname[: _SUFFIXED_MAX - len(suffix)].rstrip('-')}-{suffix}"


def selector_text(selector: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in selector.items())


def deployment_checks(
    reader: Reader, *, namespace: str, selector: Mapping[str, str], who: str
) -> tuple[list[Check], dict[str, Any] | None]:
    """The checks of the Deployment running the pods `selector` (a Service's) picks, and that
    Deployment (None when there is none)."""
    name = f"Deployment of {who}"
    try:
        deployments = reader.deployments(namespace)
    except Refused as refused:
        hint = rights_hint(refused, verb="list", resource="deployments", namespace=namespace)
        return [failed(name, refused.problem, hint=hint)], None
    running = [d for d in deployments if matches({"matchLabels": selector}, _template_labels(d))]
    if not running:
        return [
            failed(
                name,
                f"no Deployment in {namespace} runs the pods the Service selects"
                f" ({selector_text(selector)})",
                hint=f"is the release installed? helm -n {namespace} list; kubectl -n"
                f" {namespace} get deployments",
            )
        ], None
    deployment = running[0]
    title = f"Deployment {namespace}/{deployment['metadata']['name']}"
    desired = (deployment.get("spec") or {}).get("replicas", 1)
    status = deployment.get("status") or {}
    available = status.get("availableReplicas") or 0
    pods = f"kubectl -n {namespace} describe pods -l {selector_text(selector)}"
    if desired < 1:
        check = failed(
            title,
            "scaled to 0 replicas: nothing serves the webhook",
            hint=f"kubectl -n {namespace} scale deployment/{deployment['metadata']['name']}"
            " --replicas=2",
        )
    elif available < desired:
        rollout = (
            f"kubectl -n {namespace} rollout status deployment/{deployment['metadata']['name']}"
        )
        check = failed(
            title, f"{available}/{desired} replicas available", hint=f"{rollout}; {pods}"
        )
    else:
        check = passed(title, f"{available}/{desired} replicas available")
    return [check, _budget_check(reader, deployment, title=title, desired=desired)], deployment


def _budget_check(reader: Reader, deployment: Json, *, title: str, desired: int) -> Check:
    namespace = deployment["metadata"]["namespace"]
    name = f"PodDisruptionBudget of {title}"
    try:
        budgets = reader.disruption_budgets(namespace)
    except Refused as refused:
        hint = rights_hint(
            refused, verb="list", resource="poddisruptionbudgets", namespace=namespace
        )
        return failed(name, refused.problem, hint=hint)
    labels = _template_labels(deployment)
    selecting = [b for b in budgets if matches((b.get("spec") or {}).get("selector"), labels)]
    single = (
        "a single replica: while it restarts or is evicted the kube-apiserver cannot call the"
        " webhook (failurePolicy Fail refuses the pods that ask for shm meanwhile)"
    )
    if desired < 2:
        return warned(name, single, hint="run 2 or more replicas (the chart's replicaCount)")
    if not selecting:
        return warned(
            name,
            "none selects its pods: a node drain may evict every replica at once",
            hint="the chart makes one with podDisruptionBudget.enabled=true",
        )
    budget = selecting[0]
    spec, status = budget.get("spec") or {}, budget.get("status") or {}
    bound = (
        f"minAvailable {spec['minAvailable']}"
        if "minAvailable" in spec
        else f"maxUnavailable {spec.get('maxUnavailable')}"
    )
    allowed = status.get("disruptionsAllowed", 0)
    return passed(
        name,
        f"{budget['metadata']['name']} selects its pods ({bound}; {allowed} disruption"
        f"{'' if allowed == 1 else 's'} allowed now)",
    )


def secret_name(deployment: Json | None, *, service: str) -> tuple[str, str]:
    """(the serving Secret's name, how it was found: "from ..." or "by ...")."""
    volumes = (
        (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    ).get("volumes") or []
    secrets = [v for v in volumes if isinstance(v.get("secret"), Mapping)]
    for volume in sorted(secrets, key=lambda v: v.get("name") != TLS_VOLUME):
        items = volume["secret"].get("items")
        if volume.get("name") == TLS_VOLUME or any(i.get("key") == CERT_KEY for i in items or []):
            return str(
                volume["secret"].get("secretName")
            ), f"from the Deployment's {volume['name']} volume"
    return suffixed(service, "tls"), "the chart's naming"


def read_secret_cert(
    reader: Reader, *, namespace: str, name: str, found: str, service: str
) -> tuple[x509.Certificate | None, Check | None]:
    """The Secret's tls.crt, or the failed check saying why there is none."""
    who = f"Secret {namespace}/{name}"
    try:
        secret = reader.secret(namespace, name)
    except Refused as refused:
        hint = rights_hint(refused, verb="get", resource="secrets", namespace=namespace) or (
            "tls.mode=bootstrap: the chart's pre-install Job creates it; certManager: cert-manager"
            f" issues it from Certificate {service}; manual: the Secret of tls.existingSecret"
        )
        return None, failed(who, f"{refused.problem} (named {found})", hint=hint)
    encoded = (secret.get("data") or {}).get(CERT_KEY, "")
    try:
        pem = base64.b64decode(encoded, validate=True)
        return load_certificate(pem, source=who), None
    except (ValueError, binascii.Error):
        return None, failed(who, f"holds no PEM certificate in {CERT_KEY}")


def policy_of(deployment: Json | None) -> Policy:
    """The policy the webhook container's `SHM_WEBHOOK_*` environment sets. A size that does
    not parse is left at its default here: the server would refuse to start with it, which
    the replicas check shows."""
    spec = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = spec.get("containers") or [{}]
    chosen = next((c for c in containers if c.get("name") == "webhook"), containers[0])
    env = {e.get("name"): e.get("value") for e in chosen.get("env") or [] if "value" in e}
    defaults = Policy()
    values: dict[str, Any] = {
        "annotation": env.get("SHM_WEBHOOK_ANNOTATION") or defaults.annotation,
        "mount_path": env.get("SHM_WEBHOOK_MOUNT_PATH") or defaults.mount_path,
        "volume_name": env.get("SHM_WEBHOOK_VOLUME_NAME") or defaults.volume_name,
    }
    for key, parse in (("default_size", parse_default_size), ("max_size", parse_max_size)):
        variable = f"SHM_WEBHOOK_{key.upper()}"
        try:
            values[key] = parse(env.get(variable) or "", field=variable)
        except SizeError:
            continue
    return Policy(**values)


def _template_labels(deployment: Json) -> dict[str, str]:
    template = (deployment.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("labels") or {})
