"""The namespaces' size policies, kept in memory from a list and a watch of the API server, so
that `/mutate` never calls the API (docs/namespaces.md).

Owns: `NamespaceCache`: a daemon thread that lists every namespace (in pages), then watches
from the list's resourceVersion with bookmarks, re-watches a broken watch after a backoff, and
lists again when the watch's version has expired (410 Gone). It keeps only the namespaces that
say something of sizes, as ready `NamespacePolicy` values, so a lookup is one dict read. It is
`ready` once the first list is in, reports its age (seconds since the API server last told it
something) and the namespaces whose annotations are wrong. Must not import the web framework.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from webhook import kubeapi
from webhook.namespaces import read_namespace
from webhook.policy import NamespacePolicy, Policy

logger = logging.getLogger(__name__)

PAGE = 500
WATCH_SECONDS = 240  # the server ends a watch after this; the client-go reflector's range
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
GONE = 410


class NamespaceCache:
    def __init__(
        self,
        connection: kubeapi.Connection,
        cluster: Policy,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connection = connection
        self._cluster = cluster
        self._clock = clock
        self._policies: dict[str, NamespacePolicy] = {}
        self._problems: dict[str, tuple[str, ...]] = {}
        self._synced_at: float | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="namespace-cache", daemon=True)

    @property
    def ready(self) -> bool:
        return self._synced_at is not None

    def policy_for(self, namespace: object) -> NamespacePolicy | None:
        return self._policies.get(namespace) if isinstance(namespace, str) else None

    def age(self) -> float:
        """Seconds since the API server last told the cache anything (inf before the list)."""
        return float("inf") if self._synced_at is None else self._clock() - self._synced_at

    def problems(self) -> dict[str, tuple[str, ...]]:
        return dict(self._problems)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._list(self._connection)
                version = self._watch(self._connection, version)
                backoff = BACKOFF_FIRST
            except kubeapi.ApiError as error:
                if error.status == GONE:
                    version = None  # the watch's version expired: list again
                    continue
                logger.warning("namespace cache: %s; retrying in %.1f s", error, backoff)
                self._stopping.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _list(self, connection: kubeapi.Connection) -> str:
        policies: dict[str, NamespacePolicy] = {}
        problems: dict[str, tuple[str, ...]] = {}
        token = ""
        while True:
            more = f"&continue={quote(token)}" if token else ""
            page = kubeapi.get(connection, f"/api/v1/namespaces?limit={PAGE}{more}")
            for namespace in page.get("items") or []:
                self._read(namespace, policies, problems)
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                break
        self._policies, self._problems = policies, problems
        self._synced_at = self._clock()
        logger.info(
            "namespace cache: %d namespaces with a policy, %d with problems",
            len(policies),
            len(problems),
        )
        return str((page.get("metadata") or {}).get("resourceVersion", ""))

    def _watch(self, connection: kubeapi.Connection, version: str) -> str:
        path = (
            f"/api/v1/namespaces?watch=1&allowWatchBookmarks=true&resourceVersion={version}"
            f"&timeoutSeconds={WATCH_SECONDS}"
        )
        for event in kubeapi.watch(connection, path, timeout=WATCH_SECONDS + 30):
            if self._stopping.is_set():
                break
            namespace = event.get("object") or {}
            metadata = namespace.get("metadata") or {}
            version = str(metadata.get("resourceVersion", version))
            if event.get("type") in ("ADDED", "MODIFIED"):
                self._read(namespace, self._policies, self._problems)
            elif event.get("type") == "DELETED":
                name = str(metadata.get("name"))
                self._policies.pop(name, None)
                self._problems.pop(name, None)
            self._synced_at = self._clock()
        return version

    def _read(
        self,
        namespace: Mapping[str, Any],
        policies: dict[str, NamespacePolicy],
        problems: dict[str, tuple[str, ...]],
    ) -> None:
        reading = read_namespace(namespace, self._cluster)
        if reading.policy is None:
            policies.pop(reading.name, None)
        else:
            policies[reading.name] = reading.policy
        if reading.problems:
            if problems.get(reading.name) != reading.problems:
                for problem in reading.problems:
                    logger.warning("namespace policy: %s", problem)
            problems[reading.name] = reading.problems
        else:
            problems.pop(reading.name, None)
