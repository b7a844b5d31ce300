"""How `shm-webhook check` prints its findings: a mark per line, hints and details indented
under it, a summary, one JSON object, and the exit code only failures decide."""

from __future__ import annotations

import json

import pytest

from webhook.diagnose.report import Check, Report, as_json, failed, passed, skipped, text, warned

CHECKS = [
    passed("Service shm-system/shm-webhook", "ClusterIP 10.0.0.5, port 443 → targetPort https"),
    failed(
        "probe pod in namespace default",
        "not changed: namespace default is not in scope of shm-webhook.shm-system.svc: it lacks"
        " the label shm-injection=enabled",
        hint="kubectl label namespace default shm-injection=enabled",
    ),
    warned(
        "PodDisruptionBudget of Deployment shm-system/shm-webhook",
        "none selects its pods",
        hint="podDisruptionBudget.enabled=true",
        details=("one detail",),
    ),
    skipped("webhook w", "calls a URL, not a Service: ... skipped"),
]


def test_each_check_is_a_marked_line_with_its_details_and_hint_indented_under_it() -> None:
    assert text(Report(CHECKS)).splitlines() == [
        "✔ Service shm-system/shm-webhook: ClusterIP 10.0.0.5, port 443 → targetPort https",
        "✘ probe pod in namespace default: not changed: namespace default is not in scope of"
        " shm-webhook.shm-system.svc: it lacks the label shm-injection=enabled",
        "    hint: kubectl label namespace default shm-injection=enabled",
        "‼ PodDisruptionBudget of Deployment shm-system/shm-webhook: none selects its pods",
        "    one detail",
        "    hint: podDisruptionBudget.enabled=true",
        "- webhook w: calls a URL, not a Service: ... skipped",
        "4 checks: 1 passed, 1 warning, 1 failed, 1 skipped",
    ]


@pytest.mark.parametrize(
    ("checks", "code"),
    [
        pytest.param([CHECKS[0]], 0, id="all passed: 0"),
        pytest.param([CHECKS[0], CHECKS[2], CHECKS[3]], 0, id="warnings and skips do not fail: 0"),
        pytest.param(CHECKS, 1, id="one failure: 1"),
    ],
)
def test_only_a_failure_makes_the_exit_code_1(checks: list[Check], code: int) -> None:
    assert Report(checks).exit_code() == code


def test_json_is_one_object_of_every_check_and_the_probe() -> None:
    probe = {"namespace": "default", "mutated": False, "reason": "..."}
    document = json.loads(as_json(Report(CHECKS, probe=probe)))

    assert document["ok"] is False
    assert document["probe"] == probe
    assert [c["level"] for c in document["checks"]] == ["ok", "fail", "warn", "skip"]
    assert [c["ok"] for c in document["checks"]] == [True, False, True, True]
    assert document["checks"][1] == {
        "name": "probe pod in namespace default",
        "ok": False,
        "level": "fail",
        "message": CHECKS[1].message,
        "hint": "kubectl label namespace default shm-injection=enabled",
        "details": [],
    }


def test_the_summary_counts_one_check_in_the_singular() -> None:
    assert text(Report([CHECKS[0]])).splitlines()[-1] == "1 check: 1 passed, 0 failed"
