"""The webhook Deployment and what surrounds it: settings passed to the server, TLS files,
probes, the restricted Pod Security Standard on every pod, Service, PodDisruptionBudget,
topology spread, NetworkPolicy, ServiceMonitor and ServiceAccount."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
import yaml

from tests.chart.render import (
    CHART_DIR,
    EVERYTHING_ON,
    FULLNAME,
    MODE_VALUES,
    NAMESPACE,
    Chart,
    Obj,
    env,
    of_kind,
    one,
    pod_templates,
    selects,
    webhook_container,
)

APP_VERSION = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))["appVersion"]

ENV_CASES = [
    # (values, variable, expected value)
    ((), "SHM_WEBHOOK_DEFAULT_SIZE", ""),
    (("defaultSize=1Gi",), "SHM_WEBHOOK_DEFAULT_SIZE", "1Gi"),
    (("defaultSize=25%",), "SHM_WEBHOOK_DEFAULT_SIZE", "25%"),
    ((), "SHM_WEBHOOK_MAX_SIZE", ""),
    (("maxSize=64Gi",), "SHM_WEBHOOK_MAX_SIZE", "64Gi"),
    ((), "SHM_WEBHOOK_MEMORY_POLICY", "default-container"),
    (("memoryPolicy=all",), "SHM_WEBHOOK_MEMORY_POLICY", "all"),
    ((), "SHM_WEBHOOK_ON_INVALID", "deny"),
    (("onInvalid=warn",), "SHM_WEBHOOK_ON_INVALID", "warn"),
    ((), "SHM_WEBHOOK_ANNOTATION", "shm-size"),
    (("annotation=example.com/shm",), "SHM_WEBHOOK_ANNOTATION", "example.com/shm"),
    ((), "SHM_WEBHOOK_VOLUME_NAME", "dshm"),
    (("volumeName=shm",), "SHM_WEBHOOK_VOLUME_NAME", "shm"),
    ((), "SHM_WEBHOOK_MOUNT_PATH", "/dev/shm"),
    (("mountPath=/shm",), "SHM_WEBHOOK_MOUNT_PATH", "/shm"),
    ((), "SHM_WEBHOOK_LOG_LEVEL", "info"),
    (("logLevel=debug",), "SHM_WEBHOOK_LOG_LEVEL", "debug"),
    ((), "SHM_WEBHOOK_SHUTDOWN_GRACE", "5"),
    (("shutdownGrace=20",), "SHM_WEBHOOK_SHUTDOWN_GRACE", "20"),
    ((), "SHM_WEBHOOK_PORT", "8443"),
    ((), "SHM_WEBHOOK_METRICS_PORT", "9090"),
    (("metrics.port=9100",), "SHM_WEBHOOK_METRICS_PORT", "9100"),
    (("metrics.enabled=false",), "SHM_WEBHOOK_METRICS_PORT", "0"),
]


def env_id(values: tuple[str, ...], variable: str, expected: str) -> str:
    return f"{variable} is {expected!r} with {' and '.join(values) or 'the defaults'}"


@pytest.mark.parametrize(
    ("values", "variable", "expected"), [pytest.param(*c, id=env_id(*c)) for c in ENV_CASES]
)
def test_each_setting_reaches_the_server_as_its_environment_variable(
    chart: Chart, values: tuple[str, ...], variable: str, expected: str
) -> None:
    assert env(chart.render(*values))[variable] == expected


def test_the_server_runs_serve(chart: Chart) -> None:
    assert webhook_container(chart.render())["args"] == ["serve"]


def secret_of_mode(objects: list[Obj], mode: str) -> str:
    """The Secret the chart's certificate source fills, found independently of the Deployment."""
    if mode == "manual":
        return "my-webhook-tls"
    if mode == "certManager":
        return str(one(objects, "Certificate", FULLNAME)["spec"]["secretName"])
    args = one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    argv = args["containers"][0]["args"]
    return str(argv[argv.index("--secret") + 1])


