"""Every rule of SPEC §2, one table per rule. Each case applies the returned ops with
`jsonpatch` (RFC 6902, as the kube-apiserver does), asserts on the resulting pod and checks it
is a valid Pod."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import pytest

from tests.builders import container, pod
from tests.pods import all_containers, apply_patch, assert_valid_pod
from webhook.mutation import InvalidObject, Plan, plan
from webhook.policy import Percent, Policy
from webhook.quantity import parse, to_bytes
from webhook.status import STATUS_ANNOTATION

GI = 2**30


def shm(size: str = "8Gi") -> dict[str, str]:
    return {"shm-size": size}


def admit(obj: dict[str, Any], policy: Policy | None = None) -> tuple[Plan, dict[str, Any]]:
    decision = plan(obj, policy or Policy())
    patched = apply_patch(obj, decision.ops)
    assert_valid_pod(patched)
    return decision, patched


def memory_of(obj: dict[str, Any], name: str) -> tuple[int | None, int | None]:
    """(request, limit) in bytes of the named container."""
    found = next(c for c in all_containers(obj) if c["name"] == name)
    resources = found.get("resources") or {}
    values = []
    for kind in ("requests", "limits"):
        text = (resources.get(kind) or {}).get("memory")
        values.append(None if text is None else to_bytes(parse(text)))
    return values[0], values[1]


def shm_volume(obj: dict[str, Any]) -> dict[str, Any]:
    [volume] = [v for v in obj["spec"]["volumes"] if v.get("emptyDir", {}).get("medium")]
    return volume


def mounted(obj: dict[str, Any], path: str = "/dev/shm") -> dict[str, str]:
    """container name -> name of the volume mounted at path."""
    return {
        c["name"]: m["name"]
        for c in all_containers(obj)
        for m in c.get("volumeMounts") or []
        if m["mountPath"] == path
    }


# --- the volume and the mounts ----------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "expected_mounts"),
    [
        pytest.param(pod(annotations=shm()), {"main"}, id="a single container gets /dev/shm"),
        pytest.param(
            pod(container("a"), container("b"), init=[container("setup")], annotations=shm()),
            {"a", "b", "setup"},
            id="every container and init container gets /dev/shm",
        ),
        pytest.param(
            pod(
                container("main"),
                init=[container("proxy", restartPolicy="Always")],
                annotations=shm(),
            ),
            {"main", "proxy"},
            id="a restartable sidecar gets /dev/shm too",
        ),
        pytest.param(
            pod(
                container("main", mounts=[{"name": "data", "mountPath": "/data"}]),
                volumes=[{"name": "data", "emptyDir": {}}],
                annotations=shm(),
            ),
            {"main"},
            id="existing mounts and volumes are appended to",
        ),
    ],
)
def test_volume_and_mounts(obj: dict[str, Any], expected_mounts: set[str]) -> None:
    decision, patched = admit(obj)
    assert decision.outcome == "mutated"
    volume = shm_volume(patched)
    assert volume == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}
    assert mounted(patched) == dict.fromkeys(expected_mounts, "dshm")
    for name, before in [(c["name"], c) for c in all_containers(obj)]:
        after = next(c for c in all_containers(patched) if c["name"] == name)
        assert after["volumeMounts"][: len(before.get("volumeMounts", []))] == before.get(
            "volumeMounts", []
        )


def test_configured_volume_name_and_mount_path() -> None:
    policy = Policy(volume_name="shm", mount_path="/shm")
    _, patched = admit(pod(annotations=shm()), policy)
    assert shm_volume(patched)["name"] == "shm"
    assert mounted(patched, "/shm") == {"main": "shm"}


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        pytest.param(["dshm"], "dshm-1", id="a user's dshm volume makes us take dshm-1"),
        pytest.param(["dshm", "dshm-1"], "dshm-2", id="the first free suffix is taken"),
    ],
)
def test_volume_name_clash(taken: list[str], expected: str) -> None:
    volumes = [{"name": name, "emptyDir": {}} for name in taken]
    _, patched = admit(pod(volumes=volumes, annotations=shm()))
    assert shm_volume(patched)["name"] == expected
    assert mounted(patched) == {"main": expected}
    assert [v["name"] for v in patched["spec"]["volumes"]][: len(taken)] == taken


@pytest.mark.parametrize(
    "existing_path",
    [
        pytest.param("/dev/shm", id="keeps a user's own /dev/shm mount and warns"),
        pytest.param("/dev/shm/", id="a trailing slash is the same directory"),
    ],
)
def test_existing_dev_shm_mount_is_kept(existing_path: str) -> None:
    own = container("own", mounts=[{"name": "mine", "mountPath": existing_path}])
    obj = pod(
        own, container("other"), volumes=[{"name": "mine", "emptyDir": {}}], annotations=shm()
    )
    decision, patched = admit(obj)
    assert {name for name, volume in mounted(patched).items() if volume == "dshm"} == {"other"}
    assert patched["spec"]["containers"][0] == own
    assert any("own" in w and "/dev/shm" in w for w in decision.warnings)


def test_every_container_already_mounting_dev_shm_means_only_a_warning() -> None:
    own = container("own", mounts=[{"name": "mine", "mountPath": "/dev/shm"}])
    obj = pod(own, volumes=[{"name": "mine", "emptyDir": {"medium": "Memory"}}], annotations=shm())
    decision, patched = admit(obj)
    assert decision.outcome == "skipped"
    assert decision.ops == []
    assert patched == obj
    assert decision.warnings


def test_a_block_device_at_dev_shm_is_left_alone() -> None:
    dev = container("dev", volumeDevices=[{"name": "blk", "devicePath": "/dev/shm"}])
    obj = pod(dev, container("other"), volumes=[{"name": "blk", "emptyDir": {}}], annotations=shm())
    _, patched = admit(obj)
    assert mounted(patched) == {"other": "dshm"}


def test_pod_without_volumes_or_annotations_map_gets_them_created() -> None:
    obj = {"metadata": {"name": "p"}, "spec": {"containers": [container("main")]}}
    _, patched = admit(obj, Policy(default_size=parse("1Gi")))
    assert shm_volume(patched)["emptyDir"]["sizeLimit"] == "1Gi"
    assert STATUS_ANNOTATION in patched["metadata"]["annotations"]


# --- the size ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "policy", "size_limit"),
    [
        pytest.param(shm("8Gi"), Policy(), "8Gi", id="the annotation gives the size"),
        pytest.param(shm("1.5Gi"), Policy(), "1536Mi", id="the size is written canonically"),
        pytest.param(shm("2G"), Policy(), "2G", id="a decimal size stays decimal"),
        pytest.param(shm("1e9"), Policy(), "1e9", id="an exponent size stays an exponent"),
        pytest.param({}, Policy(default_size=parse("1Gi")), "1Gi", id="defaultSize applies"),
        pytest.param(
            shm("2Gi"), Policy(default_size=parse("1Gi")), "2Gi", id="the annotation wins"
        ),
        pytest.param(
            {"ml.example.com/shm": "4Gi"},
            Policy(annotation="ml.example.com/shm"),
            "4Gi",
            id="the annotation key is configurable",
        ),
        pytest.param(
            shm("4Gi"), Policy(max_size=4 * GI), "4Gi", id="a size equal to maxSize is allowed"
        ),
    ],
)
def test_size(annotations: dict[str, str], policy: Policy, size_limit: str) -> None:
    decision, patched = admit(pod(annotations=annotations), policy)
    assert shm_volume(patched)["emptyDir"]["sizeLimit"] == size_limit
    assert decision.size == to_bytes(parse(size_limit))


@pytest.mark.parametrize(
    ("annotations", "policy", "reason"),
    [
        pytest.param({}, Policy(), "not-requested", id="no annotation and no default: untouched"),
        pytest.param(shm("0"), Policy(), "opted-out", id="zero means no injection"),
        pytest.param(
            shm("0Gi"), Policy(default_size=parse("1Gi")), "opted-out", id="zero beats default"
        ),
    ],
)
def test_no_injection(annotations: dict[str, str], policy: Policy, reason: str) -> None:
    decision = plan(pod(annotations=annotations), policy)
    assert (decision.outcome, decision.reason, decision.ops) == ("skipped", reason, [])


@pytest.mark.parametrize(
    ("value", "policy", "needle"),
    [
        pytest.param("8GB", Policy(), "write 8Gi or 8G", id="8GB is denied with a fix"),
        pytest.param("-1Gi", Policy(), "negative", id="a negative size is denied"),
        pytest.param("100m", Policy(), "100Mi", id="a milli size is denied, suggesting Mi"),
        pytest.param("Gi", Policy(), "no number", id="a suffix alone is denied"),
        pytest.param("16Ei", Policy(), "largest", id="more than int64 bytes is denied"),
        pytest.param("9Gi", Policy(max_size=8 * GI), "at most 8Gi", id="over maxSize is denied"),
    ],
)
def test_invalid_size_is_denied(value: str, policy: Policy, needle: str) -> None:
    decision = plan(pod(annotations=shm(value)), policy)
    assert decision.outcome == "denied"
    assert decision.ops == []
    assert needle in decision.message
    assert "shm-size" in decision.message
    assert value in decision.message


def test_invalid_size_with_on_invalid_warn_admits_unchanged_with_the_warning() -> None:
    decision = plan(pod(annotations=shm("8GB")), Policy(on_invalid="warn"))
    assert (decision.outcome, decision.ops) == ("skipped", [])
    assert decision.warnings == [plan(pod(annotations=shm("8GB")), Policy()).message]


# --- memory -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        pytest.param(None, (8 * GI, None), id="no resources: the request becomes the size"),
        pytest.param({}, (8 * GI, None), id="empty resources: the request becomes the size"),
        pytest.param(
            {"requests": {"cpu": "1"}}, (8 * GI, None), id="a cpu-only request gains memory"
        ),
        pytest.param(
            {"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi"}},
            (9 * GI, 10 * GI),
            id="request and limit both grow by the size",
        ),
        pytest.param(
            {"requests": {"memory": "1Gi"}},
            (9 * GI, None),
            id="no limit is created where there was none",
        ),
        pytest.param(
            {"limits": {"memory": "2Gi"}},
            (10 * GI, 10 * GI),
            id="a limit without a request: the request defaults to the new limit",
        ),
        pytest.param(
            {"requests": {"memory": "512Mi"}, "limits": {"memory": "1G"}},
            (8 * GI + 2**29, 8 * GI + 10**9),
            id="sums are exact across binary and decimal",
        ),
    ],
)
def test_default_container_memory(
    resources: dict[str, Any] | None, expected: tuple[int, int | None]
) -> None:
    _, patched = admit(pod(container("main", resources=resources), annotations=shm()))
    assert memory_of(patched, "main") == expected


def test_memory_sum_is_written_canonically() -> None:
    resources = {"requests": {"memory": "8Gi"}, "limits": {"memory": "8Gi"}}
    _, patched = admit(pod(container("main", resources=resources), annotations=shm("512Mi")))
    assert patched["spec"]["containers"][0]["resources"]["limits"]["memory"] == "8704Mi"


@pytest.mark.parametrize(
    ("policy", "annotations", "charged"),
    [
        pytest.param(Policy(), shm(), {"a"}, id="default-container charges the first container"),
        pytest.param(
            Policy(),
            {**shm(), "kubectl.kubernetes.io/default-container": "b"},
            {"b"},
            id="default-container follows kubectl's default-container annotation",
        ),
        pytest.param(
            Policy(),
            {**shm(), "kubectl.kubernetes.io/default-container": "gone"},
            {"a"},
            id="an unknown default-container falls back to the first container",
        ),
        pytest.param(
            Policy(memory_policy="all"), shm(), {"a", "b"}, id="all charges every container"
        ),
        pytest.param(Policy(memory_policy="none"), shm(), set(), id="none charges nothing"),
    ],
)
def test_memory_policy(policy: Policy, annotations: dict[str, str], charged: set[str]) -> None:
    obj = pod(container("a"), container("b"), init=[container("setup")], annotations=annotations)
    _, patched = admit(obj, policy)
    for name in ("a", "b", "setup"):
        assert memory_of(patched, name) == ((8 * GI, None) if name in charged else (None, None))
    status = json.loads(patched["metadata"]["annotations"][STATUS_ANNOTATION])
    assert set(status["charged"]) == charged


def test_default_container_with_its_own_dev_shm_passes_the_charge_on() -> None:
    own = container("a", mounts=[{"name": "mine", "mountPath": "/dev/shm"}])
    obj = pod(own, container("b"), volumes=[{"name": "mine", "emptyDir": {}}], annotations=shm())
    _, patched = admit(obj)
    assert memory_of(patched, "a") == (None, None)
    assert memory_of(patched, "b") == (8 * GI, None)


def test_pod_level_resources_grow_by_every_charged_share() -> None:
    obj = pod(
        container("a", resources={"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}}),
        container("b", resources={"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}}),
        annotations=shm("1Gi"),
        resources={"limits": {"memory": "4Gi"}, "requests": {"memory": "3Gi"}},
    )
    _, patched = admit(obj, Policy(memory_policy="all"))
    pod_level = patched["spec"]["resources"]
    assert to_bytes(parse(pod_level["limits"]["memory"])) == 6 * GI
    assert to_bytes(parse(pod_level["requests"]["memory"])) == 5 * GI


def test_pod_level_resources_without_memory_are_left_alone() -> None:
    obj = pod(annotations=shm(), resources={"limits": {"cpu": "2"}})
    _, patched = admit(obj)
    assert patched["spec"]["resources"] == {"limits": {"cpu": "2"}}


@pytest.mark.parametrize(
    ("resources", "percent", "expected_limit"),
    [
        pytest.param(
            {"limits": {"memory": "16Gi"}, "requests": {"memory": "8Gi"}},
            Percent(Fraction(50)),
            "8Gi",
            id="a percentage is taken from the limit",
        ),
        pytest.param(
            {"requests": {"memory": "8Gi"}},
            Percent(Fraction(25)),
            "2Gi",
            id="a percentage falls back to the request",
        ),
    ],
)
def test_percentage_default_carves_out_of_the_budget(
    resources: dict[str, Any], percent: Percent, expected_limit: str
) -> None:
    obj = pod(container("main", resources=resources))
    _, patched = admit(obj, Policy(default_size=percent))
    assert shm_volume(patched)["emptyDir"]["sizeLimit"] == expected_limit
    assert patched["spec"]["containers"][0]["resources"] == resources


def test_percentage_default_without_memory_does_nothing() -> None:
    decision = plan(pod(container("main")), Policy(default_size=Percent(Fraction(50))))
    assert (decision.outcome, decision.ops) == ("skipped", [])


def test_tmpfs_cap_warning_when_the_pod_limit_is_below_the_size() -> None:
    obj = pod(container("main", resources={"limits": {"memory": "1Gi"}}), annotations=shm("8Gi"))
    decision, _ = admit(obj, Policy(memory_policy="none"))
    assert any("capped at 1Gi" in w for w in decision.warnings)
    decision, _ = admit(obj)
    assert not any("capped" in w for w in decision.warnings)


# --- pods left alone --------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(pod(annotations=shm(), hostIPC=True), id="hostIPC pods share the host's shm"),
        pytest.param(pod(annotations=shm(), os={"name": "windows"}), id="Windows pods"),
        pytest.param(
            pod(annotations={**shm(), "kubernetes.io/config.mirror": "abc"}), id="mirror pods"
        ),
        pytest.param(
            pod(annotations=shm(), labels={"shm-injection": "disabled"}), id="opted-out pods"
        ),
    ],
)
def test_pods_left_alone_warn_when_they_asked(obj: dict[str, Any]) -> None:
    decision = plan(obj, Policy())
    assert (decision.outcome, decision.ops) == ("skipped", [])
    assert decision.warnings
    del obj["metadata"]["annotations"]["shm-size"]
    assert plan(obj, Policy(default_size=parse("1Gi"))).warnings == []


def test_left_alone_beats_an_invalid_size() -> None:
    decision = plan(pod(annotations=shm("8GB"), hostIPC=True), Policy())
    assert decision.outcome == "skipped"


# --- idempotence and reinvocation -------------------------------------------------------


def test_second_admission_of_the_result_adds_nothing() -> None:
    obj = pod(container("a", resources={"limits": {"memory": "1Gi"}}), annotations=shm())
    _, once = admit(obj)
    again = plan(once, Policy())
    assert (again.outcome, again.ops) == ("skipped", [])


def test_reinvocation_mounts_a_sidecar_added_later_without_charging_again() -> None:
    _, once = admit(pod(container("main"), annotations=shm()))
    once["spec"]["containers"].append(container("istio-proxy"))
    decision, twice = admit(once)
    assert decision.outcome == "mutated"
    assert mounted(twice) == {"main": "dshm", "istio-proxy": "dshm"}
    assert memory_of(twice, "main") == (8 * GI, None)
    assert memory_of(twice, "istio-proxy") == (None, None)
    assert len(twice["spec"]["volumes"]) == 1
    status = json.loads(twice["metadata"]["annotations"][STATUS_ANNOTATION])
    assert status["mounted"] == ["main", "istio-proxy"]


def test_status_annotation_records_what_was_done() -> None:
    obj = pod(container("a"), container("b"), init=[container("i")], annotations=shm("2Gi"))
    _, patched = admit(obj)
    status = json.loads(patched["metadata"]["annotations"][STATUS_ANNOTATION])
    assert status == {"size": "2Gi", "volume": "dshm", "mounted": ["i", "a", "b"], "charged": ["a"]}


def test_a_foreign_status_annotation_is_replaced() -> None:
    obj = pod(annotations={**shm(), STATUS_ANNOTATION: "not json"})
    decision, patched = admit(obj)
    assert decision.reason == "injected"
    assert json.loads(patched["metadata"]["annotations"][STATUS_ANNOTATION])["volume"] == "dshm"


# --- malformed objects ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        pytest.param({"metadata": [], "spec": {}}, "metadata", id="metadata that is not an object"),
        pytest.param(pod(annotations={"shm-size": 8}), "shm-size", id="a numeric annotation"),  # type: ignore[dict-item]
        pytest.param(
            {"spec": {"containers": {}}, "metadata": {"annotations": shm()}},
            "spec.containers",
            id="containers not an array",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": 1}]}, "metadata": {"annotations": shm()}},
            "name",
            id="a numeric container name",
        ),
        pytest.param(
            pod(container("a", resources={"limits": {"memory": "lots"}}), annotations=shm()),
            "limits.memory",
            id="a memory limit that is not a quantity",
        ),
    ],
)
def test_malformed_pods_raise_invalid_object_naming_the_field(
    obj: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidObject, match=field.replace(".", r"\.")):
        plan(obj, Policy())
