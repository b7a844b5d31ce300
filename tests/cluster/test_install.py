"""The default install: `helm test --logs` passes right after it, and every pod of the chart
is admitted in a release namespace that enforces the `restricted` Pod Security Standard."""

from __future__ import annotations

import pytest

from tests.cluster import probes
from tests.cluster.kube import Tools
from tests.cluster.release import PSS, Installed, Release

pytestmark = pytest.mark.cluster


def test_helm_test_passes_right_after_a_default_install_and_prints_the_pods_log(
    installed: Installed,
) -> None:
    tested = installed.first_test
    assert tested.code == 0, tested.stdout + tested.stderr
    release = installed.release
    assert f"POD LOGS: {release.test_pod}" in tested.stdout
    assert "OK: /dev/shm is a 262144 KiB tmpfs and took a 100 MiB write" in tested.stdout


def test_the_release_namespace_enforces_restricted_and_refuses_a_privileged_pod(
    tools: Tools, chart: Release
) -> None:
    # The control: without it a cluster that ignores the label would pass the test below.
    labels = tools.get("namespace", chart.namespace)["metadata"]["labels"]  # type: ignore[index]
    assert PSS.items() <= labels.items()
    container = probes.container("c", chart.image)
    container["securityContext"] = {"privileged": True}
    pod = probes.pod("privileged", namespace=chart.namespace, spec=probes.pod_spec([container]))
    refused = tools.create(pod, "--dry-run=server")
    assert refused.code != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr


def test_every_pod_of_the_chart_was_admitted_under_restricted(tools: Tools, chart: Release) -> None:
    """The webhook pods run, the two bootstrap Jobs completed (their Secret and caBundle
    exist), the test pod succeeded, and nothing was refused a pod in the namespace."""
    assert len(chart.ready_pods()) == 2
    events = tools.items("events", namespace=chart.namespace)
    completed = {
        e["involvedObject"]["name"]
        for e in events
        if e["involvedObject"]["kind"] == "Job" and e["reason"] == "Completed"
    }
    assert {f"{chart.fullname}-certs-secret", f"{chart.fullname}-certs-ca-bundle"} <= completed
    refusals = [e["message"] for e in events if e["reason"] == "FailedCreate"]
    assert not refusals
    assert tools.get("secret", chart.tls_secret, namespace=chart.namespace) is not None
    assert chart.ca_bundle().startswith(b"-----BEGIN CERTIFICATE-----")
    test_pod = tools.get("pod", chart.test_pod, namespace=chart.namespace)
    assert test_pod is not None
    assert test_pod["status"]["phase"] == "Succeeded"
