"""The differential test: every pod of the corpus created, with a server-side dry run, once in
a namespace the webhook serves and once in a namespace the admission policies are bound to,
on the same kube-apiserver, with the same settings (docs/policy-engine.md).

Each variant of the settings runs its own `shm-webhook serve` (registered by URL for the
namespaces labelled `shm-parity: webhook-<variant>`, with the entries and matchConditions the
chart gives it) and its own `webhook.admission_policy.policies` (the bindings' namespace
selector replaced by `shm-parity: policy-<variant>`, so they touch no other test's pods). The
stored pods, or the refusals, and the warnings are compared field by field. A difference
passes only when the shape names a row of the parity table that says the engines differ; a
shape naming such a row must show a difference; the prefixes the engines put on the same
message, and the status codes of refusals, are the table's rows too.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import Kubectl
from tests.e2e.controlplane import ControlPlane
from tests.e2e.parity import Answer, DryRun, Seen, differences, seen
from tests.e2e.parity_corpus import CORPUS, SIDECAR_LABEL, VARIANTS, Shape, Variant
from tests.e2e.served import ServedWebhook
from webhook.admission_policy import Engine, policies
from webhook.settings import Settings, load_settings

pytestmark = pytest.mark.e2e

TABLE = Path(__file__).resolve().parents[2] / "docs" / "policy-engine.md"
ROW = re.compile(
    r"^\| `(?P<id>[a-z0-9-]+)` \| [^|]+ \| (?P<parity>identical|different|not at all) \|"
)
LABEL = "shm-parity"
READY_TIMEOUT_S = 60
SIDECAR_POLICY = "zz-parity-sidecar"  # after the engine's own policy: it is reinvoked
BOTH = "parity-both"  # served by the default variant's webhook and policies at once
BOTH_LABEL = "shm-parity-both"


def parity_table() -> dict[str, str]:
    """case id -> identical | different | not at all, from docs/policy-engine.md."""
    rows = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            assert match["id"] not in rows, f"case {match['id']} is in the table twice"
            rows[match["id"]] = match["parity"]
    return rows


@dataclass(frozen=True)
class Pair:
    webhook: str
    policy: str


def pair_of(shape: Shape) -> Pair:
    """The two namespaces a shape is created in: its variant's, or its own when it needs
    namespace annotations."""
    base = f"parity-{shape.variant}"
    if shape.namespace_annotations or shape.namespace_labels:
        base = f"{base}-{CORPUS.index(shape)}"
    return Pair(f"{base}-w", f"{base}-p")


def settings_of(variant: Variant) -> Settings:
    flags = dict(zip(variant.flags[::2], variant.flags[1::2], strict=True))
    return load_settings(
        {name.removeprefix("--").replace("-", "_"): value for name, value in flags.items()}
    )


def webhook_entries(
    variant: Variant, settings: Settings, client_config: dict[str, Any]
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration the chart renders for these settings, for the
    variant's webhook namespaces."""
    scope: dict[str, Any] = {"matchLabels": {LABEL: f"webhook-{variant.name}"}}
    defaults = {"key": "shm-injection/defaults", "operator": "In", "values": ["true"]}
    main_scope = copy.deepcopy(scope)
    if settings.namespace_policy:
        main_scope["matchExpressions"] = [{**defaults, "operator": "NotIn"}]
    configuration = cluster.webhook_configuration(
        f"parity-{variant.name}", client_config=client_config, namespace_selector=main_scope
    )
    [main] = configuration["webhooks"]
    if not settings.default_size:
        key = settings.annotation
        main["matchConditions"] = [
            {
                "name": "asks-for-shm",
                "expression": f"has(object.metadata.annotations) && '{key}' in"
                " object.metadata.annotations",
            }
        ]
    if settings.namespace_policy:
        second = {k: v for k, v in main.items() if k != "matchConditions"}
        second["name"] = "namespace-defaults." + main["name"]
        second["namespaceSelector"] = {**scope, "matchExpressions": [defaults]}
        configuration["webhooks"].append(second)
    return configuration


