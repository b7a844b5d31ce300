"""A release's life after the install: `helm upgrade --reuse-values --set scope=cluster`, then
`helm test` in that scope, then `helm uninstall` and what it leaves behind.

A release of its own (the session's stays installed for the other modules), in a release
namespace that enforces `restricted` too, so the pre- and post-upgrade hook Jobs are admitted
under it as well. Its tests run in file order: each is the next step of the same release.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.cluster import report
from tests.cluster.image import Provided
from tests.cluster.kube import Tools, wait_for
from tests.cluster.release import CHART, CLUSTER_KINDS, Release

pytestmark = pytest.mark.cluster

ANSWER_WITHIN_S = 10.0
GONE_TIMEOUT_S = 180
IGNORED_KINDS = {"events", "events.events.k8s.io"}  # written by everything, expire by themselves
CHART_README = (CHART / "README.md").read_text()


def namespace_objects(tools: Tools, namespace: str) -> set[str]:
    """`Kind/name` of every object of the namespace, of every kind that can be listed."""
    kinds = tools.kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name").ok()
    listed = ",".join(sorted(set(kinds.split()) - IGNORED_KINDS))
    items = tools.items(listed, namespace=namespace)
    return {f"{i['kind']}/{i['metadata']['name']}" for i in items}


class Lifecycle:
    def __init__(self, release: Release, baseline: set[str]) -> None:
        self.release = release
        self.baseline = baseline  # the release namespace's objects before the install


@pytest.fixture(scope="module")
def lifecycle(tools: Tools, image: Provided) -> Iterator[Lifecycle]:
    release = Release(tools, image.reference)
    try:
        release.create_namespaces()
        wait_for(
            lambda: (
                tools.get("serviceaccount", "default", namespace=release.namespace)
                and tools.get("configmap", "kube-root-ca.crt", namespace=release.namespace)
            ),
            what="the release namespace's default ServiceAccount and root CA ConfigMap",
            timeout=60,
        )
        time.sleep(2)  # other per-namespace objects a distribution publishes
        baseline = namespace_objects(tools, release.namespace)
        release.install()
        release.wait_until_serving()
        yield Lifecycle(release, baseline)
    finally:
        failures = release.remove()
        assert not failures, "cleanup of the release failed:\n" + "\n".join(failures)


class BundleWatch:
    """Reads the caBundle every 0.2 s in a thread; every value it saw."""

    def __init__(self, release: Release) -> None:
        self._release = release
        self._stop = threading.Event()
        self.seen: set[bytes] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen.add(self._release.ca_bundle())
            time.sleep(0.2)

    def __enter__(self) -> BundleWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_scope_cluster_upgrade_keeps_the_ca_bundle_and_the_webhook_answers_right_after(
    lifecycle: Lifecycle,
) -> None:
    release = lifecycle.release
    before = release.ca_bundle()
    assert before
    with BundleWatch(release) as watch:
        started = time.monotonic()
        release.helm("upgrade", "--reuse-values", "--set", "scope=cluster").ok()
        upgraded = time.monotonic() - started
    # The out-of-scope namespace is served now: no label needed in scope=cluster.
    answered = release.wait_until_serving(release.out_of_scope)
    report.note(
        f"helm upgrade --set scope=cluster: {upgraded:.1f} s; caBundle values seen during it: "
        f"{len(watch.seen)}; an unlabelled namespace's pod mutated {answered:.2f} s after"
    )
    assert watch.seen == {before}
    assert release.ca_bundle() == before
    assert answered < ANSWER_WITHIN_S


def test_helm_test_passes_in_scope_cluster_too(tools: Tools, lifecycle: Lifecycle) -> None:
    release = lifecycle.release
    tested = tools.helm("test", release.name, "--namespace", release.namespace, "--logs")
    assert tested.code == 0, tested.stdout + tested.stderr
    assert "OK: /dev/shm is a 262144 KiB tmpfs" in tested.stdout


def test_uninstall_leaves_the_tls_secret_and_the_test_pod_as_the_chart_readme_says(
    tools: Tools, lifecycle: Lifecycle
) -> None:
    release = lifecycle.release
    # What the documentation promises, so this test and the README cannot drift apart.
    assert "`helm uninstall` leaves the Secret `<fullname>-tls`" in CHART_README
    assert "`helm uninstall` leaves it, like\nevery hook object" in CHART_README
    expected = lifecycle.baseline | {f"Secret/{release.tls_secret}", f"Pod/{release.test_pod}"}
    started = time.monotonic()
    tools.helm(
        "uninstall", release.name, "--namespace", release.namespace, "--wait", "--timeout", "180s"
    ).ok()
    uninstalled = time.monotonic() - started
    left: set[str] = set()

    def only_expected() -> bool:
        left.clear()
        left.update(namespace_objects(tools, release.namespace))
        return left == expected

    try:
        wait_for(only_expected, what="the namespace back to its leftovers", timeout=GONE_TIMEOUT_S)
    except AssertionError:
        pytest.fail(f"left: {sorted(left - expected)}; missing: {sorted(expected - left)}")
    report.note(
        f"helm uninstall: {uninstalled:.1f} s; left in the namespace: "
        + ", ".join(sorted(left - lifecycle.baseline))
    )
    cluster_wide = tools.items(CLUSTER_KINDS, "-l", f"app.kubernetes.io/instance={release.name}")
    assert not cluster_wide
    assert tools.get("mutatingwebhookconfiguration", release.fullname) is None