@pytest.mark.parametrize(
    "mode",
    [pytest.param(m, id=f"{m} mode: the server reads the mounted Secret") for m in MODE_VALUES],
)
def test_tls_files_come_from_the_mounted_secret(chart: Chart, mode: str) -> None:
    objects = chart.render(*MODE_VALUES[mode])
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    variables = env(objects)
    cert = PurePosixPath(variables["SHM_WEBHOOK_TLS_CERT_FILE"])
    key = PurePosixPath(variables["SHM_WEBHOOK_TLS_KEY_FILE"])
    assert cert.parent == key.parent == PurePosixPath("/etc/shm-webhook/tls")
    (mount,) = [
        m for m in webhook_container(objects)["volumeMounts"] if m["mountPath"] == str(cert.parent)
    ]
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == secret_of_mode(objects, mode)
    assert volume["secret"]["optional"] is False
    assert volume["secret"]["defaultMode"] == 0o440  # readable through fsGroup, never written
    paths = {item["path"]: item["key"] for item in volume["secret"]["items"]}
    assert paths == {cert.name: "tls.crt", key.name: "tls.key"}


def test_probes_are_https_on_the_webhook_port(chart: Chart) -> None:
    webhook = webhook_container(chart.render())
    ports = {p["name"]: p["containerPort"] for p in webhook["ports"]}
    assert ports["https"] == 8443
    probes = (
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
    )
    for probe, path in probes:
        get = webhook[probe]["httpGet"]
        assert (get["path"], get["scheme"], ports[get["port"]]) == (path, "HTTPS", 8443)


def test_a_start_up_probe_holds_the_other_probes_until_the_server_listens(chart: Chart) -> None:
    # `serve` takes ~0.5 s of CPU to listen (docs/reliability.md, "Start-up"): probed from 1 s
    # on, every second, no probe fails on a node with a core to spare and readiness follows
    # within a second; 30 s before a restart covers the ~10 s a start takes at 50m of CPU.
    webhook = webhook_container(chart.render())
    startup = webhook["startupProbe"]
    assert (startup["initialDelaySeconds"], startup["periodSeconds"]) == (1, 1)
    assert startup["failureThreshold"] == 30
    # The start-up probe gates the others: no delay of their own.
    assert "initialDelaySeconds" not in webhook["readinessProbe"]
    assert "initialDelaySeconds" not in webhook["livenessProbe"]


@pytest.mark.parametrize(
    ("grace", "period"),
    [
        pytest.param(5, 115, id="the default 5 s grace gives pods 115 s to stop"),
        pytest.param(0, 110, id="no grace still leaves the kube-apiserver's 90 s idle timeout"),
        pytest.param(30, 140, id="a 30 s grace gives pods 140 s to stop"),
    ],
)
def test_termination_grace_covers_the_shutdown_grace(chart: Chart, grace: int, period: int) -> None:
    objects = chart.render(f"shutdownGrace={grace}")
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == period
    assert "lifecycle" not in webhook_container(objects)


def test_default_resources(chart: Chart) -> None:
    assert webhook_container(chart.render())["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "192Mi"},
    }


DIGEST = "sha256:" + "0123456789abcdef" * 4

IMAGE_CASES = [
    pytest.param(
        (),
        f"ghcr.io/shm-webhook/shm-webhook:{APP_VERSION}",
        id="the published image, its tag defaulting to appVersion",
    ),
    pytest.param(
        ("image.registry=registry.example:5000", "image.repository=ml/shm", "image.tag=1.2.3"),
        "registry.example:5000/ml/shm:1.2.3",
        id="registry, repository and tag are configurable",
    ),
    pytest.param(
        (f"image.digest={DIGEST}",),
        f"ghcr.io/shm-webhook/shm-webhook:{APP_VERSION}@{DIGEST}",
        id="a digest follows the tag",
    ),
    pytest.param(
        ("global.imageRegistry=mirror.example", "image.registry=registry.example"),
        f"mirror.example/shm-webhook/shm-webhook:{APP_VERSION}",
        id="global.imageRegistry overrides image.registry",
    ),
    pytest.param(
        ("image.registry=", "image.repository=shm-webhook"),
        f"shm-webhook:{APP_VERSION}",
        id="an empty registry leaves the repository alone (a locally loaded image)",
    ),
]


@pytest.mark.parametrize(("values", "image"), IMAGE_CASES)
def test_image_of_every_pod(chart: Chart, values: tuple[str, ...], image: str) -> None:
    """One reference for the webhook, the certificate Jobs and the test pod."""
    objects = chart.render(*values, "image.pullPolicy=Always")
    templates = list(pod_templates(objects))
    kinds = {where.split("/")[0] for where, _ in templates}
    assert kinds == {"Deployment", "Job", "CronJob", "Pod"}
    for where, template in templates:
        for c in template["spec"]["containers"]:
            assert (c["image"], c["imagePullPolicy"]) == (image, "Always"), where