def policy_objects(variant: Variant, settings: Settings) -> list[dict[str, Any]]:
    objects = policies(settings, Engine(name=f"parity-{variant.name}"))
    for obj in objects:
        if obj["kind"].endswith("Binding"):
            selector = {"matchLabels": {LABEL: f"policy-{variant.name}"}}
            obj["spec"]["matchResources"]["namespaceSelector"] = selector
    return objects


def both_bindings(settings: Settings) -> list[dict[str, Any]]:
    """The default variant's policies bound once more, to BOTH: a namespace the webhook serves
    too (docs/policy-engine.md#recommendation: running both while migrating)."""
    bindings = []
    for obj in policy_objects(VARIANTS["default"], settings):
        if obj["kind"].endswith("Binding"):
            obj["metadata"]["name"] += "-both"
            obj["spec"]["matchResources"]["namespaceSelector"] = {
                "matchLabels": {BOTH_LABEL: "yes"}
            }
            bindings.append(obj)
    return bindings


def sidecar_policy() -> list[dict[str, Any]]:
    """A stand-in for a sidecar injector: a policy that adds a container to labelled pods."""
    sidecar = "{'name': 'injected-sidecar', 'image': 'registry.k8s.io/pause:3.9'}"
    expression = (
        "object.spec.containers.exists(c, c.name == 'injected-sidecar') ? []"
        f" : [JSONPatch{{op: 'add', path: '/spec/containers/-', value: {sidecar}}}]"
    )
    api = "admissionregistration.k8s.io/v1"
    rules = [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
    ]
    return [
        {
            "apiVersion": api,
            "kind": "MutatingAdmissionPolicy",
            "metadata": {"name": SIDECAR_POLICY},
            "spec": {
                "matchConstraints": {"resourceRules": rules},
                "failurePolicy": "Fail",
                "reinvocationPolicy": "Never",
                "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": expression}}],
            },
        },
        {
            "apiVersion": api,
            "kind": "MutatingAdmissionPolicyBinding",
            "metadata": {"name": SIDECAR_POLICY},
            "spec": {
                "policyName": SIDECAR_POLICY,
                "matchResources": {
                    "namespaceSelector": {
                        "matchExpressions": [{"key": LABEL, "operator": "Exists"}]
                    },
                    "objectSelector": {"matchLabels": SIDECAR_LABEL},
                },
            },
        },
    ]


def namespaces_needed() -> dict[str, dict[str, Any]]:
    """Every namespace of the test: name -> its labels and annotations."""
    needed: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        pair = pair_of(Shape("", {}, variant=variant))
        needed[pair.webhook] = {"labels": {LABEL: f"webhook-{variant}"}, "annotations": {}}
        needed[pair.policy] = {"labels": {LABEL: f"policy-{variant}"}, "annotations": {}}
    needed[BOTH] = {"labels": {LABEL: "webhook-default", BOTH_LABEL: "yes"}, "annotations": {}}
    for shape in CORPUS:
        pair = pair_of(shape)
        for name, engine in ((pair.webhook, "webhook"), (pair.policy, "policy")):
            labels = {LABEL: f"{engine}-{shape.variant}", **shape.namespace_labels}
            needed[name] = {"labels": labels, "annotations": shape.namespace_annotations}
    return needed


