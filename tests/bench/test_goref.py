"""The Go reference (bench/goref) answers what the webhook answers, so the bench's ratios to it
compare the same work.

Its answers come from the built binary over TLS; the webhook's from `review.decide`, the code
`shm-webhook serve` answers with. Both patches are applied (jsonpatch) to the request's pod and
the results compared, then the op lists (order included: the bench requires the same bytes
from every server, and checks it before measuring), then the whole answers, byte for byte.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import os
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import orjson
import pytest

from bench import golang
from bench.payloads import NAMES, build_payloads
from bench.servers import GO_ENV, Certificates, make_certificates
from tests.processes import free_port, wait_until_ready
from webhook.policy import Policy
from webhook.review import decide, encode, parse_review

pytestmark = pytest.mark.integration

Pod = dict[str, Any]


class GoReference:
    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.port = port
        self.context = context

    def post(self, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context, timeout=10
        )
        try:
            connection.request("POST", "/mutate", body=body, headers={"Content-Type": content_type})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def reference(
    goref: Path, certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GoReference]:
    port = free_port()
    command = [str(goref), "-port", str(port)]
    command += ["-cert", str(certificates.cert), "-key", str(certificates.key)]
    log = tmp_path_factory.mktemp("goref") / "stderr"
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, env={**os.environ, **GO_ENV}, stderr=stderr)
    server = GoReference(port, certificates.client_context())
    try:
        _wait_ready(server, process, log)
        yield server
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0, "the reference exits 0 on SIGTERM"


def _wait_ready(server: GoReference, process: subprocess.Popen[bytes], log: Path) -> None:
    def ready() -> bool:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", server.port, context=server.context, timeout=2
        )
        try:
            connection.request("GET", "/readyz")
            return connection.getresponse().read() == b"ok"
        finally:
            connection.close()

    wait_until_ready(
        ready,
        process=process,
        output=log.read_text,
        what="the Go reference",
        timeout=10,
        interval=0.01,
        retry=(OSError,),  # not listening yet
    )


def _small_with(change: Callable[[Pod], None]) -> bytes:
    """The small payload with its pod changed: paths of the mutation the bench does not take."""
    review = orjson.loads(build_payloads()["small"])
    change(review["request"]["object"])
    return orjson.dumps(review)


def _init_container_and_bare_container(pod: Pod) -> None:
    spec = pod["spec"]
    spec["initContainers"] = [{"name": "fetch", "image": "busybox"}]
    spec["containers"].append({"name": "sidecar", "image": "busybox"})


def _default_keeps_its_own(pod: Pod) -> None:
    spec = pod["spec"]
    spec["containers"][0]["volumeMounts"].append({"name": "mine", "mountPath": "/dev/shm/"})
    spec["containers"].append(
        {"name": "sidecar", "image": "busybox", "resources": {"limits": {"memory": "1G"}}}
    )


def _only_an_init_container_mounts(pod: Pod) -> None:
    spec = pod["spec"]
    container = spec["containers"][0]
    container["volumeMounts"].append({"name": "mine", "mountPath": "/dev/shm"})
    container["resources"]["limits"] = {"memory": "256Mi"}
    spec["initContainers"] = [
        {"name": "fetch", "image": "busybox", "resources": {"limits": {"memory": "128Mi"}}}
    ]


def _pod_level_resources(pod: Pod) -> None:
    pod["spec"]["resources"] = {"limits": {"memory": "4Gi"}, "requests": {"memory": "3G"}}


def _decimal_size_and_taken_name(pod: Pod) -> None:
    pod["metadata"]["annotations"]["shm-size"] = "2G"
    pod["spec"]["volumes"].append({"name": "dshm", "emptyDir": {}})


def _no_volumes_no_mounts(pod: Pod) -> None:
    del pod["spec"]["volumes"]
    del pod["spec"]["containers"][0]["volumeMounts"]
    del pod["spec"]["containers"][0]["resources"]


def _not_asked(pod: Pod) -> None:
    del pod["metadata"]["annotations"]["shm-size"]


CASES = [
    *(
        pytest.param(lambda name=name: build_payloads()[name], id=f"the {name} payload")
        for name in NAMES
    ),
    pytest.param(
        lambda: _small_with(_init_container_and_bare_container),
        id="an init container and a container without resources",
    ),
    pytest.param(
        lambda: _small_with(_default_keeps_its_own),
        id="the default container keeps its own /dev/shm: the next one is charged, with a warning",
    ),
    pytest.param(
        lambda: _small_with(_only_an_init_container_mounts),
        id="only an init container gets the mount: nothing charged, the pod limit warns",
    ),
    pytest.param(
        lambda: _small_with(_pod_level_resources), id="pod-level resources grow with the container"
    ),
    pytest.param(
        lambda: _small_with(_decimal_size_and_taken_name),
        id="a decimal size, and the volume name dshm taken",
    ),
    pytest.param(
        lambda: _small_with(_no_volumes_no_mounts), id="no volumes, mounts or resources yet"
    ),
    pytest.param(lambda: _small_with(_not_asked), id="a pod without the annotation is left alone"),
]


@pytest.mark.parametrize("make_body", CASES)
def test_the_go_reference_answers_the_webhooks_patch(
    reference: GoReference, make_body: Callable[[], bytes]
) -> None:
    body = make_body()
    review = parse_review(body)
    expected = encode(review, decide(review, Policy()))

    status, answer = reference.post(body)

    assert status == 200, answer
    theirs, ours = orjson.loads(answer)["response"], orjson.loads(expected)["response"]
    pod = orjson.loads(body)["request"]["object"]
    assert _patched(pod, theirs) == _patched(pod, ours)
    assert _ops(theirs) == _ops(ours)
    assert {k: v for k, v in theirs.items() if k != "patch"} == {
        k: v for k, v in ours.items() if k != "patch"
    }
    assert answer == expected, "the bench compares the servers' answers byte for byte"


def _ops(response: dict[str, Any]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = json.loads(base64.b64decode(response.get("patch", "W10=")))
    return ops


def _patched(pod: Pod, response: dict[str, Any]) -> Pod:
    result: Pod = jsonpatch.apply_patch(copy.deepcopy(pod), _ops(response))
    return result


def test_every_bench_payload_is_mutated_by_the_reference(reference: GoReference) -> None:
    for name, body in build_payloads().items():
        status, answer = reference.post(body)
        assert status == 200
        assert orjson.loads(answer)["response"]["patchType"] == "JSONPatch", name


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        pytest.param(b"{", "application/json", 400, id="a body that is not JSON is a 400"),
        pytest.param(b"{}", "text/plain", 400, id="a body that is not application/json is a 400"),
        pytest.param(
            b'{"apiVersion":"v1","kind":"AdmissionReview","request":{"uid":"u"}}',
            "application/json",
            400,
            id="an AdmissionReview of another apiVersion is a 400",
        ),
    ],
)
def test_the_go_reference_guards_its_envelope(
    reference: GoReference, body: bytes, content_type: str, status: int
) -> None:
    assert reference.post(body, content_type)[0] == status


def test_the_go_reference_builds_once_and_is_gofmt_clean(go: Path, goref: Path) -> None:
    assert golang.build(go) == goref, "a second build of the same sources is the cached binary"
    assert goref.parent == golang.cache_dir()
    gofmt = go.parent / "gofmt" if (go.parent / "gofmt").is_file() else shutil.which("gofmt")
    assert gofmt is not None
    unformatted = subprocess.run(
        [str(gofmt), "-l", "."], cwd=golang.SOURCE, capture_output=True, text=True, check=True
    ).stdout
    assert unformatted == ""
    vet = subprocess.run(
        [str(go), "vet", "."],
        cwd=golang.SOURCE,
        env=golang.go_env(go),
        capture_output=True,
        text=True,
        check=False,
    )
    assert vet.returncode == 0, vet.stderr
