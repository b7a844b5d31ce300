"""The policy engine: the webhook's behaviour as admission policies that run inside the
kube-apiserver (Kubernetes 1.36 and later), for given settings (docs/policy-engine.md).

Owns: `policies(settings, engine)`, the six objects (a MutatingAdmissionPolicy, two
ValidatingAdmissionPolicies, their bindings), `Engine` (what the settings do not say: object
names, scope, failure policy), `policy_parts()` (what the chart renders from its own file,
charts/shm-webhook/files/policy-engine.yaml) and `EngineError` for settings the engine cannot
express. Two validating policies because a binding's validationActions apply to all of a
policy's validations: one denies, one only warns.

The CEL comes from `webhook.admission_variables` and `webhook.admission_patch`; the settings
enter as the first variables, literals, so everything after them is the same text for every
install. Must not import the web framework, the server or the Kubernetes client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from webhook.admission_cel import MAX_PERCENT_DECIMALS, begin, literal
from webhook.admission_patch import deciding, warning
from webhook.admission_variables import SETTINGS, reading
from webhook.settings import Settings

Obj = dict[str, Any]
Scope = Literal["namespace", "cluster"]
API_VERSION = "admissionregistration.k8s.io/v1"
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
INJECTION_LABEL = "shm-injection"
# The static message of a denial, shown instead of the webhook's words when those cannot be a
# policy's message (they contain a line break: the kube-apiserver refuses such a message).
FALLBACK_MESSAGE = "the size annotation is not a valid size"
WARNINGS = ("invalidWarning", "leftAloneWarning", "keptWarning", "cappedWarning")


class EngineError(ValueError):
    """The settings hold something the policy engine cannot express; one line."""


@dataclass(frozen=True, slots=True)
class Engine:
    """What shapes the policies beyond the settings: as the chart's values say it."""

    name: str = "shm-webhook"
    scope: Scope = "namespace"
    namespace: str | None = None  # the chart's release namespace, never in scope
    exclude_namespaces: tuple[str, ...] = ()
    failure_policy: Literal["Fail", "Ignore"] | None = None  # None: as the chart defaults it
    labels: dict[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/part-of": "shm-webhook"}
    )


def policies(settings: Settings, engine: Engine) -> list[Obj]:
    """The MutatingAdmissionPolicy, the denying and the warning ValidatingAdmissionPolicy,
    each followed by its binding."""
    check(settings)
    parts = policy_parts()
    settings_first = setting_variables(settings)
    failure = engine.failure_policy or ("Ignore" if settings.default_size else "Fail")
    mutating = _policy(
        "MutatingAdmissionPolicy",
        engine.name,
        engine,
        {
            "failurePolicy": failure,
            "reinvocationPolicy": "IfNeeded",
            "variables": settings_first + parts["mutating"]["variables"],
            "mutations": parts["mutating"]["mutations"],
        },
    )
    denials = _policy(
        "ValidatingAdmissionPolicy",
        f"{engine.name}-denials",
        engine,
        {"failurePolicy": failure, **_with_settings(settings_first, parts["denials"])},
    )
    warnings = _policy(
        "ValidatingAdmissionPolicy",
        f"{engine.name}-warnings",
        engine,
        {"failurePolicy": "Ignore", **_with_settings(settings_first, parts["warnings"])},
    )
    return [
        mutating,
        _binding("MutatingAdmissionPolicyBinding", engine.name, engine, {}),
        denials,
        _binding(
            "ValidatingAdmissionPolicyBinding",
            f"{engine.name}-denials",
            engine,
            {"validationActions": ["Deny"]},
        ),
        warnings,
        _binding(
            "ValidatingAdmissionPolicyBinding",
            f"{engine.name}-warnings",
            engine,
            {"validationActions": ["Warn"]},
        ),
    ]


def _with_settings(settings_first: list[dict[str, str]], part: Obj) -> Obj:
    return {"variables": settings_first + part["variables"], "validations": part["validations"]}


