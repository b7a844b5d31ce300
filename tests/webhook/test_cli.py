"""The command line of SPEC §6 and §7: `mutate` previews on Pods, workloads and
AdmissionReviews (YAML or JSON, the ops reproduce the printed object), one-line errors with
exit code 2, denials with exit code 1, and `certs generate`."""

from __future__ import annotations

import argparse
import copy
import io
import json
import stat
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml
from cryptography import x509

from tests.pods import assert_valid_pod
from webhook.cli import main

CONTAINER = {"name": "main", "image": "busybox", "resources": {"limits": {"memory": "1Gi"}}}
LABELS = {"app": "trainer"}
TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": LABELS, "annotations": {"shm-size": "256Mi"}},
    "spec": {"containers": [CONTAINER]},
}
POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "trainer", **TEMPLATE["metadata"]},
    "spec": TEMPLATE["spec"],
}
SELECTOR = {"matchLabels": LABELS}
WORKLOADS = {
    "Pod": (POD, ()),
    "Deployment": (
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "trainer"},
            "spec": {"selector": SELECTOR, "template": TEMPLATE},
        },
        ("spec", "template"),
    ),
    "StatefulSet": (
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "trainer"},
            "spec": {"selector": SELECTOR, "serviceName": "trainer", "template": TEMPLATE},
        },
        ("spec", "template"),
    ),
    "Job": (
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "trainer"},
         "spec": {"template": TEMPLATE}},
        ("spec", "template"),
    ),
    "CronJob": (
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
         "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": TEMPLATE}}}},
        ("spec", "jobTemplate", "spec", "template"),
    ),
    "PodTemplate": (
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
         "template": TEMPLATE},
        ("template",),
    ),
    "AdmissionReview": (
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "1",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": "CREATE",
                "object": POD,
            },
        },
        ("request", "object"),
    ),
}  # fmt: skip


def run(
    args: list[str], capsys: pytest.CaptureFixture[str], *, stdin: str | None = None
) -> tuple[int, str, str]:
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()))
    try:
        code = main(args)
    finally:
        sys.stdin = saved
    out, err = capsys.readouterr()
    return code, out, err


def dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def write(tmp_path: Path, name: str, *, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def as_yaml(*documents: Any) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


@pytest.mark.parametrize("kind", list(WORKLOADS))
@pytest.mark.parametrize(
    "encoding",
    [pytest.param("yaml", id="YAML in, YAML out"), pytest.param("json", id="JSON in, JSON out")],
)
def test_mutate_prints_the_object_with_its_pod_patched(
    *, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, encoding: str
) -> None:
    original, path = WORKLOADS[kind]
    text = json.dumps(original) if encoding == "json" else as_yaml(original)
    code, out, _ = run(["mutate", "-f", str(write(tmp_path, f"in.{encoding}", text=text))], capsys)
    assert code == 0
    printed = json.loads(out) if encoding == "json" else yaml.safe_load(out)
    if encoding == "yaml":
        with pytest.raises(json.JSONDecodeError):
            json.loads(out)
    pod = dig(printed, path)
    assert pod["spec"]["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}
    ]
    assert pod["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "dshm", "mountPath": "/dev/shm"}
    ]
    assert pod["spec"]["containers"][0]["resources"]["limits"]["memory"] == "1280Mi"
    assert_valid_pod(pod)
    if path:  # outside its pod template, the workload is printed as it came
        dig(printed, path[:-1])[path[-1]] = dig(original, path)
        assert printed == original


@pytest.mark.parametrize("kind", list(WORKLOADS))
def test_the_patch_output_applied_to_the_input_gives_the_printed_object(
    *, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    original, _ = WORKLOADS[kind]
    source = write(tmp_path, "in.yaml", text=as_yaml(original))
    _, printed, _ = run(["mutate", "-f", str(source)], capsys)
    code, patch, _ = run(["mutate", "-f", str(source), "--output", "patch"], capsys)
    assert code == 0
    ops = json.loads(patch)
    assert ops
    assert jsonpatch.apply_patch(original, ops) == yaml.safe_load(printed)


def test_mutate_reads_stdin_and_handles_every_yaml_document(
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {}}
    deployment, path = WORKLOADS["Deployment"]
    code, out, err = run(["mutate", "-f", "-"], capsys, stdin=as_yaml(POD, service, deployment))
    assert code == 0
    printed = list(yaml.safe_load_all(out))
    assert printed[1] == service
    assert "volumes" in printed[0]["spec"]
    assert "volumes" in dig(printed[2], path)["spec"]
    assert err.splitlines() == [
        "pod/trainer: /dev/shm 256Mi, memory +256Mi on main",
        "service/web: skipped: not a pod or pod template",
        "deployment/trainer: /dev/shm 256Mi, memory +256Mi on main",
    ]


def test_patch_output_prints_one_array_per_document(capsys: pytest.CaptureFixture[str]) -> None:
    cronjob, _ = WORKLOADS["CronJob"]
    code, out, _ = run(
        ["mutate", "-f", "-", "--output", "patch"], capsys, stdin=as_yaml(POD, cronjob)
    )
    assert code == 0
    first, second = (json.loads(line) for line in out.splitlines())
    assert all(op["path"].startswith("/spec/jobTemplate/spec/template/") for op in second)
    assert not any(op["path"].startswith("/spec/jobTemplate") for op in first)


def test_a_template_without_metadata_still_gets_a_patch_that_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": template}}  # fmt: skip
    source = write(tmp_path, "job.json", text=json.dumps(job))
    code, out, _ = run(["mutate", "-f", str(source), "--default-size", "64Mi"], capsys)
    assert code == 0
    assert json.loads(out)["spec"]["template"]["spec"]["volumes"][0]["name"] == "dshm"


def test_policy_flags_shape_the_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path, "pod.yaml", text=as_yaml(POD))
    args = ["mutate", "-f", str(source), "--volume-name", "shm", "--memory-policy", "none"]
    code, out, _ = run(args, capsys)
    assert code == 0
    container = yaml.safe_load(out)["spec"]["containers"][0]
    assert container["volumeMounts"] == [{"name": "shm", "mountPath": "/dev/shm"}]
    assert container["resources"] == CONTAINER["resources"]


def test_a_denied_object_is_explained_on_stderr_kept_on_stdout_with_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = {**POD, "metadata": {"name": "bad", "annotations": {"shm-size": "8GB"}}}
    code, out, err = run(
        [
            "mutate",
            "-f",
            str(
                write(
                    tmp_path,
                    "pod.yaml",
                    text=as_yaml(pod),
                )
            ),
            "-f",
            "-",
        ],
        capsys,
        stdin=as_yaml(POD),
    )
    assert code == 1
    assert next(yaml.safe_load_all(out)) == pod  # as it came: never dropped
    assert err.splitlines() == [
        'pod/bad: denied: shm-size "8GB" is not a Kubernetes quantity; write 8Gi or 8G',
        "pod/trainer: /dev/shm 256Mi, memory +256Mi on main",
    ]


def test_warnings_go_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mounted = {**CONTAINER, "volumeMounts": [{"name": "mine", "mountPath": "/dev/shm"}]}
    pod = {**POD, "spec": {"containers": [mounted], "volumes": [{"name": "mine", "emptyDir": {}}]}}
    code, out, err = run(
        ["mutate", "-f", str(write(tmp_path, "pod.yaml", text=as_yaml(pod)))], capsys
    )
    assert code == 0
    assert yaml.safe_load(out) == pod
    assert err.splitlines() == [
        "pod/trainer: skipped: every container already mounts something at the path",
        "pod/trainer: warning: container main already mounts /dev/shm; kept as it is",
    ]


BAD_INPUT = [
    pytest.param("a: [b\n", "neither JSON nor YAML", id="a file that is not YAML"),
    pytest.param("just a string\n", "not a Kubernetes object", id="a document that is a scalar"),
    pytest.param("metadata: {}\n", "not a Kubernetes object", id="a document without kind"),
    pytest.param("# nothing\n", "holds no object", id="a file with no document"),
    pytest.param(
        "kind: Deployment\nmetadata: {name: d}\nspec: {}\n",
        "spec.template is missing",
        id="a Deployment without template",
    ),
    pytest.param(
        "kind: Pod\nmetadata: {name: p, annotations: {shm-size: 1Gi}}\nspec: {containers: x}\n",
        "pod/p: spec.containers",
        id="a pod whose containers are a string",
    ),
    pytest.param(
        '{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}',
        "request.uid",
        id="an AdmissionReview without uid",
    ),
]


@pytest.mark.parametrize(("text", "problem"), BAD_INPUT)
def test_bad_input_is_one_line_and_exit_code_2(
    *, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    code, out, err = run(["mutate", "-f", str(write(tmp_path, "in.yaml", text=text))], capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert problem in err


BAD_COMMAND_LINES = [
    pytest.param(["mutate", "-f", "/nonexistent/pod.yaml"], "cannot read", id="a missing file"),
    pytest.param(["mutate", "-f", "-", "--default-size", "8GB"], "--default-size", id="a bad size"),
    pytest.param(["mutate", "-f", "-", "--port", "1"], "unrecognized", id="a serve-only flag"),
    pytest.param(["mutate"], "-f/--filename", id="mutate without a file"),
    pytest.param(["serve", "--port", "0"], "--port", id="serve on port zero"),
    pytest.param(["serve", "--tls-cert-file", "x"], "--tls-key-file", id="a cert without key"),
    pytest.param(["frobnicate"], "invalid choice", id="an unknown command"),
    pytest.param([], "required", id="no command at all"),
    pytest.param(["certs", "generate", "--service", "s"], "required", id="certs without namespace"),
]


@pytest.mark.parametrize(("args", "problem"), BAD_COMMAND_LINES)
def test_a_bad_command_line_is_one_line_and_exit_code_2(
    *, capsys: pytest.CaptureFixture[str], args: list[str], problem: str
) -> None:
    code, _, err = run(args, capsys, stdin="")
    assert code == 2
    assert err.count("\n") == 1
    assert problem in err


def test_certs_generate_writes_a_ca_and_a_serving_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "tls"
    args = ["certs", "generate", "--service", "shm", "--namespace", "infra", "--out", str(out_dir),
            "--extra-name", "shm.example.com", "--cert-days", "30"]  # fmt: skip
    code, _, _ = run(args, capsys)
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    assert stat.S_IMODE((out_dir / "tls.key").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((out_dir / "tls.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {
        "shm", "shm.infra", "shm.infra.svc", "shm.infra.svc.cluster.local", "shm.example.com"
    }  # fmt: skip
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 30 <= lifetime.days <= 31


def test_certs_generate_refuses_a_bad_service_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "certs",
        "generate",
        "--service",
        "Bad_Name",
        "--namespace",
        "n",
        "--out",
        str(tmp_path),
    ]
    code, _, err = run(args, capsys)
    assert code == 2
    assert "Bad_Name" in err
    assert err.count("\n") == 1


def test_certs_generate_defaults_to_a_year_and_a_five_year_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["certs", "generate", "--service", "s", "--namespace", "n", "--out", str(tmp_path)]
    assert run(args, capsys)[0] == 0
    for name, days in (("tls.crt", 365), ("ca.crt", 5 * 365)):
        cert = x509.load_pem_x509_certificate((tmp_path / name).read_bytes())
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert days <= lifetime.days <= days + 1


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--help"], id="the command's help"),
        pytest.param(["serve", "--help"], id="serve's help"),
        pytest.param(["mutate", "--help"], id="mutate's help"),
    ],
)
def test_help_exits_0_and_names_the_environment_variables(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, _ = run(args, capsys)
    assert code == 0
    assert "usage: shm-webhook" in out
    if args[0] == "serve":
        assert "SHM_WEBHOOK_SHUTDOWN_GRACE" in out


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    version = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    code, out, _ = run(["--version"], capsys)
    assert (code, out) == (0, f"shm-webhook {version}\n")


def test_a_list_from_kubectl_get_is_unpacked_and_kept_a_list(
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment, path = WORKLOADS["Deployment"]
    listed = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
              "items": [deployment, {**POD, "metadata": {"name": "plain"}}]}  # fmt: skip
    code, out, err = run(["mutate", "-f", "-", "-o", "patch"], capsys, stdin=as_yaml(listed))
    assert code == 0
    [ops] = [json.loads(line) for line in out.splitlines()]
    unshared = json.loads(json.dumps(listed))  # the pod and the template share their spec here
    assert jsonpatch.apply_patch(unshared, ops)["items"][1] == listed["items"][1]
    code, out, err = run(["mutate", "-f", "-"], capsys, stdin=as_yaml(listed))
    printed = yaml.safe_load(out)
    assert (printed["kind"], len(printed["items"])) == ("List", 2)
    assert "volumes" in dig(printed["items"][0], path)["spec"]
    assert printed["items"][1] == listed["items"][1]
    assert err.splitlines() == [
        "deployment/trainer: /dev/shm 256Mi, memory +256Mi on main",
        "pod/plain: skipped: no size annotation and no default size",
    ]


def test_the_items_of_a_pod_list_are_pods_even_without_their_kind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    item = {key: value for key, value in POD.items() if key not in ("kind", "apiVersion")}
    pods = {"apiVersion": "v1", "kind": "PodList", "items": [item]}
    code, out, err = run(["mutate", "-f", "-"], capsys, stdin=json.dumps(pods))
    assert code == 0
    [printed] = json.loads(out)["items"]
    assert "kind" not in printed
    assert printed["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "256Mi"
    assert err == "pod/trainer: /dev/shm 256Mi, memory +256Mi on main\n"


def test_every_file_of_a_directory_and_every_flag_is_read_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    write(folder, "b.yaml", text=as_yaml({**POD, "metadata": {**POD["metadata"], "name": "b"}}))
    write(folder, "a.json", text=json.dumps({**POD, "metadata": {**POD["metadata"], "name": "a"}}))
    write(folder, "notes.txt", text="not a manifest")
    last = write(tmp_path, "c.yaml", text=as_yaml({**POD, "metadata": {"name": "c"}}))
    code, out, err = run(["mutate", "-f", str(folder), "-f", str(last)], capsys)
    assert code == 0
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(out)] == ["a", "b", "c"]
    assert [line.split(":")[0] for line in err.splitlines()] == ["pod/a", "pod/b", "pod/c"]


def test_an_annotation_on_the_workload_instead_of_its_template_gets_a_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment = copy.deepcopy(WORKLOADS["Deployment"][0])
    deployment["metadata"]["annotations"] = {"shm-size": "1Gi"}
    del deployment["spec"]["template"]["metadata"]["annotations"]
    code, out, err = run(["mutate", "-f", "-"], capsys, stdin=as_yaml(deployment))
    assert code == 0
    assert yaml.safe_load(out) == deployment
    assert err == (
        "deployment/trainer: skipped: the shm-size annotation is on the Deployment's own"
        " metadata, where the webhook never sees it; move it to"
        " spec.template.metadata.annotations\n"
    )


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _parsers(child)
    return found


def test_every_flag_has_help_that_names_its_default() -> None:
    from webhook.cli import _parser

    undocumented = []
    for parser in _parsers(_parser()):
        for action in parser._actions:
            if not action.option_strings or action.dest in ("help", "version"):
                continue
            text = action.help or ""
            takes_default = action.default not in (None, argparse.SUPPRESS, False)
            if not text or (takes_default and "default" not in text):
                undocumented.append(f"{parser.prog} {action.option_strings[-1]}")
    assert undocumented == []


NAMESPACE = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {
        "name": "team-a",
        "labels": {"shm-injection/defaults": "true"},
        "annotations": {"shm-injection/default-size": "2Gi", "shm-injection/max-size": "4Gi"},
    },
}


def test_a_namespace_file_gives_its_default_and_ceiling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = {**POD, "metadata": {"name": "plain"}}
    greedy = {**POD, "metadata": {"name": "greedy", "annotations": {"shm-size": "8Gi"}}}
    source = write(tmp_path, "pods.yaml", text=as_yaml(plain, greedy))
    namespace = write(tmp_path, "ns.yaml", text=as_yaml(NAMESPACE))
    code, out, err = run(["mutate", "-f", str(source), "--namespace-file", str(namespace)], capsys)
    assert code == 1
    first, second = yaml.safe_load_all(out)
    assert first["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "2Gi"
    assert second == greedy
    assert err.splitlines() == [
        "pod/plain: /dev/shm 2Gi, memory +2Gi on main",
        'pod/greedy: denied: shm-size "8Gi" exceeds the maximum of 4Gi set for namespace'
        " team-a; write at most 4Gi",
    ]


def test_a_namespace_in_the_input_applies_to_the_objects_in_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inside = {**POD, "metadata": {"name": "in", "namespace": "team-a"}}
    outside = {**POD, "metadata": {"name": "out", "namespace": "team-b"}}
    wrong = copy.deepcopy(NAMESPACE)
    wrong["metadata"]["annotations"]["shm-injection/default-size"] = "8Gi"
    code, out, err = run(["mutate", "-f", "-"], capsys, stdin=as_yaml(wrong, inside, outside))
    assert code == 0
    namespace, first, second = yaml.safe_load_all(out)
    assert namespace == wrong
    assert first["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "4Gi"
    assert second == outside
    assert err.splitlines() == [
        "namespace/team-a: default 8Gi, ceiling 4Gi",
        "namespace/team-a: warning: namespace team-a: shm-injection/default-size 8Gi exceeds"
        " the ceiling of 4Gi; its pods get 4Gi",
        "pod/in: /dev/shm 4Gi, memory +4Gi on main",
        "pod/out: skipped: no size annotation and no default size",
    ]
