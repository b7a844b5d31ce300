"""The plumbing of one MutatingWebhookConfiguration: whom each entry calls, and whether the
kube-apiserver can reach it and trust what it serves.

Owns: `configuration_checks`: each entry's target and caBundle; per Service target, the
Service (routable: not headless, the port exists), its ready endpoints (EndpointSlices), the
Deployment and PodDisruptionBudget of its pods (`webhook.diagnose.workload`), the serving
Secret's certificate against every caBundle and the Service's DNS name, and with `handshake`
what each endpoint serves; per URL target, what the URL serves (`webhook.diagnose.serving`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from certs.trust import cas_of
from webhook.diagnose.certificates import certificate_checks
from webhook.diagnose.cluster import Reader, Refused, rights_hint
from webhook.diagnose.report import Check, failed, passed, skipped
from webhook.diagnose.scope import listing
from webhook.diagnose.serving import Limits, ca_bundle, handshake_checks, url_checks
from webhook.diagnose.workload import (
    deployment_checks,
    policy_of,
    read_secret_cert,
    secret_name,
    selector_text,
    suffixed,
)
from webhook.policy import Policy

Json = Mapping[str, Any]
Target = tuple[str, str, int]  # a Service's namespace, name and port


def configuration_checks(
    reader: Reader, configuration: Json, *, limits: Limits
) -> tuple[list[Check], Policy | None]:
    """The checks of `configuration`, and the policy of the Deployment it calls (None when it
    calls none: a URL)."""
    entries = configuration.get("webhooks") or []
    name = f"MutatingWebhookConfiguration {configuration['metadata']['name']}"
    if not entries:
        return [failed(name, "has no webhooks", hint="helm upgrade the release")], None
    count = f"{len(entries)} webhook{'' if len(entries) == 1 else 's'}"
    checks = [passed(name, f"{count}: {', '.join(e['name'] for e in entries)}")]
    services: dict[Target, list[Json]] = {}
    urls: dict[str, list[Json]] = {}
    for entry in entries:
        checks.append(_entry_check(entry))
        config = entry.get("clientConfig") or {}
        if isinstance(config.get("service"), Mapping):
            service = config["service"]
            key = (service.get("namespace", ""), service.get("name", ""), service.get("port", 443))
            services.setdefault(key, []).append(entry)
        elif config.get("url"):
            urls.setdefault(str(config["url"]), []).append(entry)
    policy = None
    for target, called in services.items():
        found, deployment = _service_checks(reader, target, entries=called, limits=limits)
        checks += found
        policy = policy or (policy_of(deployment) if deployment is not None else None)
    for url, called in urls.items():
        checks += url_checks(url, entries=called, limits=limits)
    return checks, policy


def _entry_check(entry: Json) -> Check:
    name = f"webhook {entry['name']}"
    config = entry.get("clientConfig") or {}
    if isinstance(config.get("service"), Mapping):
        service = config["service"]
        target = (
            f"Service {service.get('namespace')}/{service.get('name')} port"
            f" {service.get('port', 443)}, path {service.get('path') or '/'}"
        )
    elif config.get("url"):
        target = f"URL {config['url']}"
    else:
        return failed(name, "its clientConfig names neither a Service nor a URL")
    cas = cas_of(ca_bundle(entry))
    if not cas:
        return failed(
            name,
            f"calls {target} with no usable caBundle: the kube-apiserver cannot trust it",
            hint="tls.mode=bootstrap: the post-install Job publishes it; certManager: the"
            " cainjector; manual: tls.caBundle",
        )
    failure = entry.get("failurePolicy", "Fail")
    details: tuple[str, ...] = ()
    if failure == "Ignore":
        details = (
            "failurePolicy Ignore: while the webhook cannot be called, pods are created"
            " without their /dev/shm, silently",
        )
    many = "" if len(cas) == 1 else "s"
    timeout = entry.get("timeoutSeconds", 10)
    return passed(
        name,
        f"calls {target}; failurePolicy {failure}, timeoutSeconds {timeout}; caBundle of"
        f" {len(cas)} CA{many}",
        details=details,
    )


def _service_checks(
    reader: Reader, target: Target, *, entries: Sequence[Json], limits: Limits
) -> tuple[list[Check], Json | None]:
    namespace, service, port = target
    who = f"Service {namespace}/{service}"
    try:
        found = reader.service(namespace, service)
    except Refused as refused:
        hint = rights_hint(refused, verb="get", resource="services", namespace=namespace) or (
            "the webhook configuration names a Service that does not exist: is the release"
            f" installed in {namespace}? helm -n {namespace} list"
        )
        return [failed(who, refused.problem, hint=hint)], None
    spec = found.get("spec") or {}
    shape, dial, port_name = _service_shape(who, spec, port=port)
    checks = [shape]
    selector = spec.get("selector") or {}
    if dial is None and port_name is not None:
        checks.append(_endpoints_check(reader, who, target, port_name, selector=selector))
    deployment = None
    if selector:
        found_checks, deployment = deployment_checks(
            reader, namespace=namespace, selector=selector, who=who
        )
        checks += found_checks
    else:
        checks.append(
            skipped(
                f"Deployment of {who}",
                "the Service selects no pods: Deployment and PodDisruptionBudget checks skipped",
            )
        )
    host = f"{service}.{namespace}.svc"
    bundles = [(str(e["name"]), ca_bundle(e)) for e in entries if ca_bundle(e)]
    name, how = secret_name(deployment, service=service)
    cert, problem = read_secret_cert(
        reader, namespace=namespace, name=name, found=how, service=service
    )
    if problem is not None:
        checks.append(problem)
    elif cert is not None:
        checks += certificate_checks(
            cert,
            holder=f"certificate of Secret {namespace}/{name}",
            bundles=bundles,
            host=host,
            now=limits.now,
            threshold_days=limits.threshold_days,
            **_certificate_hints(namespace, service),
        )
    if limits.handshake and port_name is not None:
        checks += handshake_checks(
            reader, target, dial=dial, bundles=bundles, secret_cert=cert, limits=limits
        )
    return checks, deployment


def _certificate_hints(namespace: str, service: str) -> dict[str, str]:
    """What to run when the chart's certificate or caBundle will not do."""
    job = suffixed(service, "certs")  # the chart's renewal CronJob
    rerun = f"kubectl -n {namespace} create job --from=cronjob/{job} {job}-now"
    return {
        "republish": f"publish the CA that signed it: tls.mode=bootstrap: {rerun}; certManager:"
        " cert-manager's cainjector; manual: tls.caBundle",
        "renew": f"tls.mode=bootstrap: {rerun} renews it (docs/tls.md#renewal-and-rotation);"
        " certManager: cmctl renew; manual: replace tls.existingSecret",
    }