def probes(settings: Settings) -> list[tuple[str, dict[str, Any], Callable[[Any], bool]]]:
    """Pods whose answers show an engine fully in place: its mutation, its refusals (or the
    warning that replaces them) and its warnings."""
    key, path = settings.annotation, settings.mount_path
    own = {"name": "own", "emptyDir": {}}
    kept = cluster.container("a", volumeMounts=[{"name": "own", "mountPath": path}])
    invalid_seen: Callable[[Any], bool] = (
        (lambda answer: answer.code == 201 and bool(answer.warnings))
        if settings.on_invalid == "warn"
        else (lambda answer: answer.code in (400, 422))
    )
    return [
        (
            "mutates",
            {
                "metadata": {"annotations": {key: "1Mi"}},
                "spec": {"containers": [cluster.container("a")]},
            },
            lambda answer: (
                answer.code == 201
                and "shm-injection-status" in answer.body["metadata"].get("annotations", {})
            ),
        ),
        (
            "refuses",
            {
                "metadata": {"annotations": {key: "8GB"}},
                "spec": {"containers": [cluster.container("a")]},
            },
            invalid_seen,
        ),
        (
            "warns",
            {
                "metadata": {"annotations": {key: "1Mi"}},
                "spec": {"containers": [kept], "volumes": [own]},
            },
            lambda answer: answer.code == 201 and bool(answer.warnings),
        ),
    ]


def wait_until_serving(api: DryRun, namespace: str, settings: Settings) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    for what, body, ready in probes(settings):
        manifest = {"apiVersion": "v1", "kind": "Pod", **copy.deepcopy(body)}
        manifest["metadata"]["name"] = f"probe-{what}"
        while not ready(answer := api.create(namespace, manifest)):
            assert time.monotonic() < deadline, f"{namespace} does not {what}: {answer}"
            time.sleep(0.2)


@dataclass
class Engines:
    api: DryRun
    table: dict[str, str]
    served: dict[str, ServedWebhook]  # variant name -> its webhook


@pytest.fixture(scope="module")
def engines(
    kube: Kubectl,
    control_plane: ControlPlane,
    webhook_certs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Engines]:
    server = kube("version", "-o", "json").json()["serverVersion"]
    if (int(server["major"]), int(server["minor"].rstrip("+"))) < (1, 36):
        pytest.skip(
            f"the policy engine needs kube-apiserver 1.36 or later (MutatingAdmissionPolicy v1);"
            f" KUBEBUILDER_ASSETS holds {server['gitVersion']}"
        )
    for name, meta in namespaces_needed().items():
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, **meta}})
    kube.apply({"apiVersion": "v1", "kind": "List", "items": sidecar_policy()})
    logs = tmp_path_factory.mktemp("parity")

    def serve(variant: Variant) -> ServedWebhook:
        extra = (
            ("--kubeconfig", str(control_plane.kubeconfig))
            if "--namespace-policy" in variant.flags
            else ()
        )
        return ServedWebhook(
            cert_file=webhook_certs / "tls.crt",
            key_file=webhook_certs / "tls.key",
            ca_file=webhook_certs / "ca.crt",
            log=logs / f"{variant.name}.log",
            server_name="127.0.0.1",
            settings=(*variant.flags, *extra),
        )

    # Started once every namespace exists: each server's first list already holds them.
    with ThreadPoolExecutor(max_workers=4) as pool:
        served = dict(zip(VARIANTS, pool.map(serve, VARIANTS.values()), strict=True))
    api = DryRun(control_plane.url, control_plane.token, control_plane.ca_file)
    try:
        for variant in VARIANTS.values():
            settings = settings_of(variant)
            client_config = cluster.url_client_config(
                served[variant.name].url, webhook_certs / "ca.crt"
            )
            kube.apply(webhook_entries(variant, settings, client_config))
            kube.apply(
                {"apiVersion": "v1", "kind": "List", "items": policy_objects(variant, settings)}
            )
        kube.apply({"apiVersion": "v1", "kind": "List", "items": both_bindings(Settings())})
        wait_until_serving(api, BOTH, Settings())
        pairs = {pair_of(shape) for shape in CORPUS} | {
            pair_of(Shape("", {}, variant=v)) for v in VARIANTS
        }
        for pair in sorted(pairs, key=lambda p: p.webhook):
            variant = VARIANTS[pair.webhook.split("-")[1]]
            for namespace in (pair.webhook, pair.policy):
                wait_until_serving(api, namespace, settings_of(variant))
        yield Engines(api, parity_table(), served)
    finally:
        for webhook in served.values():
            webhook.stop()


