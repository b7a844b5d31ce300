"""The cluster tier's session: a real cluster (KUBECONFIG), the project image it can start,
and one default install of the chart, removed at the end whatever failed.

Without KUBECONFIG and an image (SHM_WEBHOOK_IMAGE, or SHM_WEBHOOK_IMAGE_LOAD to build and
load one) every test skips with one message, also under CI=true: no CI job here has a
cluster (tests/cluster/environment.py). Set but unusable is an error: whoever set them meant
the tier to run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.cluster import environment, release, report
from tests.cluster.environment import Environment
from tests.cluster.image import Provided, provide
from tests.cluster.kube import Tools
from tests.cluster.release import Installed, Release


def pytest_report_header() -> str | None:
    try:
        found = environment.read(os.environ)
    except environment.BadEnvironment as error:
        return f"cluster: {error}"
    if found is None:
        return None
    image = found.image or f"built from the working tree, loaded by `{found.image_load}`"
    return f"cluster: KUBECONFIG={found.kubeconfig}, image: {image}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if report.NOTED:
        terminalreporter.section("cluster tier")
        for line in report.NOTED:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def cluster_environment() -> Environment:
    """The tier's settings; every test that reaches the cluster (through `tools` or `image`)
    skips here with the one message when they are absent."""
    try:
        found = environment.read(os.environ)
    except environment.BadEnvironment as error:
        pytest.fail(str(error), pytrace=False)
    if found is None:
        pytest.skip(environment.NEEDS)
    return found


@pytest.fixture(scope="session")
def tools(cluster_environment: Environment, kubectl: str, helm: str) -> Tools:
    found = Tools(kubectl, helm, cluster_environment.kubeconfig)
    version = found.kubectl("version", "-o", "json")
    assert version.code == 0, f"the cluster of KUBECONFIG does not answer: {version.stderr}"
    server = version.json()["serverVersion"]["gitVersion"]
    nodes = found.items("nodes")
    runtimes = sorted({n["status"]["nodeInfo"]["containerRuntimeVersion"] for n in nodes})
    report.note(f"cluster: {server}, {len(nodes)} node(s), {', '.join(runtimes)}")
    return found


@pytest.fixture(scope="session")
def image(cluster_environment: Environment) -> Provided:
    provided = provide(cluster_environment)
    report.note(f"image: {provided.how}")
    return provided


@pytest.fixture(scope="session")
def test_image(cluster_environment: Environment, image: Provided) -> str:
    """The image of the measuring pods: SHM_WEBHOOK_TEST_IMAGE, else the project image."""
    return cluster_environment.test_image or image.reference


@pytest.fixture(scope="session")
def installed(tools: Tools, image: Provided) -> Iterator[Installed]:
    """The chart installed with default values (the image aside), then `helm test --logs` at
    once, before any test touches the release."""
    with release.installed(tools, image.reference) as made:
        report.note(
            f"install ({made.name}): {made.installed_seconds:.1f} s to a deployed release, "
            "Ready webhook pods and a caBundle"
        )
        started = time.monotonic()
        tested = tools.helm("test", made.name, "--namespace", made.namespace, "--logs")
        took = time.monotonic() - started
        report.note(f"helm test --logs right after the install: exit {tested.code} in {took:.1f} s")
        yield Installed(made, tested, took)


@pytest.fixture(scope="session")
def chart(installed: Installed) -> Release:
    return installed.release
