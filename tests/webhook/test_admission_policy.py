"""The policy engine's generator (webhook.admission_policy) and `shm-webhook policy`: the six
objects are valid Kubernetes 1.36 objects, the settings enter only as the first variables,
every variable is defined before it is read, the scope is the chart's, and what the engine
cannot express is refused in one line. What the CEL does is the e2e tier's differential test
(tests/e2e/test_policy_parity.py): no CEL interpreter here knows Kubernetes' libraries."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from typing import Any

import kubernetes_validate
import pytest
import yaml

from webhook.admission_cel import literal
from webhook.admission_policy import (
    Engine,
    EngineError,
    match_resources,
    policies,
    policy_parts,
)
from webhook.admission_variables import SETTINGS, STATUS_SHAPE
from webhook.cli import main
from webhook.mutation import plan
from webhook.policy import Policy
from webhook.settings import Settings, load_settings

KUBERNETES = "1.36"
KINDS = [
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
]
READS = re.compile(r"variables\.([A-Za-z_][A-Za-z0-9_]*)")
SETTING_CASES = [
    pytest.param({}, id="the default settings"),
    pytest.param(
        {
            "annotation": "example.com/shm-size",
            "default_size": "12.5%",
            "max_size": "64Gi",
            "memory_policy": "all",
            "on_invalid": "warn",
            "volume_name": "shm",
            "mount_path": "/run/shm",
            "namespace_policy": "true",
        },
        id="every setting changed",
    ),
]


def objects(flags: dict[str, str] | None = None, **engine: Any) -> list[dict[str, Any]]:
    return policies(load_settings(flags or {}), Engine(**engine))


def spec_expressions(spec: dict[str, Any]) -> str:
    """Every CEL expression a policy's mutations and validations hold, as one text."""
    found = [m["jsonPatch"]["expression"] for m in spec.get("mutations", [])]
    for validation in spec.get("validations", []):
        found += [validation["expression"], validation["messageExpression"]]
    return "\n".join(found)


@pytest.mark.parametrize("flags", SETTING_CASES)
def test_the_six_objects_are_valid_kubernetes_1_36_objects(flags: dict[str, str]) -> None:
    made = objects(flags)
    assert [obj["kind"] for obj in made] == KINDS
    for obj in made:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_each_binding_binds_the_policy_before_it_and_the_validating_ones_deny_or_warn() -> None:
    made = objects(name="shm")
    names = [obj["metadata"]["name"] for obj in made]
    assert names == ["shm", "shm", "shm-denials", "shm-denials", "shm-warnings", "shm-warnings"]
    for policy, binding in zip(made[::2], made[1::2], strict=True):
        assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert made[3]["spec"]["validationActions"] == ["Deny"]
    assert made[5]["spec"]["validationActions"] == ["Warn"]
    assert "validationActions" not in made[1]["spec"]
    assert made[0]["spec"]["reinvocationPolicy"] == "IfNeeded"
    assert made[2]["spec"]["validations"][0]["reason"] == "Invalid"


@pytest.mark.parametrize("flags", SETTING_CASES)
def test_every_variable_is_defined_before_it_is_read(flags: dict[str, str]) -> None:
    for policy in objects(flags)[::2]:
        defined: set[str] = set()
        for variable in policy["spec"]["variables"]:
            unknown = set(READS.findall(variable["expression"])) - defined
            assert not unknown, f"{variable['name']} reads {unknown} before they are defined"
            assert variable["name"] not in defined
            defined.add(variable["name"])
        assert set(READS.findall(spec_expressions(policy["spec"]))) <= defined


def test_a_policy_holds_only_the_variables_it_reads_after_the_settings() -> None:
    for policy in objects()[::2]:
        variables = policy["spec"]["variables"]
        read = set(READS.findall(spec_expressions(policy["spec"])))
        for variable in variables:
            read |= set(READS.findall(variable["expression"]))
        assert {v["name"] for v in variables[len(SETTINGS) :]} <= read


