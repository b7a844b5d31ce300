"""The benchmark's request bodies: three AdmissionReviews of a Pod CREATE with `shm-size`.

Owns: `build_payloads() -> {name: body}`, deterministic bytes (compact JSON, as the
kube-apiserver sends them):

- `small` (~2 KB): one container, a projected service-account token volume, requests only;
- `typical` (~10 KB): the Deployment-generated pod captured in `fixtures/` (two containers,
  probes, resources, managedFields), with the annotation, env vars and the managedFields entry
  a Deployment's pod template would add; its memory limits are below the size, so the answer
  carries a warning;
- `large` (~75 KB): eight containers of 48 env vars each, probes, limits and managedFields.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson

FIXTURE = Path(__file__).parent / "fixtures" / "deployment-generated-pod.json"
NAMES = ("small", "typical", "large")
NAMESPACE = "ml-training"
_SERVICE_ACCOUNT_USER = "system:serviceaccount:kube-system:replicaset-controller"


def build_payloads() -> dict[str, bytes]:
    """name -> AdmissionReview body, in `NAMES` order."""
    return {
        "small": _review(_small_request()),
        "typical": _review(_typical_request()),
        "large": _review(_large_request()),
    }


def _review(request: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    )


def _request(pod: dict[str, Any], *, uid: str, name: str = "") -> dict[str, Any]:
    pod_kind = {"group": "", "version": "v1", "kind": "Pod"}
    pod_resource = {"group": "", "version": "v1", "resource": "pods"}
    return {
        "uid": uid,
        "kind": pod_kind,
        "resource": pod_resource,
        "requestKind": pod_kind,
        "requestResource": pod_resource,
        "name": name,
        "namespace": NAMESPACE,
        "operation": "CREATE",
        "userInfo": {
            "username": _SERVICE_ACCOUNT_USER,
            "uid": "bfb02fb4-9f6e-4af8-ba9c-0c1a21d83a6a",
            "groups": ["system:serviceaccounts", "system:authenticated"],
        },
        "object": pod,
        "oldObject": None,
        "dryRun": False,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
    }


def _small_request() -> dict[str, Any]:
    container = {
        "name": "notebook",
        "image": "quay.io/jupyter/pytorch-notebook:2024-10-07",
        "ports": [{"name": "http", "containerPort": 8888, "protocol": "TCP"}],
        "env": [{"name": "JUPYTER_ENABLE_LAB", "value": "yes"}],
        "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}},
        "volumeMounts": [_token_mount("kube-api-access-7xk2p")],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }
    pod = {
        "metadata": {
            "name": "notebook-0",
            "namespace": NAMESPACE,
            "labels": {"app": "notebook"},
            "annotations": {"shm-size": "1Gi"},
        },
        "spec": {
            "volumes": [_token_volume("kube-api-access-7xk2p")],
            "containers": [container],
            **_pod_defaults(),
        },
    }
    return _request(pod, uid="2b1c5b9e-5a7e-4c53-9f2d-6d0c1d0e4a01", name="notebook-0")


def _typical_request() -> dict[str, Any]:
    request: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    request["namespace"] = NAMESPACE
    pod = request["object"]
    pod["metadata"]["annotations"] = {"shm-size": "1Gi"}
    proxy, manager = pod["spec"]["containers"]
    proxy["resources"] = {
        "limits": {"cpu": "500m", "memory": "128Mi"},
        "requests": {"cpu": "5m", "memory": "64Mi"},
    }
    proxy["env"] = _env(8, prefix="PROXY")
    manager["env"] = _env(16, prefix="MANAGER")
    fields = copy.deepcopy(pod["metadata"]["managedFields"][0])
    fields["manager"] = "kube-controller-manager-env"
    fields["fieldsV1"]["f:metadata"]["f:annotations"] = {".": {}, "f:shm-size": {}}
    pod["metadata"]["managedFields"].append(fields)
    return request


def _large_request() -> dict[str, Any]:
    containers = [
        {
            "name": f"worker-{index}",
            "image": f"registry.example.com/training/worker:v1.{index}.0",
            "command": ["python", "-m", "trainer.worker"],
            "args": [f"--rank={index}", "--world-size=8", "--backend=nccl"],
            "env": _env(48, prefix=f"WORKER{index}"),
            "resources": {
                "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                "requests": {"cpu": "2", "memory": "12Gi", "nvidia.com/gpu": "1"},
            },
            "volumeMounts": [_token_mount("kube-api-access-w9vqz")],
            "livenessProbe": _probe("/healthz", 15),
            "readinessProbe": _probe("/readyz", 5),
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
        }
        for index in range(8)
    ]
    managed = {f'k:{{"name":"{c["name"]}"}}': _container_fields(c) for c in containers}
    pod = {
        "metadata": {
            "generateName": "trainer-6d5f8c7b9-",
            "namespace": NAMESPACE,
            "labels": {"app": "trainer", "pod-template-hash": "6d5f8c7b9"},
            "annotations": {"shm-size": "8Gi"},
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2024-10-07T08:04:47Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:containers": managed}},
                }
            ],
        },
        "spec": {
            "volumes": [_token_volume("kube-api-access-w9vqz")],
            "containers": containers,
            **_pod_defaults(),
        },
    }
    return _request(pod, uid="6f9d3c2a-8b1e-4d7f-a0c5-3e2b1f4d5c6a")


def _env(count: int, *, prefix: str) -> list[dict[str, Any]]:
    """`count` env vars, a realistic mix of literal values and downward-API references."""
    env: list[dict[str, Any]] = []
    for index in range(count):
        name = f"{prefix}_SETTING_{index:02d}"
        if index % 4 == 3:
            field = ("metadata.name", "metadata.namespace", "status.podIP")[index % 3]
            env.append({"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}})
        else:
            env.append({"name": name, "value": f"value-{index:02d}-of-{prefix.lower()}-settings"})
    return env


def _container_fields(container: dict[str, Any]) -> dict[str, Any]:
    """The managedFields (FieldsV1) entry of a container, as the API server records it."""
    probe = _fields(
        "failureThreshold", "initialDelaySeconds", "periodSeconds", "successThreshold"
    ) | {"f:timeoutSeconds": {}, "f:httpGet": _fields("path", "port", "scheme")}
    quantities = _fields("cpu", "memory", "nvidia.com/gpu")
    env = {
        f'k:{{"name":"{e["name"]}"}}': _fields("name", *e.keys() - {"name"})
        for e in container["env"]
    }
    return _fields("args", "command", "image", "imagePullPolicy", "name") | {
        "f:env": {".": {}, **env},
        "f:livenessProbe": probe,
        "f:readinessProbe": probe,
        "f:resources": {".": {}, "f:limits": quantities, "f:requests": quantities},
        "f:terminationMessagePath": {},
        "f:terminationMessagePolicy": {},
    }


def _fields(*names: str) -> dict[str, Any]:
    """A FieldsV1 set: the object itself (".") and the named fields."""
    return {".": {}, **{f"f:{name}": {} for name in sorted(names)}}


def _probe(path: str, delay: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": 8080, "scheme": "HTTP"},
        "initialDelaySeconds": delay,
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }


def _token_volume(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
            ],
            "defaultMode": 420,
        },
    }


def _token_mount(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "readOnly": True,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
    }


def _pod_defaults() -> dict[str, Any]:
    return {
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {
                "key": f"node.kubernetes.io/{key}",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
            for key in ("not-ready", "unreachable")
        ],
        "priority": 0,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
    }
