"""What the webhook's own disruptions cost the pods being admitted meanwhile: nothing.

For each disruption a stream of server-side dry-run pod creations runs through the API
server from before it starts until after the webhook has settled again
(tests/cluster/admissions.py), and every admission is counted: with `failurePolicy: Fail`
an admission the webhook did not answer, or answered with a certificate the API server does
not trust, is a pod refused.

- `kubectl rollout restart`: both pods replaced one at a time (maxUnavailable 0), each old one
  draining on SIGTERM.
- `kubectl delete pod --grace-period=0 --force`: one pod gone from the API at once, its
  container killed by the kubelet shortly after.
- the TLS Secret deleted and the renewal Job run at once (`kubectl create job --from=cronjob`):
  a new CA and certificate, the CA added to the bundle before the pods serve it.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

import pytest
from cryptography import x509
from kubernetes import client

from tests.cluster import report
from tests.cluster.admissions import AdmissionStream, Tally
from tests.cluster.kube import Tools, wait_for
from tests.cluster.release import Release

pytestmark = pytest.mark.cluster

REPLICAS = 2
LEAD_S = 3.0  # the stream runs this long before the disruption and after the settling
SETTLE_TIMEOUT_S = 300
SERVE_TIMEOUT_S = 300
EXPIRY_METRIC = "shm_webhook_certificate_expiry_timestamp_seconds"


def settled(chart: Release) -> list[str]:
    """The names of the webhook pods, once there are exactly REPLICAS, all Ready, none
    terminating."""

    def names() -> list[str] | None:
        pods = chart.webhook_pods()
        if len(pods) == REPLICAS and len(chart.ready_pods()) == REPLICAS:
            return sorted(p["metadata"]["name"] for p in pods)
        return None

    return wait_for(names, what="the webhook settled", timeout=SETTLE_TIMEOUT_S)


def stream(tools: Tools, chart: Release) -> AdmissionStream:
    return AdmissionStream(
        tools.api,
        namespace=chart.in_scope,
        image=chart.image,
        webhook=(chart.namespace, chart.selector),
    )


def check(what: str, tally: Tally) -> None:
    report.note(f"{what}: {tally.summary()}")
    report.note(
        "  webhook pods: " + "; ".join(f"{at:.2f} s {event}" for at, event in tally.timeline)
    )
    for failure in tally.failures:
        report.note(f"  failed at {failure.at:.2f} s: {failure.message}")
    assert tally.succeeded >= 50, f"the stream hardly ran: {tally.summary()}"
    assert tally.failed == 0, (
        tally.summary() + "\n" + "\n".join(f"{f.at:.2f} s: {f.message}" for f in tally.failures)
    )


def test_a_rolling_restart_costs_no_admission(tools: Tools, chart: Release) -> None:
    before = settled(chart)
    with stream(tools, chart) as admissions:
        time.sleep(LEAD_S)
        started = time.monotonic()
        deployment = f"deployment/{chart.fullname}"
        tools.kubectl("rollout", "restart", deployment, "-n", chart.namespace).ok()
        tools.kubectl(
            "rollout", "status", deployment, "-n", chart.namespace, "--timeout", "300s"
        ).ok()
        after = settled(chart)
        took = time.monotonic() - started
        time.sleep(LEAD_S)
    report.note(f"rolling restart: {took:.1f} s until both new pods Ready and the old ones gone")
    assert not set(before) & set(after)
    check("rolling restart", admissions.tally)


def test_a_forced_deletion_of_a_webhook_pod_costs_no_admission(
    tools: Tools, chart: Release
) -> None:
    victim, survivor = settled(chart)
    with stream(tools, chart) as admissions:
        time.sleep(LEAD_S)
        started = time.monotonic()
        tools.kubectl(
            "delete", "pod", victim, "-n", chart.namespace, "--grace-period=0", "--force"
        ).ok()
        after = settled(chart)
        took = time.monotonic() - started
        time.sleep(LEAD_S)
    report.note(f"forced deletion: the replacement Ready {took:.1f} s after")
    assert victim not in after
    assert survivor in after
    check("forced deletion of one pod", admissions.tally)


def serving_expiry(core: client.CoreV1Api, pod: str, *, namespace: str) -> float | None:
    """notAfter of the certificate `pod` serves, from its metrics (read through the API
    server's pod proxy, so no port of the cluster need be reachable from here)."""
    try:
        text = core.connect_get_namespaced_pod_proxy_with_path(f"{pod}:9090", namespace, "metrics")
    except client.ApiException:
        return None
    for line in str(text).splitlines():
        if line.startswith(EXPIRY_METRIC + " "):
            return float(line.split()[1])
    return None


def serving_times(
    core: client.CoreV1Api, pods: list[str], *, namespace: str, expiry: float, since: float
) -> dict[str, float]:
    """Seconds after `since` at which each pod was first seen serving the certificate that
    expires at `expiry`, polled every second."""
    served: dict[str, float] = {}
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while len(served) < len(pods):
        assert time.monotonic() < deadline, f"only {sorted(served)} serve the new certificate"
        for pod in set(pods) - set(served):
            if serving_expiry(core, pod, namespace=namespace) == expiry:
                served[pod] = time.monotonic() - since
        time.sleep(1.0)
    return served


def certificate(secret: dict[str, Any], key: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(secret["data"][key]))


def test_a_deleted_tls_secret_and_the_renewal_job_cost_no_admission(
    tools: Tools, chart: Release
) -> None:
    pods = settled(chart)
    ns = chart.namespace
    old = certificate(tools.get("secret", chart.tls_secret, namespace=ns) or {}, "tls.crt")
    core = client.CoreV1Api(tools.api())
    job = f"renew-{secrets.token_hex(3)}"
    with stream(tools, chart) as admissions:
        time.sleep(LEAD_S)
        tools.kubectl("delete", "secret", chart.tls_secret, "-n", ns).ok()
        started = time.monotonic()
        tools.kubectl("create", "job", job, f"--from=cronjob/{chart.cronjob}", "-n", ns).ok()
        secret = wait_for(
            lambda: tools.get("secret", chart.tls_secret, namespace=ns),
            what="the renewal Job writing a new Secret",
            timeout=SERVE_TIMEOUT_S,
            interval=0.2,
        )
        recreated = time.monotonic() - started
        new = certificate(secret, "tls.crt")
        expiry = new.not_valid_after_utc.timestamp()
        served = serving_times(core, pods, namespace=ns, expiry=expiry, since=started + recreated)
        tools.kubectl(
            "wait", "--for=condition=complete", f"job/{job}", "-n", ns, "--timeout=300s"
        ).ok()
        time.sleep(LEAD_S)
    report.note(
        f"TLS Secret deleted: the renewal Job recreated it in {recreated:.1f} s; the pods served "
        "the new certificate "
        + ", ".join(f"{s:.1f} s" for s in sorted(served.values()))
        + " after that"
    )
    assert new.serial_number != old.serial_number
    assert new.issuer != old.issuer  # a new CA: the old one's key went with the Secret
    bundle = x509.load_pem_x509_certificates(chart.ca_bundle())
    assert certificate(secret, "ca.crt") in bundle
    check("TLS Secret deleted and renewed", admissions.tally)