@pytest.mark.parametrize("flags", SETTING_CASES)
def test_the_settings_are_the_first_variables_as_cel_literals(flags: dict[str, str]) -> None:
    settings = load_settings(flags)
    expected = [
        literal(settings.annotation),
        literal(settings.default_size),
        literal(settings.max_size),
        literal(settings.memory_policy),
        literal(settings.on_invalid),
        literal(settings.volume_name),
        literal(settings.mount_path),
        "true" if settings.namespace_policy else "false",
    ]
    for policy in objects(flags)[::2]:
        first = policy["spec"]["variables"][: len(SETTINGS)]
        assert [v["name"] for v in first] == list(SETTINGS)
        assert [v["expression"] for v in first] == expected


def test_everything_after_the_settings_is_the_same_text_for_every_install() -> None:
    plain, changed = (objects(flags.values[0]) for flags in SETTING_CASES)
    for one, other in zip(plain[::2], changed[::2], strict=True):
        first, second = one["spec"], other["spec"]
        assert first["variables"][len(SETTINGS) :] == second["variables"][len(SETTINGS) :]
        assert spec_expressions(first) == spec_expressions(second)
    assert policy_parts() == policy_parts()  # macro names restart: the same text every time


@pytest.mark.parametrize(
    ("text", "cel"),
    [
        pytest.param("shm-size", "'shm-size'", id="a plain text is quoted"),
        pytest.param("it's", r"'it\'s'", id="a quote is escaped"),
        pytest.param("a\\b", r"'a\\b'", id="a backslash is escaped"),
        pytest.param("a\nb", r"'a\nb'", id="a line break is escaped"),
    ],
)
def test_literals_are_cel_strings(text: str, cel: str) -> None:
    assert literal(text) == cel


@pytest.mark.parametrize(
    ("flags", "failure"),
    [
        pytest.param({}, "Fail", id="Fail without a default size"),
        pytest.param({"default_size": "1Gi"}, "Ignore", id="Ignore with a default size"),
    ],
)
def test_the_failure_policy_defaults_as_the_chart_s(flags: dict[str, str], failure: str) -> None:
    made = objects(flags)
    assert [made[0]["spec"]["failurePolicy"], made[2]["spec"]["failurePolicy"]] == [failure] * 2
    assert made[4]["spec"]["failurePolicy"] == "Ignore"  # a warning never blocks a pod
    assert objects(flags, failure_policy="Fail")[0]["spec"]["failurePolicy"] == "Fail"


@pytest.mark.parametrize(
    ("engine", "in_scope", "never"),
    [
        pytest.param(
            Engine(),
            {"key": "shm-injection", "operator": "In", "values": ["enabled"]},
            ["kube-system", "kube-public", "kube-node-lease"],
            id="namespace scope: labelled namespaces, never the system ones",
        ),
        pytest.param(
            Engine(
                scope="cluster", namespace="shm-system", exclude_namespaces=("ci", "kube-system")
            ),
            {"key": "shm-injection", "operator": "NotIn", "values": ["disabled"]},
            ["shm-system", "kube-system", "kube-public", "kube-node-lease", "ci"],
            id="cluster scope: all but the opted-out, the install's and the excluded, once each",
        ),
    ],
)
def test_the_bindings_select_the_pods_the_webhook_configuration_would(
    engine: Engine, in_scope: dict[str, Any], never: list[str]
) -> None:
    selectors = match_resources(engine)
    assert selectors["namespaceSelector"]["matchExpressions"] == [
        in_scope,
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": never},
    ]
    assert selectors["objectSelector"] == {
        "matchExpressions": [{"key": "shm-injection", "operator": "NotIn", "values": ["disabled"]}]
    }


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(
            {"default_size": "1.12345678%"},
            "the policy engine computes a percentage with at most 7 decimals",
            id="a percentage with 8 decimals",
        ),
        pytest.param(
            {"mount_path": "/dev/it's"},
            "the policy engine takes a path without quotes, backslashes or control characters",
            id="a mount path with a quote",
        ),
    ],
)
def test_what_the_engine_cannot_express_is_refused(flags: dict[str, str], message: str) -> None:
    with pytest.raises(EngineError, match=re.escape(message)):
        objects(flags)


