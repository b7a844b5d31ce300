"""`helm test`: a pod that asks for shm where the webhook applies and checks /dev/shm's size."""

from __future__ import annotations

import pytest

from tests.chart.render import (
    FULLNAME,
    NAMESPACE,
    SYSTEM_NAMESPACES,
    Chart,
    Obj,
    namespace_labels,
    of_kind,
    selects,
    webhook,
)

TEST_NAMESPACE = "shm-test"


def the_test_pod(objects: list[Obj]) -> Obj:
    (pod,) = of_kind(objects, "Pod")
    return pod


def test_no_test_pod_without_a_test_namespace(chart: Chart) -> None:
    assert of_kind(chart.render(), "Pod") == []


def test_the_test_pod_is_a_helm_test_hook_in_the_test_namespace(chart: Chart) -> None:
    pod = the_test_pod(chart.render(f"test.namespace={TEST_NAMESPACE}"))
    annotations = pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    assert pod["metadata"]["namespace"] == TEST_NAMESPACE
    assert pod["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize(
    ("values", "key", "size", "kib"),
    [
        pytest.param((), "shm-size", "256Mi", "262144", id="asks for 256Mi and expects 262144 KiB"),
        pytest.param(
            ("annotation=example.com/shm", "test.shmSize=1Gi", "test.expectedKiB=1048576"),
            "example.com/shm",
            "1Gi",
            "1048576",
            id="uses the configured annotation, size and expected KiB",
        ),
    ],
)
def test_the_test_pod_asks_for_shm_and_checks_its_size(
    chart: Chart, values: tuple[str, ...], key: str, size: str, kib: str
) -> None:
    pod = the_test_pod(chart.render(f"test.namespace={TEST_NAMESPACE}", "mountPath=/shm", *values))
    assert pod["metadata"]["annotations"][key] == size
    (check,) = pod["spec"]["containers"]
    variables = {item["name"]: item["value"] for item in check["env"]}
    assert variables == {"EXPECTED_KIB": kib, "MOUNT_PATH": "/shm"}
    assert check["command"][:2] == ["sh", "-c"]
    script = check["command"][2]
    assert 'df -Pk "$MOUNT_PATH"' in script
    assert '"$size" != "$EXPECTED_KIB"' in script


def test_the_test_pod_image(chart: Chart) -> None:
    objects = chart.render(f"test.namespace={TEST_NAMESPACE}", "test.image=registry.example/bb:1")
    assert the_test_pod(objects)["spec"]["containers"][0]["image"] == "registry.example/bb:1"


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param("namespace", id="in namespace scope the webhook serves the test pod"),
        pytest.param("cluster", id="in cluster scope the webhook serves the test pod"),
    ],
)
def test_the_webhook_serves_the_test_pod(chart: Chart, scope: str) -> None:
    objects = chart.render(f"scope={scope}", f"test.namespace={TEST_NAMESPACE}")
    hook = webhook(objects)
    pod = the_test_pod(objects)
    labels = namespace_labels(TEST_NAMESPACE, **{"shm-injection": "enabled"})
    assert selects(hook["namespaceSelector"], labels)
    assert selects(hook["objectSelector"], pod["metadata"]["labels"])


@pytest.mark.parametrize(
    ("namespace", "values"),
    [
        pytest.param(NAMESPACE, (), id="the release namespace is refused"),
        *(pytest.param(n, (), id=f"{n} is refused") for n in SYSTEM_NAMESPACES),
        pytest.param("ci", ("excludeNamespaces[0]=ci",), id="an excluded namespace is refused"),
    ],
)
def test_a_test_namespace_the_webhook_never_serves_fails_the_render(
    chart: Chart, namespace: str, values: tuple[str, ...]
) -> None:
    message = chart.error(f"test.namespace={namespace}", *values)
    assert f'test.namespace "{namespace}"' in message


def test_the_test_pod_is_named_after_the_release(chart: Chart) -> None:
    pod = the_test_pod(chart.render(f"test.namespace={TEST_NAMESPACE}"))
    assert pod["metadata"]["name"] == f"{FULLNAME}-test-shm"