# Every pod the chart can make, in each TLS mode, with the test pod switched on.
ALL_PODS = [pytest.param(MODE_VALUES[mode], id=f"every pod in {mode} mode") for mode in MODE_VALUES]


@pytest.mark.parametrize("values", ALL_PODS)
def test_every_pod_meets_the_restricted_pod_security_standard(
    chart: Chart, values: tuple[str, ...]
) -> None:
    templates = list(pod_templates(chart.render(*values)))
    assert len(templates) >= 2  # the Deployment and the test pod at least
    for where, template in templates:
        spec = template["spec"]
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (
            65532,
            65532,
            65532,
        ), where
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(field), where
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            own = c["securityContext"]
            assert own["allowPrivilegeEscalation"] is False, where
            assert own["capabilities"] == {"drop": ["ALL"]}, where
            assert own["readOnlyRootFilesystem"] is True, where
            assert "privileged" not in own, where
            assert own.get("runAsUser", 65532) != 0, where


def test_pods_that_run_python_get_a_writable_tmp(chart: Chart) -> None:
    for where, template in pod_templates(chart.render()):
        spec = template["spec"]
        (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == "/tmp"]
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        assert "emptyDir" in volume, where


def test_webhook_pods_get_no_api_token(chart: Chart) -> None:
    objects = chart.render()
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    account = one(objects, "ServiceAccount", spec["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    ("values", "name", "created"),
    [
        pytest.param((), FULLNAME, True, id="a ServiceAccount named after the release by default"),
        pytest.param(
            ("serviceAccount.name=shm",), "shm", True, id="a created ServiceAccount can be named"
        ),
        pytest.param(
            ("serviceAccount.create=false",), "default", False, id="not created: the default one"
        ),
        pytest.param(
            ("serviceAccount.create=false", "serviceAccount.name=existing"),
            "existing",
            False,
            id="not created: an existing one by name",
        ),
    ],
)
def test_service_account(chart: Chart, values: tuple[str, ...], name: str, created: bool) -> None:
    objects = chart.render(*values, "serviceAccount.annotations.owner=ml")
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == name
    accounts = [a for a in of_kind(objects, "ServiceAccount") if a["metadata"]["name"] == name]
    assert len(accounts) == int(created)
    if created:
        assert accounts[0]["metadata"]["annotations"] == {"owner": "ml"}


def test_service_selects_only_the_webhook_pods(chart: Chart) -> None:
    objects = chart.render(*EVERYTHING_ON)
    selector = {"matchLabels": one(objects, "Service")["spec"]["selector"]}
    selected = [
        where for where, t in pod_templates(objects) if selects(selector, t["metadata"]["labels"])
    ]
    assert selected == [f"Deployment/{FULLNAME}"]
    assert one(objects, "Deployment")["spec"]["selector"] == selector


@pytest.mark.parametrize(
    ("values", "ports"),
    [
        pytest.param(
            (), {"https": (443, "https"), "metrics": (9090, "metrics")}, id="https and metrics"
        ),
        pytest.param(
            ("metrics.enabled=false",), {"https": (443, "https")}, id="no metrics port when off"
        ),
    ],
)
def test_service_ports(
    chart: Chart, values: tuple[str, ...], ports: dict[str, tuple[int, str]]
) -> None:
    objects = chart.render(*values)
    service = one(objects, "Service")
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == ports
    container_ports = {p["name"] for p in webhook_container(objects)["ports"]}
    assert container_ports == set(ports)


@pytest.mark.parametrize(
    ("values", "min_available"),
    [
        pytest.param((), 1, id="a budget keeping one pod with the default two replicas"),
        pytest.param(
            ("replicaCount=3", "podDisruptionBudget.minAvailable=2"),
            2,
            id="minAvailable 2 of three replicas",
        ),
        pytest.param(
            ("podDisruptionBudget.minAvailable=50%",), "50%", id="minAvailable as a percentage"
        ),
        pytest.param(("replicaCount=1",), None, id="no budget for a single replica"),
        pytest.param(("podDisruptionBudget.enabled=false",), None, id="no budget when disabled"),
    ],
)
def test_pod_disruption_budget(
    chart: Chart, values: tuple[str, ...], min_available: int | str | None
) -> None:
    objects = chart.render(*values)
    budgets = of_kind(objects, "PodDisruptionBudget")
    if min_available is None:
        assert budgets == []
        return
    (budget,) = budgets
    assert budget["spec"]["minAvailable"] == min_available
    assert budget["spec"]["selector"] == one(objects, "Deployment")["spec"]["selector"]


def test_replicas_and_rolling_update_keep_the_webhook_up(chart: Chart) -> None:
    spec = one(chart.render(), "Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_pods_are_spread_across_nodes(chart: Chart) -> None:
    deployment = one(chart.render(), "Deployment")
    (spread,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert (spread["maxSkew"], spread["whenUnsatisfiable"]) == (1, "ScheduleAnyway")
    assert spread["labelSelector"] == deployment["spec"]["selector"]


def test_scheduling_and_metadata_values_reach_the_pods(chart: Chart) -> None:
    objects = chart.render(*EVERYTHING_ON, "affinity.nodeAffinity.x=y")
    template = one(objects, "Deployment")["spec"]["template"]
    spec = template["spec"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert spec["affinity"] == {"nodeAffinity": {"x": "y"}}
    assert template["metadata"]["annotations"] == {"team": "ml"}
    assert template["metadata"]["labels"]["team"] == "ml"


def test_no_priority_class_by_default(chart: Chart) -> None:
    assert "priorityClassName" not in one(chart.render(), "Deployment")["spec"]["template"]["spec"]


def test_pod_labels_cannot_break_the_selector_or_opt_the_webhook_in(chart: Chart) -> None:
    objects = chart.render(
        "podLabels.app\\.kubernetes\\.io/component=other", "podLabels.shm-injection=enabled"
    )
    deployment = one(objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"], labels)
    assert labels["shm-injection"] == "disabled"


@pytest.mark.parametrize(
    ("values", "metrics_from"),
    [
        pytest.param(
            ("networkPolicy.enabled=true",), None, id="metrics closed without metricsFrom"
        ),
        pytest.param(
            (
                "networkPolicy.enabled=true",
                "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring",
            ),
            [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}],
            id="metrics open to metricsFrom",
        ),
        pytest.param(
            (
                "networkPolicy.enabled=true",
                "metrics.enabled=false",
                "networkPolicy.metricsFrom[0].podSelector.matchLabels.app=prometheus",
            ),
            None,
            id="no metrics rule when metrics are off",
        ),
    ],
)
def test_network_policy(
    chart: Chart, values: tuple[str, ...], metrics_from: list[Obj] | None
) -> None:
    objects = chart.render(*values)
    policy = one(objects, "NetworkPolicy")
    assert policy["spec"]["podSelector"] == one(objects, "Deployment")["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    webhook_rule, *metrics_rules = policy["spec"]["ingress"]
    assert "from" not in webhook_rule  # the API server's address cannot be selected
    assert webhook_rule["ports"] == [{"port": 8443, "protocol": "TCP"}]
    if metrics_from is None:
        assert metrics_rules == []
    else:
        assert metrics_rules == [
            {"from": metrics_from, "ports": [{"port": 9090, "protocol": "TCP"}]}
        ]


def test_no_network_policy_by_default(chart: Chart) -> None:
    assert of_kind(chart.render(), "NetworkPolicy") == []


@pytest.mark.parametrize(
    ("values", "created"),
    [
        pytest.param((), False, id="no ServiceMonitor by default"),
        pytest.param(
            ("metrics.serviceMonitor.enabled=true",), True, id="a ServiceMonitor when enabled"
        ),
        pytest.param(
            ("metrics.serviceMonitor.enabled=true", "metrics.enabled=false"),
            False,
            id="no ServiceMonitor when metrics are off",
        ),
    ],
)
def test_service_monitor_toggle(chart: Chart, values: tuple[str, ...], created: bool) -> None:
    assert len(of_kind(chart.render(*values), "ServiceMonitor")) == int(created)


def test_service_monitor_scrapes_the_metrics_port_of_the_service(chart: Chart) -> None:
    objects = chart.render(
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.interval=15s",
        "metrics.serviceMonitor.labels.release=prom",
    )
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (endpoint["port"], endpoint["interval"], endpoint["scheme"]) == (
        "metrics",
        "15s",
        "http",
    )
