"""`certs.endpoints.serving_answers`: which endpoints of the webhook Service are asked, on which
port, and what an answer holds, against the fake apiserver and TLS servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client

from certs.endpoints import serving_answers
from certs.generate import Bundle, generate_bundle
from certs.trust import Answer
from tests.certs.fake_apiserver import (
    Endpoint,
    FakeApiServer,
    Object,
    endpoint_slice,
    endpoint_slices_path,
    serve,
    service,
    service_path,
)
from tests.certs.pods import Pod, running_pods
from tests.processes import free_port

NAMESPACE, SERVICE = "shm-system", "shm-webhook"


@pytest.fixture
def api(fake: FakeApiServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[client.ApiClient]:
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")
    with serve(fake) as url, client.ApiClient(client.Configuration(host=url)) as api_client:
        yield api_client


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return generate_bundle(service=SERVICE, namespace=NAMESPACE, now=datetime.now(UTC))


@pytest.fixture
def pod(bundle: Bundle, tmp_path: Path) -> Iterator[Pod]:
    files = {"tls.crt": bundle.cert_pem, "tls.key": bundle.key_pem}
    with running_pods(tmp_path, files, count=1) as (only,):
        yield only


def _slice(name: str, port: int, *endpoints: Endpoint, address_type: str = "IPv4") -> Object:
    return endpoint_slice(
        name,
        namespace=NAMESPACE,
        service_name=SERVICE,
        ports={"https": port, "metrics": free_port()},
        endpoints=list(endpoints),
        address_type=address_type,
    )


def _answers(api: client.ApiClient, ports: set[int] | None = None) -> list[Answer]:
    wanted = {443} if ports is None else ports
    return serving_answers(api, namespace=NAMESPACE, service=SERVICE, ports=wanted, timeout=2)


def test_every_endpoint_that_may_get_traffic_is_asked_on_the_webhook_port_only(
    fake: FakeApiServer, api: client.ApiClient, pod: Pod
) -> None:
    fake.store(service(SERVICE, namespace=NAMESPACE, ports={"https": 443, "metrics": 9090}))
    dead = free_port()
    fake.store(_slice("a", pod.port, Endpoint("127.0.0.1", pod="web-0")))
    fake.store(
        _slice(
            "b",
            dead,
            Endpoint("127.0.0.1", pod="unset-conditions", ready=None),
            Endpoint("127.0.0.2", pod="not-ready", ready=False),
            Endpoint("127.0.0.3", pod="not-serving", ready=False, serving=False),
            Endpoint("127.0.0.4", pod="terminating", ready=False, serving=True, terminating=True),
        )
    )
    fake.store(_slice("fqdn", dead, Endpoint("webhook.example.com"), address_type="FQDN"))
    other = _slice("other-service", dead, Endpoint("127.0.0.9"))
    other["metadata"]["labels"] = {"kubernetes.io/service-name": "someone-else"}
    fake.store(other)

    answers = {answer.endpoint: answer for answer in _answers(api)}

    assert set(answers) == {
        f"127.0.0.1:{pod.port} (pod web-0)",
        f"127.0.0.1:{dead} (pod unset-conditions)",
        f"127.0.0.4:{dead} (pod terminating)",
    }
    served = answers[f"127.0.0.1:{pod.port} (pod web-0)"]
    assert served.cert == pod.served()
    unreachable = answers[f"127.0.0.4:{dead} (pod terminating)"]
    assert unreachable.cert is None
    assert unreachable.problem
    list_requests = [r for r in fake.requests if r.path == endpoint_slices_path(NAMESPACE)]
    assert [r.query for r in list_requests] == [
        {"labelSelector": f"kubernetes.io/service-name={SERVICE}"}
    ]


@pytest.mark.parametrize(
    ("setup", "ports", "words"),
    [
        pytest.param(
            lambda fake: fake.store(service(SERVICE, namespace=NAMESPACE, ports={"web": 80})),
            {443},
            [f"Service {NAMESPACE}/{SERVICE}", "has no port 443"],
            id="a Service without the port the webhooks call",
        ),
        pytest.param(
            lambda fake: fake.store(
                service(SERVICE, namespace=NAMESPACE, ports={"https": 443})
                | {"spec": {"type": "ExternalName", "externalName": "127.0.0.1"}}
            ),
            {443},
            ["ExternalName"],
            id="an ExternalName Service, whose backends no EndpointSlice lists",
        ),
        pytest.param(
            lambda _: None,
            {443},
            ["404", f'services "{SERVICE}" not found'],
            id="no Service at all",
        ),
        pytest.param(
            lambda fake: fake.fail(
                "GET",
                service_path(NAMESPACE, SERVICE),
                code=403,
                reason="Forbidden",
                message="services is forbidden",
            ),
            {443},
            ["403", "services is forbidden"],
            id="no right to read the Service",
        ),
        pytest.param(
            lambda fake: fake.store(service(SERVICE, namespace=NAMESPACE, ports={"https": 443})),
            set(),
            ["no webhook of the configuration calls it"],
            id="no webhook calls the Service",
        ),
    ],
)
def test_what_cannot_be_found_out_is_one_answer_without_a_certificate_saying_why(
    fake: FakeApiServer,
    api: client.ApiClient,
    setup: Callable[[FakeApiServer], object],
    ports: set[int],
    words: list[str],
) -> None:
    setup(fake)

    [answer] = _answers(api, ports)

    assert answer.cert is None
    for word in words:
        assert word in f"{answer.endpoint}: {answer.problem}"


def test_a_service_without_endpoints_has_no_answer(
    fake: FakeApiServer, api: client.ApiClient
) -> None:
    fake.store(service(SERVICE, namespace=NAMESPACE, ports={"https": 443}))
    assert _answers(api) == []
