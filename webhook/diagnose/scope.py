"""Which namespaces each webhook entry serves, and what the namespaces' own size policies say.

Owns: `role` (an entry is the main one, the chart's `namespace-defaults.` one or its
`helm-test.` one), `scope_checks` (per entry: the namespaces its namespaceSelector matches,
counted and named, the others grouped by why they are left out, and which pods of them are
sent), `policy_checks` (with a `namespace-defaults.` entry: each namespace's effective default
and ceiling and the problems `webhook.namespaces.read_namespace` finds, plus namespaces whose
policy no entry covers) and `listing`. Pure: Namespace objects and webhook entries in, checks
out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from webhook.diagnose.report import Check, failed, passed, warned
from webhook.diagnose.selectors import SelectorError, explain, first_unmet, remedy, requirements
from webhook.namespaces import (
    DEFAULT_SIZE_ANNOTATION,
    DEFAULTS_LABEL,
    DEFAULTS_LABEL_VALUE,
    MAX_SIZE_ANNOTATION,
    NamespaceReading,
    read_namespace,
)
from webhook.policy import Percent, Policy
from webhook.quantity import Format, Quantity, format_bytes, to_bytes

Role = Literal["main", "defaults", "test"]
DEFAULTS_PREFIX = "namespace-defaults."
TEST_PREFIX = "helm-test."
LISTED = 5  # names shown before "(+N more)"
DETAILED = 20  # healthy namespaces listed under the namespace policy check

Json = Mapping[str, Any]


def role(entry: Json) -> Role:
    name = str(entry.get("name", ""))
    if name.startswith(DEFAULTS_PREFIX):
        return "defaults"
    if name.startswith(TEST_PREFIX):
        return "test"
    return "main"


def labels_of(obj: Json) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return {str(key): str(value) for key, value in labels.items()}


def name_of(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def listing(names: Sequence[str], limit: int = LISTED) -> str:
    """`a, b, c (+4 more)`: the first names, sorted, and how many are not shown."""
    shown = sorted(names)[:limit]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more else "")


def scope_checks(entries: Sequence[Json], namespaces: Sequence[Json]) -> list[Check]:
    return [_scope(entry, namespaces) for entry in entries]


def _scope(entry: Json, namespaces: Sequence[Json]) -> Check:
    name = f"scope of {entry.get('name')}"
    try:
        requirements(entry.get("namespaceSelector"))
    except SelectorError as error:
        return failed(name, f"its namespaceSelector is malformed: {error}")
    inside: list[str] = []
    outside: dict[str, list[str]] = {}
    hints: dict[str, str] = {}
    for namespace in namespaces:
        labels = labels_of(namespace)
        unmet = first_unmet(entry.get("namespaceSelector"), labels)
        if unmet is None:
            inside.append(name_of(namespace))
            continue
        reason = explain(unmet, labels, exact=False)
        outside.setdefault(reason, []).append(name_of(namespace))
        hints.setdefault(reason, remedy(unmet, kind="namespace", name="NAME"))
    count = f"{len(inside)} namespace{'' if len(inside) == 1 else 's'} in scope"
    details = tuple(
        f"not in scope, {reason}: {listing(names)}"
        for reason, names in sorted(outside.items(), key=lambda item: -len(item[1]))
    ) + _pod_rules(entry)
    if inside:
        return passed(name, f"{count}: {listing(inside)}", details=details)
    if role(entry) != "main":  # a defaults or test entry may well serve nothing yet
        return passed(name, count, details=details)
    largest = max(outside, key=lambda reason: len(outside[reason]), default="")
    hint = f"put a namespace in scope: {hints[largest]}" if largest else ""
    return warned(name, f"{count}: no pod is sent to the webhook", hint=hint, details=details)


def _pod_rules(entry: Json) -> tuple[str, ...]:
    """Which pods of a namespace in scope are sent: the objectSelector and matchConditions."""
    rules = []
    try:
        terms = requirements(entry.get("objectSelector"))
    except SelectorError as error:
        terms, rules = [], [f"pods: the objectSelector is malformed: {error}"]
    if terms:
        rules.append(f"pods: only those whose labels match {', '.join(map(str, terms))}")
    for condition in entry.get("matchConditions") or []:
        rules.append(
            f"pods: only those for which matchCondition {condition.get('name')} holds:"
            f" {condition.get('expression')}"
        )
    return tuple(rules)


def policy_checks(
    entries: Sequence[Json], namespaces: Sequence[Json], policy: Policy
) -> list[Check]:
    """The namespaces that carry a size policy, read as the webhook reads them."""
    marked = [namespace for namespace in namespaces if _has_policy(namespace)]
    defaults = [entry for entry in entries if role(entry) == "defaults"]
    if not defaults:
        if not marked:
            return []
        return [
            warned(
                "namespace policy",
                f"off, but {_count(marked, 'namespace carries', 'namespaces carry')} its"
                f" annotations or label: {listing([name_of(n) for n in marked])}",
                hint="the webhook ignores them unless the chart's namespacePolicy.enabled is"
                " true (docs/namespaces.md)",
            )
        ]
    main = [entry for entry in entries if role(entry) == "main"]
    checks: list[Check] = []
    healthy: list[str] = []
    for namespace in marked:
        labels = labels_of(namespace)
        labelled = labels.get(DEFAULTS_LABEL) == DEFAULTS_LABEL_VALUE
        covering = (defaults if labelled else main) or defaults
        unmet = first_unmet(covering[0].get("namespaceSelector"), labels)
        reading = read_namespace(namespace, policy)
        who = f"namespace {reading.name}"
        if unmet is not None:
            checks.append(
                warned(
                    who,
                    f"has a size policy, but {covering[0].get('name')} does not serve it: it"
                    f" {explain(unmet, labels)}",
                    hint=remedy(unmet, kind="namespace", name=reading.name, labels=labels),
                )
            )
        elif reading.problems:
            hint = _problem_hint(namespace, reading.name, labelled=labelled)
            checks.append(failed(who, "; ".join(reading.problems), hint=hint))
        else:
            healthy.append(f"{reading.name}: {effective(reading, policy)}")
    more = len(healthy) - DETAILED
    details = tuple(healthy[:DETAILED]) + ((f"(+{more} more)",) if more > 0 else ())
    count = f"{len(healthy)} namespace{'' if len(healthy) == 1 else 's'}"
    said = f"on; {count} with a valid default size or ceiling of their own"
    if not marked:
        said = "on; no namespace has a default size or ceiling of its own"
    return [passed("namespace policy", said, details=details), *checks]


def effective(reading: NamespaceReading, policy: Policy) -> str:
    """`default 4Gi, ceiling 16Gi`: what a pod without the annotation gets, and the cap."""
    own = reading.policy
    ceilings = [c for c in (own.max_size if own else None, policy.max_size) if c is not None]
    ceiling = min(ceilings) if ceilings else None
    default = own.default_size if own and own.default_size is not None else policy.default_size
    if isinstance(default, Percent):
        shown = f"default {float(default.value):g}% of the memory limit"
    elif isinstance(default, Quantity):
        size = to_bytes(default) if ceiling is None else min(to_bytes(default), ceiling)
        shown = f"default {format_bytes(size, default.format)}"
    else:
        shown = "no default"
    cap = format_bytes(ceiling, Format.BINARY_SI) if ceiling is not None else "none"
    return f"{shown}, ceiling {cap}"


def _count(items: Sequence[object], one: str, many: str) -> str:
    return f"{len(items)} {one if len(items) == 1 else many}"


def _has_policy(namespace: Json) -> bool:
    annotations = (namespace.get("metadata") or {}).get("annotations") or {}
    labelled = labels_of(namespace).get(DEFAULTS_LABEL) == DEFAULTS_LABEL_VALUE
    return labelled or DEFAULT_SIZE_ANNOTATION in annotations or MAX_SIZE_ANNOTATION in annotations


def _problem_hint(namespace: Json, name: str, *, labelled: bool) -> str:
    annotations = (namespace.get("metadata") or {}).get("annotations") or {}
    if DEFAULT_SIZE_ANNOTATION in annotations and not labelled:
        return f"kubectl label namespace {name} {DEFAULTS_LABEL}={DEFAULTS_LABEL_VALUE}"
    if labelled and DEFAULT_SIZE_ANNOTATION not in annotations:
        return (
            f"kubectl annotate namespace {name} {DEFAULT_SIZE_ANNOTATION}=1Gi, or remove the"
            f" label: kubectl label namespace {name} {DEFAULTS_LABEL}-"
        )
    return f"correct the annotations of namespace {name} (docs/namespaces.md)"
