"""The HTTP boundary of SPEC §3 and §5: probes, the /mutate guards (every malformed request is a
4xx with a one-line plain message, never a 500), the per-admission log line and metrics, and
golden AdmissionReview exchanges (see golden/README.md)."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from tests import builders
from tests.pods import apply_patch, assert_valid_pod
from webhook.app import IN_FLIGHT_BODIES, State, create_app
from webhook.policy import NamespacePolicy
from webhook.quantity import parse
from webhook.settings import Settings, load_settings
from webhook.status import STATUS_ANNOTATION

with warnings.catch_warnings():
    # Starlette 1.10 wants `httpx2` for its TestClient; the dev dependencies still pin `httpx`,
    # which it supports with a deprecation warning (an error under filterwarnings=error).
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

GOLDEN = Path(__file__).parent / "golden"
JSON_TYPE = {"content-type": "application/json"}
MIB = 1024 * 1024


@pytest.fixture
def state() -> State:
    return State(certificate_loaded=True)


def client(state: State, settings: Settings | None = None) -> TestClient:
    return TestClient(create_app(settings or load_settings(), state=state))


@pytest.fixture
def http(state: State) -> TestClient:
    return client(state)


def error_count(state: State, reason: str) -> float | None:
    return state.metrics.registry.get_sample_value(
        "shm_webhook_admissions_total", {"outcome": "error", "reason": reason}
    )


def test_healthz_says_alive(http: TestClient) -> None:
    response = http.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok")


@pytest.mark.parametrize(
    ("certificate_loaded", "shutting_down", "status"),
    [
        pytest.param(True, False, 200, id="ready once the certificate is loaded"),
        pytest.param(False, False, 503, id="unready before the certificate is loaded"),
        pytest.param(True, True, 503, id="unready as soon as shutdown starts"),
    ],
)
def test_readyz_follows_the_state(
    *, certificate_loaded: bool, shutting_down: bool, status: int
) -> None:
    state = State(certificate_loaded=certificate_loaded, shutting_down=shutting_down)
    assert client(state).get("/readyz").status_code == status


def _chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // MIB):
        yield b" " * MIB


MALFORMED = [
    pytest.param(b"not json", JSON_TYPE, 400, "not-json", id="a body that is not JSON is a 400"),
    pytest.param(b"[1, 2]", JSON_TYPE, 400, "not-an-object", id="a JSON array is a 400"),
    pytest.param(b"", JSON_TYPE, 400, "not-json", id="an empty body is a 400"),
    pytest.param(
        orjson.dumps({**builders.review(), "apiVersion": "v1"}),
        JSON_TYPE,
        400,
        "api-version",
        id="a review of an unknown apiVersion is a 400",
    ),
    pytest.param(
        orjson.dumps({**builders.review(), "kind": "Pod"}),
        JSON_TYPE,
        400,
        "kind",
        id="a body that is not an AdmissionReview is a 400",
    ),
    pytest.param(
        orjson.dumps({**builders.review(), "request": "x"}),
        JSON_TYPE,
        400,
        "missing-request",
        id="a review whose request is a string is a 400",
    ),
    pytest.param(
        builders.review_bytes(uid=None), JSON_TYPE, 400, "missing-uid", id="a missing uid is a 400"
    ),
    pytest.param(
        builders.review_bytes(),
        {"content-type": "text/plain"},
        400,
        "content-type",
        id="a body that is not declared JSON is a 400",
    ),
    pytest.param(
        builders.review_bytes(),
        {"content-type": ""},
        400,
        "content-type",
        id="an empty content type is a 400",
    ),
    pytest.param(
        b"{" + b" " * (9 * MIB) + b"}",
        JSON_TYPE,
        413,
        "body-too-large",
        id="a 9 MiB body is a 413",
    ),
    pytest.param(
        _chunks(9 * MIB),
        JSON_TYPE,
        413,
        "body-too-large",
        id="a chunked body that grows past the limit is a 413",
    ),
    pytest.param(
        builders.review_bytes({"metadata": [], "spec": {}}),
        JSON_TYPE,
        400,
        "invalid-object",
        id="pod metadata that is an array is a 400",
    ),
    pytest.param(
        builders.review_bytes({"metadata": {"annotations": {"shm-size": 8}}}),
        JSON_TYPE,
        400,
        "invalid-object",
        id="an annotation that is a number is a 400",
    ),
    pytest.param(
        orjson.dumps(
            builders.review(
                {"metadata": {"annotations": {"shm-size": "1Gi"}}, "spec": {"containers": {}}}
            )
        ),
        JSON_TYPE,
        400,
        "invalid-object",
        id="containers that are an object are a 400",
    ),
    pytest.param(
        builders.review_bytes(1),
        JSON_TYPE,
        400,
        "invalid-object",
        id="a pod that is a number is a 400",
    ),
]


@pytest.mark.parametrize(("content", "headers", "status", "reason"), MALFORMED)
def test_a_malformed_request_gets_a_plain_one_line_4xx(
    *,
    state: State,
    http: TestClient,
    content: Any,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    response = http.post("/mutate", content=content, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.endswith("\n")
    assert response.text.count("\n") == 1
    assert error_count(state, reason) == 1
    assert http.get("/healthz").status_code == 200


def test_a_content_length_over_the_limit_is_refused_before_the_body_is_read(state: State) -> None:
    http = client(state, load_settings({"max_body_bytes": 100}))
    response = http.post("/mutate", content=b"x" * 101, headers=JSON_TYPE)
    assert response.status_code == 413
    assert "100 bytes" in response.text


def test_the_body_limit_is_a_setting(state: State) -> None:
    body = builders.review_bytes()
    small = client(state, load_settings({"max_body_bytes": len(body) - 1}))
    assert small.post("/mutate", content=body, headers=JSON_TYPE).status_code == 413
    exact = client(state, load_settings({"max_body_bytes": len(body)}))
    assert exact.post("/mutate", content=body, headers=JSON_TYPE).status_code == 200


def test_bodies_in_flight_past_twice_the_limit_get_a_503_until_they_end(state: State) -> None:
    """Three uploads of 90 % of the body limit still arriving: the third is refused; once the
    others have ended, a new one is served."""
    body = builders.review_bytes()
    app = create_app(load_settings({"max_body_bytes": len(body)}), state=state)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mutate",
        "headers": [(b"content-type", b"application/json")],
    }
    part = len(body) * 9 // 10

    async def upload(finish: asyncio.Event) -> list[dict[str, Any]]:
        messages = [
            {"type": "http.request", "body": body[:part], "more_body": True},
            {"type": "http.request", "body": body[part:], "more_body": False},
        ]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if len(messages) == 1:
                await finish.wait()
            return messages.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent

    def status(sent: list[dict[str, Any]]) -> tuple[int, bytes]:
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    async def scenario() -> None:
        finish = asyncio.Event()
        held = [asyncio.create_task(upload(finish)) for _ in range(IN_FLIGHT_BODIES)]
        await asyncio.sleep(0)
        refused = await asyncio.wait_for(upload(finish), timeout=5)  # not held: refused
        assert status(refused) == (
            503,
            b"request bodies in flight exceed %d bytes; retry\n" % (IN_FLIGHT_BODIES * len(body)),
        )
        finish.set()
        assert [status(sent)[0] for sent in await asyncio.gather(*held)] == [200] * IN_FLIGHT_BODIES
        assert status(await upload(finish))[0] == 200

    asyncio.run(scenario())
    assert error_count(state, "bodies-in-flight") == 1


def test_a_json_content_type_with_parameters_is_accepted(http: TestClient) -> None:
    headers = {"content-type": "Application/JSON; charset=utf-8"}
    response = http.post("/mutate", content=builders.review_bytes(), headers=headers)
    assert response.status_code == 200


def test_the_timeout_query_of_the_kube_apiserver_is_ignored(http: TestClient) -> None:
    response = http.post("/mutate?timeout=3s", content=builders.review_bytes(), headers=JSON_TYPE)
    assert response.status_code == 200
    assert response.json()["response"]["allowed"] is True


def test_mutate_only_answers_post(http: TestClient) -> None:
    assert http.get("/mutate").status_code == 405


def test_a_bug_in_the_planner_is_a_logged_500(
    *,
    state: State,
    http: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("webhook.review.plan", broken)
    response = http.post("/mutate", content=builders.review_bytes(), headers=JSON_TYPE)
    assert response.status_code == 500
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None
    assert "a bug" in str(record.exc_info[1])
    assert error_count(state, "internal-error") == 1


def test_settings_shape_the_policy(state: State) -> None:
    http = client(state, load_settings({"default_size": "256Mi", "volume_name": "shm"}))
    review = builders.review({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})
    response = http.post("/mutate", content=orjson.dumps(review), headers=JSON_TYPE).json()
    ops = orjson.loads(base64.b64decode(response["response"]["patch"]))
    pod = apply_patch(review["request"]["object"], ops)
    assert pod["spec"]["volumes"] == [
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}
    ]


def test_each_admission_is_counted_timed_and_its_bytes_added(
    state: State, http: TestClient
) -> None:
    for _ in range(2):
        http.post("/mutate", content=builders.review_bytes(), headers=JSON_TYPE)
    registry = state.metrics.registry
    labels = {"outcome": "mutated", "reason": "injected"}
    assert registry.get_sample_value("shm_webhook_admissions_total", labels) == 2
    assert registry.get_sample_value("shm_webhook_admission_duration_seconds_count") == 2
    assert registry.get_sample_value("shm_webhook_injected_bytes_total") == 2 * 2**30


def test_each_admission_logs_one_line_with_who_what_and_how_long(
    http: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    review = builders.review(name="")
    review["request"]["object"]["metadata"] = {
        "generateName": "trainer-",
        "annotations": {"shm-size": "1Gi"},
        "ownerReferences": [
            {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "1"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "trainer-7d9f", "uid": "2",
             "controller": True},
        ],
    }  # fmt: skip
    with caplog.at_level(logging.INFO, logger="webhook.admission"):
        http.post("/mutate", content=orjson.dumps(review), headers=JSON_TYPE)
    [record] = [r for r in caplog.records if r.name == "webhook.admission"]
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["uid"] == review["request"]["uid"]
    assert (fields["namespace"], fields["name"], fields["operation"]) == (
        "ml",
        "trainer-",
        "CREATE",
    )
    assert fields["owner"] == "ReplicaSet/trainer-7d9f"
    assert fields["dry_run"] is False
    assert (fields["outcome"], fields["reason"], fields["size"]) == ("mutated", "injected", 2**30)
    assert fields["warnings"] == ()
    assert "denial" not in fields
    assert "error" not in fields
    assert fields["duration_ms"] >= 0


def test_a_denial_logs_its_message_and_a_dry_run_says_so(
    http: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    review = builders.review(dryRun=True)
    review["request"]["object"]["metadata"]["annotations"]["shm-size"] = "8GB"
    with caplog.at_level(logging.INFO, logger="webhook.admission"):
        answer = http.post("/mutate", content=orjson.dumps(review), headers=JSON_TYPE).json()
    [record] = [r for r in caplog.records if r.name == "webhook.admission"]
    fields = record.fields  # type: ignore[attr-defined]
    assert (fields["outcome"], fields["reason"], fields["dry_run"]) == (
        "denied",
        "invalid-size",
        True,
    )
    assert fields["denial"] == answer["response"]["status"]["message"]
    assert '"8GB" is not a Kubernetes quantity' in fields["denial"]
    assert fields["owner"] is None


def test_the_warnings_the_api_server_gets_are_the_ones_logged(
    http: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    pod = {
        "metadata": {"name": "p", "annotations": {"shm-size": "1Gi"}},
        "spec": {
            "containers": [
                {"name": f"c{i}", "image": "busybox",
                 "volumeMounts": [{"name": "mine", "mountPath": "/dev/shm"}]}
                for i in range(40)
            ] + [{"name": "free", "image": "busybox"}],
            "volumes": [{"name": "mine", "emptyDir": {}}],
        },
    }  # fmt: skip
    with caplog.at_level(logging.INFO, logger="webhook.admission"):
        answer = http.post("/mutate", content=builders.review_bytes(pod), headers=JSON_TYPE)
    [record] = [r for r in caplog.records if r.name == "webhook.admission"]
    logged = record.fields["warnings"]  # type: ignore[attr-defined]
    assert list(logged) == answer.json()["response"]["warnings"]
    assert len(logged) == 1
    assert len(logged[0]) == 120
    assert logged[0].endswith("…")


def _decoded(answer: dict[str, Any], review: dict[str, Any]) -> dict[str, Any]:
    """The answer as the golden files hold it (see golden/README.md)."""
    decoded = copy.deepcopy(answer)
    patch = decoded["response"].pop("patch", None)
    if patch is None:
        return decoded
    patched = apply_patch(review["request"]["object"], orjson.loads(base64.b64decode(patch)))
    assert_valid_pod(patched)
    annotations = patched["metadata"]["annotations"]
    status = json.loads(annotations[STATUS_ANNOTATION])
    status["mounted"].sort()
    status["charged"].sort()
    annotations[STATUS_ANNOTATION] = status
    decoded["patchedObject"] = patched
    return decoded


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            path.name.removesuffix(".review.json"), id=path.name.removesuffix(".review.json")
        )
        for path in sorted(GOLDEN.glob("*.review.json"))
    ],
)
def test_golden_exchange(http: TestClient, case: str) -> None:
    review = json.loads((GOLDEN / f"{case}.review.json").read_text())
    expected = json.loads((GOLDEN / f"{case}.response.json").read_text())
    response = http.post("/mutate", content=json.dumps(review).encode(), headers=JSON_TYPE)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert _decoded(response.json(), review) == expected


class _Namespaces:
    """A namespace cache as `State.namespaces` sees it."""

    def __init__(self, policies: dict[str, NamespacePolicy]) -> None:
        self.ready = False
        self.policies = policies

    def policy_for(self, namespace: object) -> NamespacePolicy | None:
        return self.policies.get(namespace) if isinstance(namespace, str) else None


def test_not_ready_until_the_namespaces_are_listed_then_their_defaults_apply() -> None:
    namespaces = _Namespaces({"ml": NamespacePolicy("ml", default_size=parse("3Gi"))})
    state = State(certificate_loaded=True, namespaces=namespaces)
    http = client(state)
    unready = http.get("/readyz")
    assert (unready.status_code, unready.text) == (503, "namespaces not listed yet")
    namespaces.ready = True
    assert http.get("/readyz").status_code == 200
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    answer = http.post("/mutate", content=builders.review_bytes(pod), headers=JSON_TYPE).json()
    ops = orjson.loads(base64.b64decode(answer["response"]["patch"]))
    assert ops[0]["value"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "3Gi"}}
    ]
    elsewhere = builders.review(pod, namespace="other")
    answer = http.post("/mutate", content=orjson.dumps(elsewhere), headers=JSON_TYPE).json()
    assert "patch" not in answer["response"]