def check(settings: Settings) -> None:
    """Refuse the settings the engine cannot compute as the webhook does."""
    default = settings.default_size
    if default.endswith("%") and "." in default:
        decimals = default[:-1].split(".")[1].rstrip("0")
        if len(decimals) > MAX_PERCENT_DECIMALS:
            raise EngineError(
                f'--default-size "{default}": the policy engine computes a percentage with at'
                f" most {MAX_PERCENT_DECIMALS} decimals"
            )
    if any(char in "'\\" or ord(char) < 32 for char in settings.mount_path):
        raise EngineError(
            f"--mount-path {settings.mount_path!r}: the policy engine takes a path without"
            " quotes, backslashes or control characters"
        )


def setting_variables(settings: Settings) -> list[dict[str, str]]:
    """The settings as the policies' first variables (the chart writes the same literals)."""
    values = {
        "annotationKey": literal(settings.annotation),
        "defaultSize": literal(settings.default_size),
        "maxSize": literal(settings.max_size),
        "memoryPolicy": literal(settings.memory_policy),
        "onInvalid": literal(settings.on_invalid),
        "volumeName": literal(settings.volume_name),
        "mountPath": literal(settings.mount_path),
        "namespacePolicy": "true" if settings.namespace_policy else "false",
    }
    return [{"name": name, "expression": values[name]} for name in SETTINGS]


def policy_parts() -> dict[str, Any]:
    """What is the same for every install: for each policy, the variables after the settings
    it reads (only those: the kube-apiserver compiles every variable of a policy), and its
    mutation or validations."""
    begin()
    steps = [*reading(), *deciding()]
    mutation = "variables.ops.map(o, JSONPatch{op: o.op, path: o.path, value: o.value})"
    denials = [
        {
            "expression": "variables.denial == ''",
            "messageExpression": "variables.denial",
            "message": FALLBACK_MESSAGE,
            "reason": "Invalid",
        }
    ]
    warnings = [
        {
            "expression": f"variables.{name} == ''",
            "messageExpression": warning(name),
            "message": FALLBACK_MESSAGE,
        }
        for name in WARNINGS
    ]
    return {
        "mutating": {
            "variables": _read_by(steps, mutation),
            "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": mutation}}],
        },
        "denials": {"variables": _read_by(steps, str(denials)), "validations": denials},
        "warnings": {"variables": _read_by(steps, str(warnings)), "validations": warnings},
    }


_READS = re.compile(r"variables\.([A-Za-z_][A-Za-z0-9_]*)")


def _read_by(steps: list[tuple[str, str]], expressions: str) -> list[dict[str, str]]:
    """The variables `expressions` read, directly or through other variables, in order."""
    expressions_of = dict(steps)
    wanted = set(_READS.findall(expressions))
    for name, expression in reversed(steps):  # a variable reads only those before it
        if name in wanted:
            wanted.update(_READS.findall(expression))
    return [
        {"name": name, "expression": expressions_of[name]} for name, _ in steps if name in wanted
    ]


def _match_constraints() -> Obj:
    return {
        "matchPolicy": "Equivalent",
        "resourceRules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }
        ],
    }


def _policy(kind: str, name: str, engine: Engine, spec: Obj) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "labels": dict(engine.labels)},
        "spec": {"matchConstraints": _match_constraints(), **spec},
    }


def _binding(kind: str, name: str, engine: Engine, spec: Obj) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "labels": dict(engine.labels)},
        "spec": {"policyName": name, "matchResources": match_resources(engine), **spec},
    }


def match_resources(engine: Engine) -> Obj:
    """The pods in scope, as the chart's webhook configuration selects them."""
    in_scope = (
        {"key": INJECTION_LABEL, "operator": "In", "values": ["enabled"]}
        if engine.scope == "namespace"
        else {"key": INJECTION_LABEL, "operator": "NotIn", "values": ["disabled"]}
    )
    listed = [*([engine.namespace] if engine.namespace else []), *SYSTEM_NAMESPACES]
    never = list(dict.fromkeys([*listed, *engine.exclude_namespaces]))  # first of each, in order
    return {
        "namespaceSelector": {
            "matchExpressions": [
                in_scope,
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": never},
            ]
        },
        "objectSelector": {
            "matchExpressions": [
                {"key": INJECTION_LABEL, "operator": "NotIn", "values": ["disabled"]}
            ]
        },
    }