def test_a_percentage_with_seven_decimals_and_trailing_zeros_is_taken() -> None:
    assert objects({"default_size": "1.12345670000%"})


def status_written(pod: dict[str, Any], policy: Policy) -> str:
    [op] = [op for op in plan(pod, policy).ops if "shm-injection-status" in json.dumps(op)]
    value = op["value"]
    return value if isinstance(value, str) else str(value["shm-injection-status"])


@pytest.mark.parametrize(
    "containers",
    [
        pytest.param([{"name": "main"}], id="one container"),
        pytest.param([{"name": "a"}, {"name": "b-2"}], id="two containers"),
        pytest.param(
            [
                {"name": "a", "volumeMounts": [{"name": "x", "mountPath": "/dev/shm"}]},
                {"name": "b"},
            ],
            id="one container keeps its own",
        ),
    ],
)
def test_the_status_shape_reads_the_status_annotation_the_webhook_writes(
    containers: list[dict[str, Any]],
) -> None:
    pod = {"metadata": {"annotations": {"shm-size": "1.5Gi"}}, "spec": {"containers": containers}}
    for policy in (Policy(), Policy(memory_policy="none"), Policy(volume_name="v-1")):
        assert re.fullmatch(STATUS_SHAPE, status_written(pod, policy))


@pytest.mark.parametrize(
    "text",
    [
        '{"size": "8Gi", "volume": "dshm", "mounted": [], "charged": []}',
        '{"volume":"dshm","size":"8Gi","mounted":[],"charged":[]}',
        '{"size":"8Gi","volume":"dshm","mounted":["a"],"charged":[],"x":1}',
        '{"size":"8Gi","volume":"Dshm","mounted":[],"charged":[]}',
    ],
    ids=["spaces", "another order", "another field", "a volume name that is not a DNS label"],
)
def test_the_status_shape_takes_nothing_but_the_compact_form(text: str) -> None:
    assert re.fullmatch(STATUS_SHAPE, text) is None


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["policy", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_prints_the_policies_as_yaml_documents(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run("--max-size", "8Gi", "--name", "shm", capsys=capsys)
    assert code == 0
    expected = policies(load_settings({"max_size": "8Gi"}), Engine(name="shm"))
    assert list(yaml.safe_load_all(io.StringIO(out))) == expected


def test_the_command_prints_one_json_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        "-o", "json", "--scope", "cluster", "--exclude-namespace", "ci", capsys=capsys
    )
    assert code == 0
    listed = json.loads(out)
    engine = Engine(scope="cluster", exclude_namespaces=("ci",))
    assert listed == {"apiVersion": "v1", "kind": "List", "items": policies(Settings(), engine)}


def test_the_command_reads_the_settings_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHM_WEBHOOK_ANNOTATION", "example.com/shm")
    _, out, _ = run("-o", "json", capsys=capsys)
    first = json.loads(out)["items"][0]["spec"]["variables"][0]
    assert first == {"name": "annotationKey", "expression": "'example.com/shm'"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(("--default-size", "8GB"), "--default-size", id="a bad setting"),
        pytest.param(("--default-size", "1.123456789%"), "at most 7 decimals", id="a percentage"),
        pytest.param(("--name", "Shm"), "--name 'Shm' is not a DNS-1123 subdomain", id="a name"),
        pytest.param(("--namespace", "a_b"), "namespace 'a_b'", id="a namespace"),
        pytest.param(("--scope", "everywhere"), "invalid choice", id="a scope"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(*argv, capsys=capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1, err
    assert err.startswith("error: ")
    assert message in err


def test_the_command_imports_neither_the_server_nor_the_kubernetes_client() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from webhook.cli import main; main(['policy', '-o', 'json']);"
            " sys.stderr.write(str(sorted(m for m in sys.modules if m in"
            " ('webhook.server', 'uvicorn', 'fastapi', 'kubernetes'))))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr == "[]"
