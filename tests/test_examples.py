"""The examples the README walks through do what it says: the `curl` of the quick start gets a
patch from a running `make serve`, and the example pod and Deployment are mutated as described.
"""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.pods import apply_patch, assert_valid_pod
from tests.serving import ServedWebhook
from webhook.cli import main
from webhook.status import STATUS_ANNOTATION

EXAMPLES = REPO / "examples"
README = (REPO / "README.md").read_text(encoding="utf-8")
REVIEW = json.loads((EXAMPLES / "review.json").read_text(encoding="utf-8"))


def readme_curl(port: int) -> list[str]:
    """The quick start's curl command, aimed at `port`."""
    [line] = [
        line for line in README.splitlines() if line.startswith("curl ") and "/mutate" in line
    ]
    assert "https://localhost:8443/mutate" in line
    return shlex.split(line.replace("localhost:8443", f"localhost:{port}"))


def make_serve_command(flags: Sequence[str]) -> list[str]:
    return ["make", "--no-print-directory", "serve", f"ARGS={shlex.join(flags)}"]


@pytest.fixture
def make_serve(tmp_path: Path) -> Iterator[ServedWebhook]:
    """`make serve` with its development certificate, on a free port."""
    with ServedWebhook(log=tmp_path / "serve.log", command=make_serve_command) as server:
        yield server


def example_pod() -> dict[str, Any]:
    pod: dict[str, Any] = REVIEW["request"]["object"]
    return pod


def check_answer(body: bytes) -> None:
    """The answer the README describes: allowed, with the volume, its mount, the memory raised
    by 1Gi and the status annotation."""
    answer = json.loads(body)
    response = answer["response"]
    assert answer["apiVersion"] == REVIEW["apiVersion"]
    assert response["uid"] == REVIEW["request"]["uid"]
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    pod = apply_patch(example_pod(), json.loads(base64.b64decode(response["patch"])))
    assert_valid_pod(pod)
    assert pod["spec"]["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}
    ]
    [container] = pod["spec"]["containers"]
    assert container["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]
    assert container["resources"] == {"requests": {"memory": "3Gi"}, "limits": {"memory": "5Gi"}}
    assert STATUS_ANNOTATION in pod["metadata"]["annotations"]


@pytest.mark.integration
def test_the_readme_curl_gets_a_patch_from_make_serve(make_serve: ServedWebhook) -> None:
    connection = make_serve.connection()
    try:
        body = (EXAMPLES / "review.json").read_bytes()
        connection.request(
            "POST", "/mutate", body=body, headers={"content-type": "application/json"}
        )
        response = connection.getresponse()
        assert response.status == 200
        check_answer(response.read())
    finally:
        connection.close()
    if shutil.which("curl") is None:
        return  # the same request was sent above; curl itself is not a project dependency
    done = subprocess.run(
        readme_curl(make_serve.port), cwd=REPO, capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    check_answer(done.stdout)


def preview(path: Path, capsys: pytest.CaptureFixture[str], *, report: str) -> Any:
    assert main(["mutate", "-f", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == report + "\n"  # one line for the one object, and no warning
    return yaml.safe_load(out)


def test_the_example_pod_gets_the_whole_gibibyte(capsys: pytest.CaptureFixture[str]) -> None:
    pod = preview(
        EXAMPLES / "pod.yaml", capsys, report="pod/shm-demo: /dev/shm 1Gi, memory +1Gi on main"
    )
    assert_valid_pod(pod)
    assert pod["metadata"]["annotations"]["shm-size"] == "1Gi"
    assert pod["spec"]["volumes"][0]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    # The kubelet caps the tmpfs at the pod's memory limit: 1152Mi leaves the whole 1Gi.
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"memory": "1152Mi"}


def test_the_example_deployment_charges_its_default_container(
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment = preview(
        EXAMPLES / "deployment.yaml",
        capsys,
        report="deployment/trainer: /dev/shm 8Gi, memory +8Gi on trainer",
    )
    template = deployment["spec"]["template"]
    status = json.loads(template["metadata"]["annotations"][STATUS_ANNOTATION])
    assert status == {
        "size": "8Gi",
        "volume": "dshm",
        "mounted": ["trainer", "metrics-sidecar"],
        "charged": ["trainer"],
    }
    trainer, sidecar = template["spec"]["containers"]
    assert trainer["resources"] == {"requests": {"memory": "24Gi"}, "limits": {"memory": "32Gi"}}
    assert "resources" not in sidecar
