"""Label selectors as the kube-apiserver evaluates a webhook's namespaceSelector and
objectSelector (apimachinery `labels.Selector`), and how `check` words a miss. The e2e tier
checks the same table against the real apiserver's `labelSelector` (tests/e2e/test_check.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from webhook.diagnose.selectors import (
    Requirement,
    SelectorError,
    explain,
    first_unmet,
    matches,
    remedy,
)

ENABLED = {"matchExpressions": [{"key": "shm-injection", "operator": "In", "values": ["enabled"]}]}
NOT_DISABLED = {
    "matchExpressions": [{"key": "shm-injection", "operator": "NotIn", "values": ["disabled"]}]
}

# (selector, labels, matches); shared with the e2e oracle test.
TABLE: list[Any] = [
    pytest.param(None, {}, True, id="no selector matches everything"),
    pytest.param({}, {"a": "b"}, True, id="an empty selector matches everything"),
    pytest.param(
        {"matchLabels": {"a": "b"}}, {"a": "b", "c": "d"}, True, id="matchLabels: a subset"
    ),
    pytest.param({"matchLabels": {"a": "b"}}, {"a": "x"}, False, id="matchLabels: another value"),
    pytest.param({"matchLabels": {"a": "b"}}, {}, False, id="matchLabels: the key absent"),
    pytest.param(ENABLED, {"shm-injection": "enabled"}, True, id="In: the value"),
    pytest.param(ENABLED, {"shm-injection": "disabled"}, False, id="In: another value"),
    pytest.param(ENABLED, {}, False, id="In: the key absent"),
    pytest.param(
        {"matchExpressions": [{"key": "k", "operator": "In", "values": ["a", "b"]}]},
        {"k": "b"},
        True,
        id="In: any of several values",
    ),
    pytest.param(NOT_DISABLED, {}, True, id="NotIn: the key absent holds"),
    pytest.param(NOT_DISABLED, {"shm-injection": "enabled"}, True, id="NotIn: another value"),
    pytest.param(NOT_DISABLED, {"shm-injection": "disabled"}, False, id="NotIn: the value"),
    pytest.param(
        {"matchExpressions": [{"key": "k", "operator": "Exists"}]},
        {"k": ""},
        True,
        id="Exists: an empty value is a value",
    ),
    pytest.param(
        {"matchExpressions": [{"key": "k", "operator": "Exists"}]}, {}, False, id="Exists: absent"
    ),
    pytest.param(
        {"matchExpressions": [{"key": "k", "operator": "DoesNotExist"}]},
        {},
        True,
        id="DoesNotExist: absent",
    ),
    pytest.param(
        {"matchExpressions": [{"key": "k", "operator": "DoesNotExist"}]},
        {"k": "v"},
        False,
        id="DoesNotExist: present",
    ),
    pytest.param(
        {"matchLabels": {"team": "ml"}, **NOT_DISABLED},
        {"team": "ml", "shm-injection": "disabled"},
        False,
        id="matchLabels and matchExpressions must all hold",
    ),
]


@pytest.mark.parametrize(("selector", "labels", "expected"), TABLE)
def test_a_selector_matches_as_the_apiserver_evaluates_it(
    selector: dict[str, Any] | None, labels: dict[str, str], expected: bool
) -> None:
    assert matches(selector, labels) is expected
    assert (first_unmet(selector, labels) is None) is expected


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        pytest.param(
            {"matchExpressions": [{"key": "k", "operator": "Equals", "values": ["v"]}]},
            "operator 'Equals'",
            id="an unknown operator",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "k", "operator": "In"}]},
            "k In has no values",
            id="In without values",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["v"]}]},
            "k Exists must have no values",
            id="Exists with values",
        ),
        pytest.param({"matchExpressions": [{"operator": "Exists"}]}, "has no key", id="no key"),
    ],
)
def test_a_malformed_selector_is_an_error_naming_the_term(
    selector: dict[str, Any], message: str
) -> None:
    with pytest.raises(SelectorError, match=message):
        matches(selector, {})


@pytest.mark.parametrize(
    ("term", "labels", "said", "fix"),
    [
        pytest.param(
            Requirement("shm-injection", "In", ("enabled",)),
            {},
            "lacks the label shm-injection=enabled",
            "kubectl label namespace ml shm-injection=enabled",
            id="In, label absent: add it",
        ),
        pytest.param(
            Requirement("shm-injection", "In", ("enabled",)),
            {"shm-injection": "disabled"},
            "is labelled shm-injection=disabled, not shm-injection=enabled",
            "kubectl label namespace ml shm-injection=enabled --overwrite",
            id="In, another value: overwrite it",
        ),
        pytest.param(
            Requirement("shm-injection", "NotIn", ("disabled",)),
            {"shm-injection": "disabled"},
            "is labelled shm-injection=disabled",
            "kubectl label namespace ml shm-injection-",
            id="NotIn: remove the label",
        ),
        pytest.param(
            Requirement("kubernetes.io/metadata.name", "NotIn", ("kube-system", "ml")),
            {"kubernetes.io/metadata.name": "ml"},
            "is excluded by name (kubernetes.io/metadata.name NotIn (kube-system, ml))",
            "the webhook never serves namespace ml",
            id="excluded by name: no label helps",
        ),
        pytest.param(
            Requirement("k", "Exists"),
            {},
            "lacks the label k",
            "kubectl label namespace ml k=<value>",
            id="Exists",
        ),
        pytest.param(
            Requirement("k", "DoesNotExist"),
            {"k": "v"},
            "has the label k=v",
            "kubectl label namespace ml k-",
            id="DoesNotExist",
        ),
    ],
)
def test_a_miss_is_said_in_words_with_the_command_that_fixes_it(
    term: Requirement, labels: dict[str, str], said: str, fix: str
) -> None:
    assert explain(term, labels) == said
    assert remedy(term, kind="namespace", name="ml", labels=labels).startswith(fix)
