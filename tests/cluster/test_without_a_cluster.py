"""The cluster tier's own parts that need no cluster, run by every `make test`: the reading of
its environment, the split of an image reference into the chart's values, the in-pod
programs run here by this machine's python3, and the counting of failures."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import environment, probes
from tests.cluster.admissions import _kind
from tests.cluster.environment import BadEnvironment, Reference, split

KUBECONFIG = {"KUBECONFIG": "/tmp/kubeconfig"}
LOAD = {"SHM_WEBHOOK_IMAGE_LOAD": "kind load image-archive {archive}"}


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({}, id="nothing set"),
        pytest.param(KUBECONFIG, id="a cluster but no image"),
        pytest.param({"SHM_WEBHOOK_IMAGE": "localhost/shm-webhook:dev"}, id="an image, no cluster"),
        pytest.param({**LOAD, "KUBECONFIG": " "}, id="a blank KUBECONFIG"),
    ],
)
def test_the_tier_is_not_asked_to_run(environ: dict[str, str]) -> None:
    assert environment.read(environ) is None


def test_a_cluster_and_a_load_command_ask_for_a_build() -> None:
    found = environment.read({**KUBECONFIG, **LOAD, "SHM_WEBHOOK_TEST_IMAGE": "python:3.12"})
    assert found == environment.Environment(
        kubeconfig="/tmp/kubeconfig",
        image=None,
        image_load="kind load image-archive {archive}",
        test_image="python:3.12",
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param(
            {**KUBECONFIG, **LOAD, "SHM_WEBHOOK_IMAGE": "localhost/x:1"},
            "SHM_WEBHOOK_IMAGE and SHM_WEBHOOK_IMAGE_LOAD are both set",
            id="both image variables",
        ),
        pytest.param(
            {**KUBECONFIG, "SHM_WEBHOOK_IMAGE_LOAD": "kind load image-archive"},
            "SHM_WEBHOOK_IMAGE_LOAD='kind load image-archive' has no {archive}",
            id="a load command without {archive}",
        ),
    ],
)
def test_unusable_settings_are_one_line_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(BadEnvironment) as raised:
        environment.read(environ)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        pytest.param("localhost/shm-webhook:dev", Reference("localhost/shm-webhook", "dev", ""),
                     id="a tag"),
        pytest.param("registry:5000/team/shm-webhook", Reference("registry:5000/team/shm-webhook",
                     "latest", ""), id="a registry port is not a tag"),
        pytest.param("ghcr.io/o/shm-webhook:1.0@sha256:ab12",
                     Reference("ghcr.io/o/shm-webhook", "1.0", "sha256:ab12"), id="a digest"),
    ],
)  # fmt: skip
def test_an_image_reference_splits_into_the_charts_values(
    reference: str, expected: Reference
) -> None:
    assert split(reference) == expected


@pytest.mark.parametrize("reference", ["", ":dev", "x@md5:00"])
def test_a_malformed_reference_is_refused(reference: str) -> None:
    with pytest.raises(BadEnvironment, match="is not an image reference"):
        split(reference)


def run(program: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_fill_writes_to_its_target_and_reports_the_size(tmp_path: Path) -> None:
    done = run(probes.FILL, str(tmp_path), "3")
    assert done.returncode == 0, done.stderr
    found = probes.findings(done.stdout)
    assert found["written"] == 3 * probes.MIB
    assert found["error"] is None
    assert found["kib"] > 0


def test_fill_counts_what_the_kernel_took_and_names_the_errno_that_stopped_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "fill").symlink_to("/dev/full")  # every write: ENOSPC, as on a full tmpfs
    done = run(probes.FILL, str(tmp_path), "3")
    assert done.returncode == 0, done.stderr
    found = probes.findings(done.stdout)
    assert (found["written"], found["error"]) == (0, "ENOSPC")


def test_shared_memory_fills_its_block_a_mib_at_a_time() -> None:
    done = run(probes.SHARED_MEMORY, "3")
    assert done.returncode == 0, done.stderr
    assert probes.filled_mib(done.stdout) == 3
    assert done.stdout.splitlines()[-1] == "done"


def test_measure_and_wait_reports_then_exits_0_on_sigterm(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", probes.MEASURE_AND_WAIT, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        found = json.loads(process.stdout.readline())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert found["kib"] > 0


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        pytest.param(
            'HTTP 500: Internal error occurred: failed calling webhook "w": failed to call webhook:'
            ' Post "https://w.ns.svc:443/mutate?timeout=3s": EOF',
            "EOF",
            id="the Go error after the URL, not the URL's timeout parameter",
        ),
        pytest.param(
            "admitted without its /dev/shm volume", "admitted without its /dev/shm volume",
            id="a wrong answer counts as itself",
        ),
    ],
)  # fmt: skip
def test_failures_are_counted_by_their_cause(failure: str, kind: str) -> None:
    assert _kind(failure) == kind
