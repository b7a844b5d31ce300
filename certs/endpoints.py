"""What the webhook's pods serve right now: a TLS handshake with every endpoint of its Service.

Owns: `serving_answers` (read the Service's port the webhooks call, list the Service's
EndpointSlices, and fetch the certificate each endpoint the kube-apiserver may send traffic to
serves, as `certs.trust.Answer`s). An endpoint that cannot be reached, or endpoints that cannot
be listed, are answers without a certificate that say why: `certs.trust` then cannot tell and
keeps an old CA. The kubernetes API client is a parameter; this module never builds one.

Must not import anything in `webhook` but `webhook.checks`. Fetching one certificate is
`certs.describe`; what the answers mean for the caBundle is `certs.trust`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs.cluster import api_problem, unreachable
from certs.describe import fetch_served
from certs.trust import Answer
from webhook.checks import one_line

# The label the EndpointSlice controller puts on every slice of a Service.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Per handshake: a pod that answers at all does so in milliseconds.
HANDSHAKE_TIMEOUT = 5.0
_PARALLEL_HANDSHAKES = 8


def serving_answers(
    api: client.ApiClient,
    *,
    namespace: str,
    service: str,
    ports: Collection[int],
    timeout: float = HANDSHAKE_TIMEOUT,
) -> list[Answer]:
    """What each endpoint of Service `namespace/service` serves on the target of each of its
    `ports`, to a client asking for `<service>.<namespace>.svc` as the kube-apiserver does.

    Endpoints whose `serving` condition is false are left out: no traffic reaches them.
    """
    where = f"Service {namespace}/{service}"
    if not ports:
        return [Answer(where, None, "no webhook of the configuration calls it")]
    try:
        names = _port_names(client.CoreV1Api(api), namespace=namespace, service=service)
        slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
            namespace, label_selector=f"{SERVICE_NAME_LABEL}={service}"
        )
    except ApiException as error:
        return [Answer(f"the endpoints of {where}", None, api_problem(error))]
    except urllib3.exceptions.HTTPError as error:
        return [Answer(f"the endpoints of {where}", None, unreachable(error))]
    if names is None:
        return [Answer(where, None, "is an ExternalName Service: no EndpointSlice lists its pods")]
    if missing := sorted(set(ports) - set(names)):
        return [Answer(where, None, f"has no port {', '.join(map(str, missing))}")]
    wanted = {names[port] for port in ports}
    targets = sorted(set(_targets(slices.items or [], port_names=wanted)))
    server_name = f"{service}.{namespace}.svc"

    def answer(target: tuple[str, int, str]) -> Answer:
        return _answer(*target, server_name=server_name, timeout=timeout)

    with ThreadPoolExecutor(max_workers=_PARALLEL_HANDSHAKES) as pool:
        return list(pool.map(answer, targets))


def _port_names(core: client.CoreV1Api, *, namespace: str, service: str) -> dict[int, str] | None:
    """Service port -> its name, which its EndpointSlices' ports carry ("" when unnamed); None
    for an ExternalName Service, whose backends no EndpointSlice lists."""
    found: client.V1Service = core.read_namespaced_service(service, namespace)
    if found.spec is None:
        return {}
    if found.spec.type == "ExternalName":
        return None
    return {port.port: port.name or "" for port in found.spec.ports or []}


def _targets(
    slices: list[client.V1EndpointSlice], *, port_names: Collection[str]
) -> Iterator[tuple[str, int, str]]:
    """(address, port, pod name or "") of every endpoint that may get traffic."""
    for endpoint_slice in slices:
        if endpoint_slice.address_type not in ("IPv4", "IPv6"):
            continue  # FQDN slices are not made for pods
        numbers = [
            port.port
            for port in endpoint_slice.ports or []
            if (port.name or "") in port_names and port.port is not None
        ]
        for endpoint in endpoint_slice.endpoints or []:
            if not _may_get_traffic(endpoint.conditions):
                continue
            pod = endpoint.target_ref.name if endpoint.target_ref is not None else ""
            for address in endpoint.addresses:
                for number in numbers:
                    yield address, number, pod or ""


def _may_get_traffic(conditions: client.V1EndpointConditions | None) -> bool:
    # An unset condition means unknown, which consumers read as true (discovery.k8s.io/v1).
    if conditions is None:
        return True
    serving = conditions.serving if conditions.serving is not None else conditions.ready
    return serving is not False


def _answer(address: str, port: int, pod: str, *, server_name: str, timeout: float) -> Answer:
    host = f"[{address}]" if ":" in address else address
    endpoint = f"{host}:{port}" + (f" (pod {pod})" if pod else "")
    try:
        served = fetch_served(
            host=address, port=port, server_name=server_name, ca_file=None, timeout=timeout
        )
    except OSError as error:
        return Answer(endpoint, None, one_line(str(error) or type(error).__name__))
    return Answer(endpoint, served.cert)
