"""Kubernetes label selectors, evaluated as the kube-apiserver evaluates a webhook's
`namespaceSelector` and `objectSelector`, and, when one does not match, said in words.

Owns: `Requirement` (one term of a selector), `requirements` (a LabelSelector's matchLabels
and matchExpressions as terms; `SelectorError` for a malformed one), `matches`, `first_unmet`,
`explain` (why a term does not hold for some labels) and `remedy` (the kubectl command that
makes it hold). The semantics are apimachinery's `labels.Selector`: every term must hold; `In`
needs the key with one of the values, `NotIn` holds when the key is absent or has another
value, `Exists` and `DoesNotExist` look at the key only; an absent or empty selector matches
everything. Pure: the standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# Set by the kube-apiserver on every namespace (1.21+): selectors exclude namespaces by it.
NAME_LABEL = "kubernetes.io/metadata.name"


class SelectorError(ValueError):
    """A selector the kube-apiserver would not have accepted; one line."""


@dataclass(frozen=True)
class Requirement:
    """One term: `key operator values`."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def holds(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist

    def __str__(self) -> str:
        if self.operator in ("Exists", "DoesNotExist"):
            return f"{self.key} {self.operator}"
        return f"{self.key} {self.operator} ({', '.join(self.values)})"


def requirements(selector: Mapping[str, Any] | None) -> list[Requirement]:
    """The terms of a LabelSelector: matchLabels first (each `key In (value)`), then
    matchExpressions, in order."""
    if not selector:
        return []
    if not isinstance(selector, Mapping):
        raise SelectorError(f"a selector must be an object, not {type(selector).__name__}")
    terms = [
        Requirement(str(key), "In", (str(value),))
        for key, value in (selector.get("matchLabels") or {}).items()
    ]
    for expression in selector.get("matchExpressions") or []:
        terms.append(_expression(expression))
    return terms


def _expression(expression: Any) -> Requirement:
    if not isinstance(expression, Mapping) or not isinstance(expression.get("key"), str):
        raise SelectorError(f"matchExpressions entry {expression!r} has no key")
    key, operator = expression["key"], expression.get("operator")
    values = tuple(str(value) for value in expression.get("values") or ())
    if operator not in OPERATORS:
        raise SelectorError(
            f"matchExpressions entry for {key} has operator {operator!r}; expected one of "
            + ", ".join(OPERATORS)
        )
    if operator in ("In", "NotIn") and not values:
        raise SelectorError(f"matchExpressions entry {key} {operator} has no values")
    if operator in ("Exists", "DoesNotExist") and values:
        raise SelectorError(f"matchExpressions entry {key} {operator} must have no values")
    return Requirement(key, operator, values)


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether `labels` satisfy every term of `selector`."""
    return first_unmet(selector, labels) is None


def first_unmet(
    selector: Mapping[str, Any] | None, labels: Mapping[str, str]
) -> Requirement | None:
    """The first term `labels` do not satisfy, None when they satisfy all."""
    for term in requirements(selector):
        if not term.holds(labels):
            return term
    return None


def explain(term: Requirement, labels: Mapping[str, str], *, exact: bool = True) -> str:
    """Why `term` does not hold for `labels`, as a predicate: "lacks the label a=b". Not
    `exact`, the words do not depend on the label's value, so that objects group by them."""
    actual = labels.get(term.key)
    if term.operator == "In":
        wanted = _choices(term)
        if actual is None or not exact:
            return f"lacks the label {wanted}"
        return f"is labelled {term.key}={actual}, not {wanted}"
    if term.operator == "NotIn":
        if term.key == NAME_LABEL:
            return f"is excluded by name ({term})"
        return f"is labelled {term.key}={actual}"
    if term.operator == "Exists":
        return f"lacks the label {term.key}"
    return f"has the label {term.key}={actual}" if exact else f"has the label {term.key}"


def remedy(
    term: Requirement, *, kind: str, name: str, labels: Mapping[str, str] | None = None
) -> str:
    """The command that makes `term` hold for the object `kind/name` (labelled `labels`), or
    what to know when no label can (an exclusion by name)."""
    label = f"kubectl label {kind} {name}"
    if term.operator == "In":
        overwrite = " --overwrite" if term.key in (labels or {}) else ""
        return f"{label} {term.key}={term.values[0]}{overwrite}"
    if term.operator == "NotIn" and term.key == NAME_LABEL:
        return (
            f"the webhook never serves {kind} {name}: the release namespace, kube-system,"
            " kube-public, kube-node-lease and the chart's excludeNamespaces are excluded"
        )
    if term.operator == "Exists":
        return f"{label} {term.key}=<value>"
    return f"{label} {term.key}-"  # NotIn, DoesNotExist: the label must go


def _choices(term: Requirement) -> str:
    if len(term.values) == 1:
        return f"{term.key}={term.values[0]}"
    return f"{term.key} with a value in ({', '.join(term.values)})"
