"""Prometheus metrics of the admission service (docs/metrics.md), on their own plain-HTTP port.

Owns: the collectors, in a registry per `Metrics` instance (never the process-global one, so
tests can build several apps): the admissions, their duration, the bytes injected, the serving
certificate's expiry, `shm_webhook_build_info` and the standard `process_*` metrics (RSS
against the pod's memory limit, CPU, open file descriptors); and `start_metrics_server`. Must
not import the web framework or the Kubernetes client; knows nothing about AdmissionReviews.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)

from webhook.version import VERSION

# A `_created` series beside every counter doubles what is scraped and says nothing a counter
# reset does not; the switch is process-wide in prometheus_client.
disable_created_metrics()  # type: ignore[no-untyped-call]

# An admission costs 0.1 to 2 ms in process; the upper buckets catch GC pauses, a starved CPU
# and very large pods long before the kube-apiserver's timeout (3 s by default) is near.
DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip


class Metrics:
    """The service's collectors. `record` is on the hot path: label children are cached."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.admissions = Counter(
            "shm_webhook_admissions",
            "Admission requests answered, by outcome (mutated, skipped, denied, error) and reason.",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "shm_webhook_admission_duration_seconds",
            "Time from the start of a /mutate request to its answer being sent.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.injected_bytes = Counter(
            "shm_webhook_injected_bytes",
            "Bytes of memory-backed /dev/shm given to admitted pods.",
            registry=self.registry,
        )
        self.certificate_expiry = Gauge(
            "shm_webhook_certificate_expiry_timestamp_seconds",
            "Expiry (notAfter) of the serving certificate in use, as a Unix timestamp.",
            registry=self.registry,
        )
        self.build_info = Gauge(
            "shm_webhook_build_info",
            "Always 1; the labels name the version of the webhook and of Python.",
            ["version", "python_version"],
            registry=self.registry,
        )
        self.build_info.labels(VERSION, platform.python_version()).set(1)
        ProcessCollector(registry=self.registry)
        self._children: dict[tuple[str, str], Counter] = {}

    def record(self, *, outcome: str, reason: str, seconds: float, injected: int = 0) -> None:
        """Count one answered admission request."""
        key = (outcome, reason)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.admissions.labels(outcome, reason)
        child.inc()
        self.duration.observe(seconds)
        if injected:
            self.injected_bytes.inc(injected)

    def watch_namespaces(self, *, age: Callable[[], float], problems: Callable[[], int]) -> None:
        """Publish the namespace cache's age and how many namespaces have wrong annotations."""
        Gauge(
            "shm_webhook_namespace_cache_age_seconds",
            "Seconds since the API server last told the namespace cache anything (a list, a watch"
            " event or a bookmark); +Inf before the first list.",
            registry=self.registry,
        ).set_function(age)
        Gauge(
            "shm_webhook_namespace_policy_problems",
            "Namespaces whose size annotations are wrong: unparsable, a default above the"
            " ceiling, or a default without the label that sends their pods to the webhook.",
            registry=self.registry,
        ).set_function(problems)

    def certificate_loaded(self, not_after: datetime) -> None:
        """Publish the expiry of a newly loaded serving certificate."""
        self.certificate_expiry.set(not_after.timestamp())


def start_metrics_server(
    registry: CollectorRegistry, *, host: str, port: int
) -> tuple[WSGIServer, threading.Thread] | None:
    """Serve `registry` over plain HTTP on a daemon thread; nothing when `port` is 0."""
    if port == 0:
        return None
    return start_http_server(port, addr=host, registry=registry)
