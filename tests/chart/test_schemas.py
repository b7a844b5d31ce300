"""Schemas on both sides of the chart: values.schema.json refuses bad values, and every
rendered object is valid for each supported Kubernetes version. Plus determinism: the chart
renders the same bytes every time (GitOps)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart.render import (
    CHART_DIR,
    CRD_API_VERSIONS,
    EVERYTHING_ON,
    KUBE_VERSIONS,
    MODE_VALUES,
    SCOPE_VALUES,
    Chart,
)

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
DEFAULTS = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))

# Every configuration whose objects are schema-checked, for each Kubernetes version.
CONFIGURATIONS: dict[str, tuple[str, ...]] = {
    f"{mode} mode, {scope} scope": (*MODE_VALUES[mode], *SCOPE_VALUES[scope])
    for mode in MODE_VALUES
    for scope in SCOPE_VALUES
}
CONFIGURATIONS["everything switched on"] = (
    *EVERYTHING_ON,
    "defaultSize=25%",
    "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring",
    "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1",
    "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
    ".podAffinityTerm.topologyKey=kubernetes.io/hostname",
)


REJECTED = [
    # (helm arguments, what the message must name)
    pytest.param(("foo=1",), "'foo'", id="an unknown top-level key"),
    pytest.param(("tls.bogus=1",), "'bogus'", id="an unknown key under tls"),
    pytest.param(
        ("metrics.serviceMonitor.extra=1",), "'extra'", id="an unknown key three levels down"
    ),
    pytest.param(("replicaCount=two",), "/replicaCount", id="a word for a number"),
    pytest.param(
        ("--set-string=timeoutSeconds=3",), "/timeoutSeconds", id="a string for an integer"
    ),
    pytest.param(("timeoutSeconds=0",), "/timeoutSeconds", id="a timeout below 1 second"),
    pytest.param(("timeoutSeconds=31",), "/timeoutSeconds", id="a timeout above 30 seconds"),
    pytest.param(("scope=everywhere",), "/scope", id="a scope that does not exist"),
    pytest.param(
        ("memoryPolicy=first",), "/memoryPolicy", id="a memory policy that does not exist"
    ),
    pytest.param(("onInvalid=ignore",), "/onInvalid", id="an onInvalid that does not exist"),
    pytest.param(
        ("failurePolicy=fail",), "/failurePolicy", id="a failure policy in the wrong case"
    ),
    pytest.param(("tls.mode=selfSigned",), "/tls/mode", id="a TLS mode that does not exist"),
    pytest.param(("logLevel=trace",), "/logLevel", id="a log level that does not exist"),
    pytest.param(("defaultSize=8GB",), "/defaultSize", id="a size in gigabytes written GB"),
    pytest.param(("maxSize=25%",), "/maxSize", id="a percentage as the size cap"),
    pytest.param(("annotation=shm size",), "/annotation", id="an annotation key with a space"),
    pytest.param(("volumeName=Dshm",), "/volumeName", id="a volume name in upper case"),
    pytest.param(("metrics.enabled=yes",), "/metrics/enabled", id="a word for a boolean"),
    pytest.param(("metrics.port=8443",), "/metrics/port", id="metrics on the webhook port"),
    pytest.param(("podLabels.team=1",), "/podLabels/team", id="a number as a label value"),
    pytest.param(("excludeNamespaces=ci",), "/excludeNamespaces", id="a string for a list"),
    pytest.param(
        ("tolerations[0].effect=Sometimes",), "/tolerations/0/effect", id="a bad toleration"
    ),
    pytest.param(
        ("tls.certManager.duration=90d",), "/tls/certManager/duration", id="days in a Go duration"
    ),
    pytest.param(("image.registry=https://ghcr.io",), "/image/registry", id="a URL as registry"),
    pytest.param(("image.repository=Shm/Webhook",), "/image/repository", id="an upper-case repo"),
    pytest.param(("image.tag=v1:2",), "/image/tag", id="a tag with a colon"),
    pytest.param(("image.digest=abc123",), "/image/digest", id="a digest without sha256:"),
    pytest.param(("image.digest=@sha256:" + "0" * 64,), "/image/digest", id="a digest with its @"),
    pytest.param(
        ("global.imageRegistry=ghcr.io/",), "/global/imageRegistry", id="a registry with a slash"
    ),
    pytest.param(("test.namespace=shm-test",), "'namespace'", id="the removed test.namespace"),
    pytest.param(("test.expectedKiB=1",), "'expectedKiB'", id="the removed test.expectedKiB"),
    pytest.param(("tls.bootstrap.image.tag=v9",), "'image'", id="the removed tls.bootstrap.image"),
]


@pytest.mark.parametrize(
    ("values", "named"),
    [pytest.param(*case.values, id=f"refuses {case.id}") for case in REJECTED],
)
def test_values_schema_rejects(chart: Chart, values: tuple[str, ...], named: str) -> None:
    message = chart.error(*values)
    assert "values don't meet the specifications of the schema" in message
    assert named in message


ACCEPTED = [
    pytest.param(("defaultSize=1.5Gi",), id="a decimal size"),
    pytest.param(("defaultSize=2G",), id="a decimal-suffixed size"),
    pytest.param(("defaultSize=1e9",), id="a size with an exponent"),
    pytest.param(("defaultSize=12.5%",), id="a decimal percentage"),
    pytest.param(("annotation=example.com/shm-size",), id="a prefixed annotation key"),
    pytest.param(("podDisruptionBudget.minAvailable=50%",), id="a percentage budget"),
    pytest.param(
        ("--set-string=podLabels.version=2",), id="a numeric label value given as a string"
    ),
    pytest.param(("global.storageClass=fast",), id="another chart's global value"),
    pytest.param(("image.registry=localhost:5000",), id="a registry with a port"),
    pytest.param(("image.registry=",), id="no registry"),
]


@pytest.mark.parametrize(
    "values", [pytest.param(*case.values, id=f"accepts {case.id}") for case in ACCEPTED]
)
def test_values_schema_accepts(chart: Chart, values: tuple[str, ...]) -> None:
    assert chart.render(*values)


def test_default_values_match_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(DEFAULTS)


# Maps whose keys are the user's (labels, selectors, Kubernetes objects passed through).
# `global` too: Helm hands a subchart its parent's globals, whatever their names.
FREE_FORM = re.compile(
    r"/(global|nodeSelector|podAnnotations|podLabels|labels|annotations|requests|limits"
    r"|podSelector|namespaceSelector|ipBlock|nodeAffinity|podAffinity|podAntiAffinity)$"
)


def object_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if node.get("type") == "object":
        yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from object_nodes(child, f"{path}/{key}")
    if isinstance(node.get("items"), dict):
        yield from object_nodes(node["items"], f"{path}/[]")


def test_every_chart_level_of_the_schema_refuses_unknown_keys() -> None:
    nodes = list(object_nodes(SCHEMA))
    assert len(nodes) > 15
    for path, node in nodes:
        if FREE_FORM.search(path):
            assert node.get("additionalProperties") is not False, path
        else:
            assert node.get("additionalProperties") is False, path


def test_every_default_value_is_in_the_schema() -> None:
    def walk(values: dict[str, Any], schema: dict[str, Any], path: str) -> None:
        for key, value in values.items():
            assert key in schema["properties"], f"{path}/{key} is not in the schema"
            child = schema["properties"][key]
            if isinstance(value, dict) and "properties" in child:
                walk(value, child, f"{path}/{key}")

    walk(DEFAULTS, SCHEMA, "")


def distinct_objects(chart: Chart, kube: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every distinct rendered object for a version: canonical JSON -> (configuration, object)."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        renders = dict(
            zip(
                CONFIGURATIONS,
                pool.map(lambda values: chart.render(*values, kube=kube), CONFIGURATIONS.values()),
                strict=True,
            )
        )
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for configuration, objects in renders.items():
        for obj in objects:
            found.setdefault(json.dumps(obj, sort_keys=True), (configuration, obj))
    return found


@pytest.mark.parametrize(
    "kube",
    [
        pytest.param(v, id=f"every object rendered for Kubernetes {v} is valid for {v}")
        for v in KUBE_VERSIONS
    ],
)
def test_rendered_objects_are_valid_kubernetes(chart: Chart, kube: str) -> None:
    objects = distinct_objects(chart, kube)
    kinds = {obj["kind"] for _, obj in objects.values()}
    assert {"Deployment", "MutatingWebhookConfiguration", "CronJob", "Job", "Pod"} <= kinds
    assert set(CRD_API_VERSIONS) <= kinds, "the CRD kinds are rendered too"
    for configuration, obj in objects.values():
        where = f"{obj['kind']}/{obj['metadata']['name']} ({configuration})"
        if obj["kind"] in CRD_API_VERSIONS:
            assert obj["apiVersion"] == CRD_API_VERSIONS[obj["kind"]], where
            continue
        try:
            kubernetes_validate.validate(obj, kube, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{where} is invalid for Kubernetes {kube}: {error.message} at {error.path}"
            )


DETERMINISM = [
    pytest.param(values, id=f"{name} renders the same bytes twice")
    for name, values in {
        "bootstrap mode": MODE_VALUES["bootstrap"],
        "certManager mode": MODE_VALUES["certManager"],
        "manual mode": MODE_VALUES["manual"],
        "everything switched on": CONFIGURATIONS["everything switched on"],
    }.items()
]


@pytest.mark.parametrize("values", DETERMINISM)
def test_renders_are_byte_identical(chart: Chart, values: tuple[str, ...]) -> None:
    first, second = chart.run(*values), chart.run(*values)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


# Template functions whose output changes from one render to the next.
UNSTABLE = re.compile(
    r"\b(now|date|dateInZone|unixEpoch|randAlphaNum|randAlpha|randNumeric|randAscii|randInt"
    r"|randBytes|uuidv4|genCA|genCAWithKey|genPrivateKey|genSelfSignedCert|genSelfSignedCertWithKey"
    r"|genSignedCert|genSignedCertWithKey|lookup)\b"
)


def test_templates_use_no_random_time_or_cluster_dependent_function() -> None:
    templates = sorted((CHART_DIR / "templates").rglob("*"))
    assert templates
    for path in templates:
        if path.is_file():
            actions = re.findall(r"\{\{.*?\}\}", path.read_text(encoding="utf-8"), flags=re.DOTALL)
            for action in actions:
                assert not UNSTABLE.search(action), f"{path.name}: {action}"