def _service_shape(
    who: str, spec: Json, *, port: int
) -> tuple[Check, tuple[str, int] | None, str | None]:
    """The Service's check, the (host, port) the kube-apiserver dials for an ExternalName
    Service, and the name of the port the webhook calls (None when a call cannot be routed)."""
    kind = spec.get("type", "ClusterIP")
    if kind == "ExternalName":
        host = str(spec.get("externalName"))
        return (
            passed(who, f"ExternalName: the kube-apiserver dials {host}:{port}"),
            (host, port),
            "",
        )
    if spec.get("clusterIP") == "None":
        headless = failed(
            who,
            "is headless (clusterIP None): the kube-apiserver cannot route a webhook call to it",
            hint="give it a cluster IP: the chart's Service is a ClusterIP one",
        )
        return headless, None, None
    ports = {p.get("port"): p for p in spec.get("ports") or []}
    if port not in ports:
        listed = ", ".join(str(number) for number in ports) or "none"
        missing = failed(
            who,
            f"has no port {port} (its ports: {listed})",
            hint="the webhook configuration and the Service disagree: helm upgrade the release",
        )
        return missing, None, None
    target = ports[port].get("targetPort", port)
    routed = passed(who, f"{kind} {spec.get('clusterIP')}, port {port} → targetPort {target}")
    return routed, None, str(ports[port].get("name") or "")


def _endpoints_check(
    reader: Reader, who: str, target: Target, port_name: str, *, selector: Mapping[str, str]
) -> Check:
    namespace, service, _ = target
    name = f"endpoints of {who}"
    try:
        slices = reader.endpoint_slices(namespace, service)
    except Refused as refused:
        resource = "endpointslices.discovery.k8s.io"
        hint = rights_hint(refused, verb="list", resource=resource, namespace=namespace)
        return failed(name, refused.problem, hint=hint)
    ready: list[str] = []
    waiting = 0
    for piece in slices:
        numbers = [
            p.get("port") for p in piece.get("ports") or [] if p.get("name", "") == port_name
        ]
        for endpoint in piece.get("endpoints") or []:
            # An unset condition means ready (discovery.k8s.io/v1).
            if (endpoint.get("conditions") or {}).get("ready") is False:
                waiting += 1
                continue
            pod = (endpoint.get("targetRef") or {}).get("name")
            for address in endpoint.get("addresses") or []:
                ready += [f"{address}:{n}" + (f" (pod {pod})" if pod else "") for n in numbers]
    if not ready:
        look = f"kubectl -n {namespace} get endpointslices -l kubernetes.io/service-name={service}"
        if selector:
            look = f"kubectl -n {namespace} describe pods -l {selector_text(selector)}"
        return failed(
            name,
            f"no ready endpoint ({waiting} not ready): nothing answers the webhook's calls",
            hint=f"no webhook pod is ready: {look}",
        )
    unready = f", {waiting} not ready" if waiting else ""
    return passed(name, f"{len(ready)} ready{unready}: {listing(ready)}")
