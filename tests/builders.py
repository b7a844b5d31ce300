"""The objects tests send: a container, a pod, and the AdmissionReview of its CREATE.

Owns the one default pod of the suite (`trainer` in namespace `ml`, one busybox container
`main`) and the one default review (a Pod CREATE with uid `UID`, `shm-size: 1Gi` unless another
object is given). Keyword arguments add or replace what a test is about; everything else stays
the default, so two tests differ only where they mean to. Deliberately odd bodies (malformed
JSON, the fuzzers' strategies, byte-exact padding) are built where they are used, not here.

Imports nothing of `webhook` or `certs`: the builders are the input, never the code under test.
"""

from __future__ import annotations

from typing import Any

import orjson

IMAGE = "busybox"
V1 = "admission.k8s.io/v1"
UID = "0e1f2a3b-0000-4000-8000-00000000000a"
POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}
PODS = {"group": "", "version": "v1", "resource": "pods"}


def container(
    name: str = "main",
    *,
    image: str = IMAGE,
    mounts: list[dict[str, Any]] | None = None,
    resources: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A container; `fields` are any other container fields (`env`, `restartPolicy`, ...)."""
    result: dict[str, Any] = {"name": name, "image": image, **fields}
    if mounts is not None:
        result["volumeMounts"] = mounts
    if resources is not None:
        result["resources"] = resources
    return result


def pod(
    *containers: dict[str, Any],
    name: str | None = "trainer",
    namespace: str | None = "ml",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    init: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A pod as a webhook receives it (metadata and spec; no apiVersion or kind). `containers`
    default to one `container()`; a metadata field given as None is left out; `spec` are any
    other pod spec fields (`hostIPC`, `os`, pod-level `resources`, ...)."""
    metadata: dict[str, Any] = {}
    if name is not None:
        metadata["name"] = name
    if namespace is not None:
        metadata["namespace"] = namespace
    if annotations is not None:
        metadata["annotations"] = annotations
    if labels is not None:
        metadata["labels"] = labels
    body: dict[str, Any] = {"containers": list(containers or [container()]), **spec}
    if init is not None:
        body["initContainers"] = init
    if volumes is not None:
        body["volumes"] = volumes
    return {"metadata": metadata, "spec": body}


def review(obj: Any = None, *, api_version: Any = V1, **fields: Any) -> dict[str, Any]:
    """The AdmissionReview of a Pod CREATE in namespace `ml` of `obj` (None: the default pod
    with `shm-size: 1Gi`); `fields` add or replace request fields as given (`uid=None` sends
    a null uid, `operation="UPDATE"`, `dryRun=True`, ...)."""
    request = {
        "uid": UID,
        "kind": dict(POD_KIND),  # copies: a test may change its review in place
        "resource": dict(PODS),
        "operation": "CREATE",
        "namespace": "ml",
        "object": pod(annotations={"shm-size": "1Gi"}) if obj is None else obj,
        **fields,
    }
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}


def review_bytes(obj: Any = None, **options: Any) -> bytes:
    """`review(obj, **options)` as the kube-apiserver sends it: compact JSON."""
    return orjson.dumps(review(obj, **options))


# The body the served tests send when what is in it does not matter: a pod that gets 1Gi.
REVIEW = review_bytes()
