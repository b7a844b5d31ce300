"""Rendering charts/shm-webhook with `helm template` and reading the result.

Owns: the `Chart` renderer (one `helm template` per distinct (values, Kubernetes version,
namespace), cached for the session), object lookup in the parsed documents, and the two small
evaluators the tests reason with: Kubernetes label selectors and RBAC rules. Tests assert on
parsed YAML, never on template text.
"""

from __future__ import annotations

import base64
import re
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "shm-webhook"
RELEASE = "rel"
NAMESPACE = "shm-system"
FULLNAME = f"{RELEASE}-shm-webhook"
KUBE_VERSIONS = tuple(f"1.{minor}" for minor in range(27, 36))
LATEST = KUBE_VERSIONS[-1]
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")

# manual mode needs a Secret name and base64 of a PEM certificate (the chart checks the
# PEM header only, so the body need not be a real certificate).
FAKE_CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
FAKE_CA_BUNDLE = base64.b64encode(FAKE_CA_PEM.encode()).decode()
MODE_VALUES: dict[str, tuple[str, ...]] = {
    "bootstrap": (),
    "certManager": ("tls.mode=certManager",),
    "manual": (
        "tls.mode=manual",
        "tls.existingSecret=my-webhook-tls",
        f"tls.caBundle={FAKE_CA_BUNDLE}",
    ),
}
SCOPE_VALUES: dict[str, tuple[str, ...]] = {
    "namespace": (),
    "cluster": ("scope=cluster",),
}
# Every optional object switched on, so one render shows all of them.
EVERYTHING_ON = (
    "networkPolicy.enabled=true",
    "metrics.serviceMonitor.enabled=true",
    "image.digest=sha256:" + "0123456789abcdef" * 4,
    "priorityClassName=system-cluster-critical",
    "imagePullSecrets[0].name=regcred",
    "nodeSelector.kubernetes\\.io/os=linux",
    "tolerations[0].key=dedicated",
    "tolerations[0].operator=Exists",
    "podAnnotations.team=ml",
    "podLabels.team=ml",
    "serviceAccount.annotations.owner=ml",
    "excludeNamespaces[0]=ci",
)
# Objects whose schema is a CRD, not part of Kubernetes: not schema-validated, but their
# apiVersion is pinned.
CRD_API_VERSIONS = {
    "Issuer": "cert-manager.io/v1",
    "Certificate": "cert-manager.io/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
}

Obj = dict[str, Any]


def helm_args(values: Sequence[str]) -> list[str]:
    """`k=v` becomes `--set k=v`; an entry starting with `--` is passed as it is."""
    args: list[str] = []
    for value in values:
        args.extend([value] if value.startswith("--") else ["--set", value])
    return args


class Chart:
    """`helm template` of the chart, cached per (values, version, namespace) for the session."""

    def __init__(self, helm: str) -> None:
        self.helm = helm
        self._texts: dict[tuple[Any, ...], str] = {}
        self._lock = threading.Lock()

    def run(
        self, *values: str, kube: str = LATEST, namespace: str = NAMESPACE
    ) -> subprocess.CompletedProcess[str]:
        """One uncached `helm template`; the caller looks at the exit code."""
        command = [
            self.helm,
            "template",
            RELEASE,
            str(CHART_DIR),
            "--namespace",
            namespace,
            "--kube-version",
            f"{kube}.0",
            *helm_args(values),
        ]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)

    def text(self, *values: str, kube: str = LATEST, namespace: str = NAMESPACE) -> str:
        key = (values, kube, namespace)
        with self._lock:
            cached = self._texts.get(key)
        if cached is None:
            done = self.run(*values, kube=kube, namespace=namespace)
            assert done.returncode == 0, f"helm template {values} failed:\n{done.stderr}"
            cached = done.stdout
            with self._lock:
                self._texts[key] = cached
        return cached

    def render(self, *values: str, kube: str = LATEST, namespace: str = NAMESPACE) -> list[Obj]:
        """The rendered objects (a fresh parse: tests may change what they get)."""
        text = self.text(*values, kube=kube, namespace=namespace)
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]

    def error(self, *values: str, kube: str = LATEST, namespace: str = NAMESPACE) -> str:
        """helm's message when rendering fails; fails the test when it renders."""
        done = self.run(*values, kube=kube, namespace=namespace)
        assert done.returncode != 0, f"helm template {values} rendered, expected an error"
        return done.stderr


