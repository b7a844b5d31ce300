"""The namespace cache against a fake API server over TLS: the paged list, the watch, a watch
that breaks or expires, readiness and age; and the kubeconfig the light client reads."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.webhook.fake_namespaces import (
    END,
    TOKEN,
    FakeNamespaceApi,
    fake_namespace_api,
    namespace,
)
from webhook import kubeapi, namespace_cache
from webhook.namespace_cache import NamespaceCache
from webhook.policy import Policy

GI = 2**30
DEFAULTS = {"shm-injection/defaults": "true"}


def eventually(check: Callable[[], bool], *, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.01)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[FakeNamespaceApi, kubeapi.Connection]]:
    with fake_namespace_api(tmp_path) as (fake, port, ca_file):
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {
                "server": f"https://127.0.0.1:{port}",
                "certificate-authority-data": base64.b64encode(ca_file.read_bytes()).decode()}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        }))  # fmt: skip
        yield fake, kubeapi.from_kubeconfig(kubeconfig)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(namespace_cache, "BACKOFF_FIRST", 0.01)


def started(connection: kubeapi.Connection, cluster: Policy | None = None) -> NamespaceCache:
    cache = NamespaceCache(connection, cluster or Policy())
    cache.start()
    return cache


def test_every_page_is_listed_and_only_namespaces_with_a_policy_are_kept(
    api: tuple[FakeNamespaceApi, kubeapi.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, connection = api
    monkeypatch.setattr(namespace_cache, "PAGE", 7)
    fake.namespaces = [namespace(f"ns-{i}") for i in range(40)]
    fake.namespaces[33] = namespace(
        "ns-33", annotations={"shm-injection/default-size": "2Gi"}, **DEFAULTS
    )
    cache = started(connection)
    try:
        eventually(lambda: cache.ready)
        policy = cache.policy_for("ns-33")
        assert policy is not None
        assert policy.default_size is not None
        assert cache.policy_for("ns-1") is None
        assert cache.policy_for(None) is None
        assert fake.lists == 1
        assert cache.age() < 5
    finally:
        cache.stop()


@pytest.mark.usefixtures("fast_backoff")
def test_not_ready_and_infinitely_old_before_the_first_list(
    api: tuple[FakeNamespaceApi, kubeapi.Connection],
) -> None:
    fake, connection = api
    fake.fail_next_requests = 3
    cache = started(connection)
    try:
        assert not cache.ready
        assert cache.age() == float("inf")
        eventually(lambda: cache.ready)  # listed once the API server answers again
        assert fake.fail_next_requests == 0
    finally:
        cache.stop()


def test_watched_changes_reach_the_cache(api: tuple[FakeNamespaceApi, kubeapi.Connection]) -> None:
    fake, connection = api
    fake.namespaces = [namespace("team-a")]
    cache = started(connection)
    try:
        watch = fake.next_watch()
        annotated = namespace("team-a", annotations={"shm-injection/max-size": "8Gi"})
        watch.put(fake.event("MODIFIED", annotated))
        eventually(lambda: cache.policy_for("team-a") is not None)
        assert cache.policy_for("team-a").max_size == 8 * GI  # type: ignore[union-attr]
        watch.put(
            fake.event(
                "ADDED", namespace("team-b", annotations={"shm-injection/default-size": "x"})
            )
        )
        eventually(lambda: "team-b" in cache.problems())
        watch.put(fake.event("DELETED", annotated))
        eventually(lambda: cache.policy_for("team-a") is None)
        time.sleep(0.3)  # the cache ages; a bookmark makes it young again
        before = cache.age()
        assert before >= 0.3
        watch.put({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "999"}}})
        eventually(lambda: cache.age() < before)
    finally:
        cache.stop()


def test_a_watch_the_server_ends_is_resumed_from_its_last_version(
    api: tuple[FakeNamespaceApi, kubeapi.Connection],
) -> None:
    fake, connection = api
    cache = started(connection)
    try:
        first = fake.next_watch()
        first.put(
            fake.event("ADDED", namespace("a", annotations={"shm-injection/max-size": "1Gi"}))
        )
        first.put(END)
        second = fake.next_watch()
        second.put(
            fake.event("ADDED", namespace("b", annotations={"shm-injection/max-size": "2Gi"}))
        )
        eventually(lambda: cache.policy_for("b") is not None)
        assert cache.policy_for("a") is not None
        assert fake.lists == 1  # resumed, not listed again
    finally:
        cache.stop()


@pytest.mark.usefixtures("fast_backoff")
def test_an_expired_watch_lists_again(
    api: tuple[FakeNamespaceApi, kubeapi.Connection],
) -> None:
    fake, connection = api
    fake.namespaces = [namespace("old", annotations={"shm-injection/max-size": "1Gi"})]
    cache = started(connection)
    try:
        watch = fake.next_watch()
        # Meanwhile the namespace changed, and the history the watch would resume from is gone.
        fake.namespaces = [namespace("new", annotations={"shm-injection/max-size": "2Gi"})]
        fake.oldest_watchable = 10**6
        watch.put(END)
        eventually(lambda: fake.lists == 2)
        eventually(lambda: cache.policy_for("new") is not None)
        assert cache.policy_for("old") is None
    finally:
        cache.stop()


@pytest.mark.usefixtures("fast_backoff")
def test_a_refused_token_is_retried_with_backoff_not_a_crash(
    api: tuple[FakeNamespaceApi, kubeapi.Connection], caplog: pytest.LogCaptureFixture
) -> None:
    _, connection = api
    refused = kubeapi.Connection(connection.host, connection.port, connection.context, token="no")
    cache = started(refused)
    try:
        eventually(lambda: "401" in caplog.text)
        assert not cache.ready
    finally:
        cache.stop()


def test_a_kubeconfig_without_a_usable_user_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("current-context: x\ncontexts: []\n")
    with pytest.raises(kubeapi.ApiError, match="cannot use the kubeconfig"):
        kubeapi.from_kubeconfig(path)


def test_outside_a_cluster_the_service_account_is_refused_by_name() -> None:
    with pytest.raises(kubeapi.ApiError, match="not in a cluster"):
        kubeapi.in_cluster({})