def manifest_of(shape: Shape) -> dict[str, Any]:
    manifest = copy.deepcopy(shape.pod)
    name = f"shape-{CORPUS.index(shape)}"
    manifest["metadata"]["generateName" if shape.generate_name else "name"] = (
        f"{name}-" if shape.generate_name else name
    )
    return manifest


def through_webhook(api: DryRun, namespace: str, manifest: dict[str, Any]) -> Answer:
    """The webhook's answer; a call that failed in transport (the apiserver reusing a
    connection the server had just closed) is not the engine's answer, and is made again."""
    for _ in range(3):
        answer = api.create(namespace, manifest)
        if not (answer.code == 500 and "failed calling webhook" in answer.body.get("message", "")):
            break
    return answer


def through_both(api: DryRun, shape: Shape) -> tuple[Seen, Seen]:
    pair, manifest = pair_of(shape), manifest_of(shape)
    answer = through_webhook(api, pair.webhook, manifest)
    webhook = seen(answer, namespace=pair.webhook, engine="webhook")
    policy = seen(api.create(pair.policy, manifest), namespace=pair.policy, engine="policy")
    return webhook, policy


def test_the_corpus_has_at_least_40_shapes_and_each_variant_is_used() -> None:
    assert len(CORPUS) >= 40
    assert {shape.variant for shape in CORPUS} == set(VARIANTS)


@pytest.mark.parametrize("shape", CORPUS, ids=[shape.id for shape in CORPUS])
def test_both_engines_store_the_same_pod_or_refuse_it_alike(engines: Engines, shape: Shape) -> None:
    webhook, policy = through_both(engines.api, shape)
    found = differences(webhook, policy)
    for case in webhook.systematic | policy.systematic:
        assert engines.table.get(case) == "different", f"the parity table lacks `{case}`"
    if shape.differs is None:
        assert not found, "the engines differ where the parity table lists nothing:\n" + "\n".join(
            found
        )
    else:
        assert engines.table.get(shape.differs) in ("different", "not at all"), (
            f"the parity table has no difference `{shape.differs}`"
        )
        assert found, f"`{shape.differs}` is listed as a difference, and the engines agree"


def test_every_difference_the_table_shows_in_pods_is_in_the_corpus(engines: Engines) -> None:
    shown = {shape.differs for shape in CORPUS} - {None}
    assert shown <= set(engines.table)


BOTH_SHAPES = [
    shape
    for shape in CORPUS
    if shape.variant == "default" and not shape.namespace_annotations and not shape.differs
]


@pytest.mark.parametrize("shape", BOTH_SHAPES, ids=[shape.id for shape in BOTH_SHAPES])
def test_both_engines_at_once_store_what_the_policies_alone_store(
    engines: Engines, shape: Shape
) -> None:
    """The policies run first; the webhook then finds their status annotation and adds only
    what is missing, so a namespace served by both stores the pods the policies alone store."""
    manifest, policy_namespace = manifest_of(shape), pair_of(shape).policy
    alone = seen(
        engines.api.create(policy_namespace, manifest), namespace=policy_namespace, engine="policy"
    )
    both = seen(through_webhook(engines.api, BOTH, manifest), namespace=BOTH, engine="webhook")
    assert both.outcome == alone.outcome
    if alone.outcome != "stored":
        return
    stored = [Seen("stored", both.pod, 201, "", []), Seen("stored", alone.pod, 201, "", [])]
    assert differences(*stored) == []
    annotations = (alone.pod or {})["metadata"].get("annotations") or {}
    if "shm-injection-status" in annotations:  # the webhook was called after the policy
        name = manifest["metadata"].get("name") or manifest["metadata"]["generateName"]
        logged = engines.served["default"].admission_of(namespace=BOTH, name=name)
        # Nothing to add; or, the sidecar policy having run between, the sidecar's mount.
        assert logged["reason"] in ("already-injected", "reinvoked")
