"""Invariants of the planner over generated pods (hypothesis): the patch always applies, the
result is a valid pod, a second admission adds nothing, no container or volume is lost, and
every container ends up with something at /dev/shm."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.pods import all_containers, apply_patch, assert_valid_pod
from webhook.mutation import plan
from webhook.policy import Percent, Policy
from webhook.quantity import parse
from webhook.review import respond

NAMES = st.sampled_from(["main", "worker", "proxy", "init", "setup", "dshm", "x-1"])
VOLUME_NAMES = st.sampled_from(["dshm", "dshm-1", "data", "cache", "shm"])
SIZES = st.sampled_from(["0", "64Mi", "1Gi", "1.5Gi", "2G", "1e9", "8Gi", "3", "8GB", "-1Gi"])
MEMORY = st.sampled_from(["128Mi", "1Gi", "1G", "1500M", "2Gi", "4096Mi"])


@st.composite
def resources(draw: st.DrawFn) -> dict[str, Any] | None:
    shape = draw(st.sampled_from(["absent", "empty", "cpu", "request", "limit", "both"]))
    if shape == "absent":
        return None
    result: dict[str, Any] = {}
    if shape == "cpu":
        result["requests"] = {"cpu": "100m"}
    limit = draw(MEMORY)
    if shape in ("limit", "both"):
        result["limits"] = {"memory": limit}
    if shape == "request":
        result["requests"] = {"memory": draw(MEMORY)}
    if shape == "both":
        result["requests"] = {"memory": limit}  # request <= limit, as the API server requires
    return result


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    volumes = [{"name": n, "emptyDir": {}} for n in draw(st.sets(VOLUME_NAMES, max_size=3))]
    names = draw(st.lists(NAMES, min_size=1, max_size=6, unique=True))
    split = draw(st.integers(min_value=0, max_value=len(names) - 1))

    def container(name: str, *, init: bool) -> dict[str, Any]:
        result: dict[str, Any] = {"name": name, "image": "busybox"}
        if volumes and draw(st.booleans()):
            path = draw(st.sampled_from(["/dev/shm", "/data", "/dev/shm/"]))
            result["volumeMounts"] = [
                {"name": draw(st.sampled_from(volumes))["name"], "mountPath": path}
            ]
        if (res := draw(resources())) is not None:
            result["resources"] = res
        if init and draw(st.booleans()):
            result["restartPolicy"] = "Always"
        return result

    spec: dict[str, Any] = {"containers": [container(n, init=False) for n in names[split:]]}
    if split:
        spec["initContainers"] = [container(n, init=True) for n in names[:split]]
    if volumes:
        spec["volumes"] = volumes
    annotations = {}
    if draw(st.booleans()):
        annotations["shm-size"] = draw(SIZES)
    if draw(st.booleans()):
        annotations["kubectl.kubernetes.io/default-container"] = draw(NAMES)
    metadata: dict[str, Any] = {"name": "p"}
    if annotations or draw(st.booleans()):
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": spec}


policies = st.builds(
    Policy,
    default_size=st.sampled_from([None, parse("1Gi"), Percent(Fraction(50))]),
    memory_policy=st.sampled_from(["default-container", "all", "none"]),
    on_invalid=st.sampled_from(["deny", "warn"]),
)


def mounts_at_dev_shm(container: dict[str, Any]) -> bool:
    return any(
        m["mountPath"].rstrip("/") == "/dev/shm" for m in container.get("volumeMounts") or []
    )


@given(pods(), policies)
def test_every_plan_applies_to_a_valid_pod_and_is_idempotent(
    obj: dict[str, Any], policy: Policy
) -> None:
    assert_valid_pod(obj)
    decision = plan(obj, policy)
    patched = apply_patch(obj, decision.ops)
    assert_valid_pod(patched)

    before, after = all_containers(obj), all_containers(patched)
    assert [c["name"] for c in after] == [c["name"] for c in before]
    old_volumes = obj["spec"].get("volumes") or []
    assert patched["spec"].get("volumes", [])[: len(old_volumes)] == old_volumes
    for old, new in zip(before, after, strict=True):
        old_mounts = old.get("volumeMounts") or []
        assert new.get("volumeMounts", [])[: len(old_mounts)] == old_mounts
    if decision.outcome == "mutated":
        assert all(mounts_at_dev_shm(c) for c in after)
    else:
        assert decision.ops == []
    # The API server's limits, which the envelope applies to whatever the plan says.
    shown = respond(decision).warnings
    assert len(shown) <= 5
    assert all(len(w) <= 120 for w in shown)

    again = plan(patched, policy)
    if decision.outcome == "mutated":
        assert again.ops == []
