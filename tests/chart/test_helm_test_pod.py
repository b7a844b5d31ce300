"""`helm test`: a pod in the release namespace that asks for shm, the webhook entry that serves
it there and only it, and what the pod checks (size and a write beyond 64 MiB)."""

from __future__ import annotations

import pytest

from tests.chart.render import (
    FULLNAME,
    MODE_VALUES,
    NAMESPACE,
    RELEASE,
    SCOPE_VALUES,
    Chart,
    Obj,
    helm_test_webhook,
    namespace_labels,
    of_kind,
    pod_templates,
    sends,
    webhook,
    webhook_container,
    webhooks,
)

TEST_LABEL = "shm-webhook/helm-test"
RELEASE_NAMESPACE = namespace_labels(NAMESPACE)


def the_test_pod(objects: list[Obj]) -> Obj:
    (pod,) = of_kind(objects, "Pod")
    return pod


def check_container(pod: Obj) -> Obj:
    (container,) = pod["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def variables(pod: Obj) -> dict[str, str]:
    return {item["name"]: item["value"] for item in check_container(pod)["env"]}


def test_a_default_install_has_a_test_pod_in_the_release_namespace(chart: Chart) -> None:
    """`helm test --logs` reads the logs of test pods in the release namespace only."""
    pod = the_test_pod(chart.render())
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["metadata"]["namespace"] == NAMESPACE
    assert pod["spec"]["restartPolicy"] == "Never"


def test_the_test_pod_is_kept_until_the_next_test(chart: Chart) -> None:
    """Helm 3 deletes a hook-succeeded pod before `helm test --logs` reads its logs."""
    pod = the_test_pod(chart.render())
    assert pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation"


def test_test_enabled_false_renders_neither_the_pod_nor_its_webhook_entry(chart: Chart) -> None:
    objects = chart.render("test.enabled=false")
    assert of_kind(objects, "Pod") == []
    assert [w["name"] for w in webhooks(objects)] == [webhook(objects)["name"]]


@pytest.mark.parametrize(
    ("values", "key", "size", "kib"),
    [
        pytest.param((), "shm-size", "256Mi", "262144", id="asks for 256Mi and expects 262144 KiB"),
        pytest.param(
            ("annotation=example.com/shm", "test.shmSize=1Gi"),
            "example.com/shm",
            "1Gi",
            "1048576",
            id="asks with the configured annotation for 1Gi and expects 1048576 KiB",
        ),
        pytest.param(
            ("test.shmSize=101Mi",), "shm-size", "101Mi", "103424", id="101Mi is 103424 KiB"
        ),
        pytest.param(("test.shmSize=3Gi",), "shm-size", "3Gi", "3145728", id="3Gi is 3145728 KiB"),
    ],
)
def test_the_test_pod_asks_for_shm_and_expects_its_size_in_kib(
    chart: Chart, values: tuple[str, ...], key: str, size: str, kib: str
) -> None:
    pod = the_test_pod(chart.render("mountPath=/shm", *values))
    assert pod["metadata"]["annotations"][key] == size
    assert variables(pod) == {"MOUNT_PATH": "/shm", "EXPECTED_KIB": kib, "WRITE_MIB": "100"}


def test_the_test_pod_mounts_nothing_at_the_mount_path_itself(chart: Chart) -> None:
    """Whatever it finds at the mount path was put there by the webhook: its only volume is
    the disk-backed /tmp every pod running Python gets."""
    pod = the_test_pod(chart.render("mountPath=/shm"))
    assert pod["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert check_container(pod)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_the_check_runs_in_python_so_the_webhook_image_can_run_it(chart: Chart) -> None:
    command = check_container(the_test_pod(chart.render()))["command"]
    assert command[:2] == ["python3", "-c"]
    assert "args" not in check_container(the_test_pod(chart.render()))
    compile(command[2], "<test-shm>", "exec")  # the script as rendered is valid Python


@pytest.mark.parametrize(
    ("size", "message"),
    [
        pytest.param("100Mi", "test.shmSize 100Mi is too small", id="100Mi cannot take 100 MiB"),
        pytest.param("64Mi", "test.shmSize 64Mi is too small", id="64Mi cannot take 100 MiB"),
    ],
)
def test_a_shm_size_too_small_for_the_write_fails_the_render(
    chart: Chart, size: str, message: str
) -> None:
    assert message in chart.error(f"test.shmSize={size}")


@pytest.mark.parametrize(
    "size",
    [
        pytest.param("256M", id="a decimal suffix"),
        pytest.param("1.5Gi", id="a fraction"),
        pytest.param("0Gi", id="zero"),
        pytest.param("268435456", id="plain bytes"),
    ],
)
def test_the_schema_takes_only_whole_mi_or_gi_as_shm_size(chart: Chart, size: str) -> None:
    message = chart.error(f"test.shmSize={size}")
    assert "/test/shmSize" in message


@pytest.mark.parametrize(
    ("policy", "limit"),
    [
        pytest.param("default-container", "64Mi", id="the webhook adds the size to the limit"),
        pytest.param("all", "64Mi", id="memoryPolicy all: the webhook adds it too"),
        pytest.param("none", "320Mi", id="memoryPolicy none: the limit holds the 256Mi itself"),
    ],
)
def test_the_memory_limit_never_caps_the_volume(chart: Chart, policy: str, limit: str) -> None:
    pod = the_test_pod(chart.render(f"memoryPolicy={policy}"))
    assert check_container(pod)["resources"]["limits"]["memory"] == limit


@pytest.mark.parametrize(
    "values",
    [
        pytest.param((), id="the default image"),
        pytest.param(
            ("global.imageRegistry=mirror.example", "image.digest=sha256:" + "ab" * 32),
            id="an overridden registry and a digest",
        ),
    ],
)
def test_the_test_pod_runs_the_webhook_image(chart: Chart, values: tuple[str, ...]) -> None:
    objects = chart.render(*values)
    assert check_container(the_test_pod(objects))["image"] == webhook_container(objects)["image"]


def test_test_image_overrides_the_test_pod_image(chart: Chart) -> None:
    objects = chart.render("test.image=registry.example/python:3.12-slim")
    assert check_container(the_test_pod(objects))["image"] == "registry.example/python:3.12-slim"


def test_the_test_pod_is_named_after_the_release(chart: Chart) -> None:
    assert the_test_pod(chart.render())["metadata"]["name"] == f"{FULLNAME}-test-shm"


# Every way the chart can be configured that changes which pods reach the webhook.
ROUTING = [
    pytest.param(
        (*MODE_VALUES[mode], *SCOPE_VALUES[scope], *extra), kube, id=f"{mode}, {scope}{what}"
    )
    for mode in MODE_VALUES
    for scope in SCOPE_VALUES
    for extra, kube, what in (
        ((), "1.35", ""),
        ((), "1.27", ", Kubernetes 1.27 (no matchConditions)"),
        (("defaultSize=1Gi",), "1.35", ", a default size"),
    )
]

# Pods someone else may create in the release namespace: none may reach the webhook.
OTHER_PODS = {
    "an unlabelled pod": {},
    "a pod that asks for shm": {"annotations": {"shm-size": "1Gi"}},
    "a pod labelled shm-injection enabled": {"labels": {"shm-injection": "enabled"}},
    "another release's test pod": {
        "labels": {TEST_LABEL: "other"},
        "annotations": {"shm-size": "1Gi"},
    },
    "a pod with the chart's labels but not the test label": {
        "labels": {"app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/component": "test"},
        "annotations": {"shm-size": "1Gi"},
    },
}


@pytest.mark.parametrize(("values", "kube"), ROUTING)
def test_the_test_pod_is_sent_to_the_helm_test_entry_only(
    chart: Chart, values: tuple[str, ...], kube: str
) -> None:
    objects = chart.render(*values, kube=kube)
    pod = the_test_pod(objects)
    sent = [w["name"] for w in webhooks(objects) if sends(w, RELEASE_NAMESPACE, pod)]
    assert sent == [helm_test_webhook(objects)["name"]]


@pytest.mark.parametrize(("values", "kube"), ROUTING)
def test_no_other_pod_of_the_release_namespace_reaches_the_webhook(
    chart: Chart, values: tuple[str, ...], kube: str
) -> None:
    """The chart's own pods (webhook, certificate Jobs) are never sent: a broken webhook cannot
    keep them from starting. Nor is anyone else's pod in the release namespace."""
    objects = chart.render(*values, kube=kube)
    pods = {where: t for where, t in pod_templates(objects) if t is not the_test_pod(objects)}
    assert f"Deployment/{FULLNAME}" in pods
    pods.update({what: {"metadata": meta} for what, meta in OTHER_PODS.items()})
    for where, pod in pods.items():
        for entry in webhooks(objects):
            assert not sends(entry, RELEASE_NAMESPACE, pod), f"{where} is sent to {entry['name']}"


def test_the_test_label_is_on_the_test_pod_only(chart: Chart) -> None:
    for mode_values in MODE_VALUES.values():
        objects = chart.render(*mode_values)
        for where, template in pod_templates(objects):
            labels = template["metadata"].get("labels") or {}
            assert (TEST_LABEL in labels) is (template is the_test_pod(objects)), where


def test_the_helm_test_entry_selects_the_release_namespace_and_the_label_exactly(
    chart: Chart,
) -> None:
    entry = helm_test_webhook(chart.render())
    assert entry["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
    assert entry["objectSelector"] == {"matchLabels": {TEST_LABEL: RELEASE}}
    assert "matchConditions" not in entry


def test_the_test_pod_elsewhere_is_not_sent_to_the_helm_test_entry(chart: Chart) -> None:
    objects = chart.render()
    pod = the_test_pod(objects)
    served = namespace_labels("ml", **{"shm-injection": "enabled"})
    assert not sends(helm_test_webhook(objects), served, pod)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param((), id="Fail by default"),
        pytest.param(("defaultSize=1Gi",), id="Fail with a default size"),
        pytest.param(("failurePolicy=Ignore",), id="Fail when the main entry ignores failures"),
    ],
)
def test_the_helm_test_entry_fails_closed(chart: Chart, values: tuple[str, ...]) -> None:
    """A webhook that cannot answer refuses the test pod with the API server's reason rather
    than letting it start without the volume."""
    assert helm_test_webhook(chart.render(*values))["failurePolicy"] == "Fail"


CALL = (
    "admissionReviewVersions",
    "clientConfig",
    "rules",
    "matchPolicy",
    "sideEffects",
    "timeoutSeconds",
    "reinvocationPolicy",
)


@pytest.mark.parametrize("mode", [pytest.param(m, id=f"{m} mode") for m in MODE_VALUES])
def test_both_entries_call_the_server_the_same_way(chart: Chart, mode: str) -> None:
    """Same Service, path, CA (certs bootstrap and cainjector fill every entry's caBundle)."""
    objects = chart.render(*MODE_VALUES[mode], "timeoutSeconds=7")
    main, test = webhook(objects), helm_test_webhook(objects)
    assert {key: test[key] for key in CALL} == {key: main[key] for key in CALL}