def of_kind(objects: Sequence[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: Sequence[Obj], kind: str, name: str | None = None) -> Obj:
    found = [obj for obj in of_kind(objects, kind) if name in (None, obj["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


MAIN_WEBHOOK = f"{FULLNAME}.{NAMESPACE}.svc"
TEST_PREFIX = "helm-test."  # the `helm test` entry: helm-test.<the main entry's name>


def webhooks(objects: Sequence[Obj]) -> list[Obj]:
    """The entries of the single MutatingWebhookConfiguration."""
    return list(one(objects, "MutatingWebhookConfiguration")["webhooks"])


NAMESPACE_DEFAULTS_PREFIX = (
    "namespace-defaults."  # namespacePolicy: pods of namespaces with defaults
)


def webhook(objects: Sequence[Obj]) -> Obj:
    """The one webhook entry that serves the cluster's annotated pods."""
    prefixes = (TEST_PREFIX, NAMESPACE_DEFAULTS_PREFIX)
    (main,) = [w for w in webhooks(objects) if not w["name"].startswith(prefixes)]
    return main


def helm_test_webhook(objects: Sequence[Obj]) -> Obj:
    """The one webhook entry that serves the `helm test` pod, named after the main one."""
    (entry,) = [w for w in webhooks(objects) if w["name"].startswith(TEST_PREFIX)]
    assert entry["name"] == TEST_PREFIX + webhook(objects)["name"]
    return entry


def pod_templates(objects: Sequence[Obj]) -> Iterator[tuple[str, Obj]]:
    """(kind/name, pod template with metadata and spec) for every object that makes pods."""
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Pod":
            yield where, obj
        elif obj["kind"] in ("Deployment", "Job"):
            yield where, obj["spec"]["template"]
        elif obj["kind"] == "CronJob":
            yield where, obj["spec"]["jobTemplate"]["spec"]["template"]


def webhook_container(objects: Sequence[Obj]) -> Obj:
    """The webhook container of the Deployment."""
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    (found,) = [c for c in containers if c["name"] == "webhook"]
    return found  # type: ignore[no-any-return]


def env(objects: Sequence[Obj]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in webhook_container(objects)["env"]}


def hook_events(obj: Obj) -> list[str]:
    annotations = obj["metadata"].get("annotations") or {}
    hook = annotations.get("helm.sh/hook")
    return hook.split(",") if hook else []


def hook_weight(obj: Obj) -> int:
    return int(obj["metadata"]["annotations"].get("helm.sh/hook-weight", "0"))


def delete_policies(obj: Obj) -> set[str]:
    policy = obj["metadata"]["annotations"].get("helm.sh/hook-delete-policy", "")
    return set(policy.split(",")) - {""}


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a Kubernetes LabelSelector matches labels (an absent selector matches all)."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


# The one matchConditions expression the chart writes (annotation key in the quotes).
ASKS_FOR_SHM = re.compile(
    r"^has\(object\.metadata\.annotations\) && '(?P<key>[^']+)' in object\.metadata\.annotations$"
)


def conditions_hold(hook: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Whether a pod passes a webhook entry's matchConditions (only the chart's own form)."""
    annotations = pod["metadata"].get("annotations") or {}
    for condition in hook.get("matchConditions") or []:
        match = ASKS_FOR_SHM.match(condition["expression"])
        assert match, f"no evaluator for the condition {condition['expression']!r}"
        if match["key"] not in annotations:
            return False
    return True


def sends(hook: Mapping[str, Any], namespace: Mapping[str, str], pod: Mapping[str, Any]) -> bool:
    """Whether the API server sends the CREATE of `pod` (metadata with labels and annotations)
    in a namespace with these labels to a webhook entry: both selectors and the conditions."""
    return (
        selects(hook.get("namespaceSelector"), namespace)
        and selects(hook.get("objectSelector"), pod["metadata"].get("labels") or {})
        and conditions_hold(hook, pod)
    )


def namespace_labels(name: str, **labels: str) -> dict[str, str]:
    """A namespace's labels as the API server keeps them (with kubernetes.io/metadata.name)."""
    return {"kubernetes.io/metadata.name": name, **labels}


def rules_for(objects: Sequence[Obj], service_account: str) -> list[Obj]:
    """Every RBAC rule bound to a ServiceAccount of the release namespace."""
    rules: list[Obj] = []
    for binding in [*of_kind(objects, "RoleBinding"), *of_kind(objects, "ClusterRoleBinding")]:
        bound = any(
            s["kind"] == "ServiceAccount"
            and s["name"] == service_account
            and s["namespace"] == NAMESPACE
            for s in binding["subjects"]
        )
        if bound:
            ref = binding["roleRef"]
            rules.extend(one(objects, ref["kind"], ref["name"])["rules"])
    return rules


def allows(rules: Sequence[Obj], *, verb: str, resource: str, name: str, group: str = "") -> bool:
    """Whether RBAC rules grant verb on the named object (no wildcards: none are expected)."""
    return any(
        group in rule.get("apiGroups", [])
        and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        and (not rule.get("resourceNames") or name in rule["resourceNames"])
        for rule in rules
    )


def read_chart_file(name: str) -> str:
    return Path(CHART_DIR, name).read_text(encoding="utf-8")
