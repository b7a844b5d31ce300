"""TLS set-up (SPEC §6) in its three modes: the bootstrap Jobs, their hook ordering and
least-privilege RBAC; cert-manager's CA chain and injection; the user's Secret and bundle."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.render import (
    FAKE_CA_BUNDLE,
    FAKE_CA_PEM,
    FULLNAME,
    MODE_VALUES,
    NAMESPACE,
    Chart,
    Obj,
    allows,
    delete_policies,
    hook_events,
    hook_weight,
    of_kind,
    one,
    rules_for,
    webhook,
)

SECRET = f"{FULLNAME}-tls"
PRE_JOB = f"{FULLNAME}-certs-secret"
POST_JOB = f"{FULLNAME}-certs-ca-bundle"
CRONJOB = f"{FULLNAME}-certs"
PRE_IDENTITY = f"{FULLNAME}-certs-hook"
IDENTITY = f"{FULLNAME}-certs"


def job_pod_spec(obj: Obj) -> Obj:
    spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def bootstrap_flags(obj: Obj) -> dict[str, Any]:
    """`certs bootstrap` flags of a Job or CronJob: --flag value, or True for a bare flag."""
    (certs,) = job_pod_spec(obj)["containers"]
    argv = certs["args"]
    assert argv[:2] == ["certs", "bootstrap"]
    flags: dict[str, Any] = {}
    rest = argv[2:]
    while rest:
        flag, *rest = rest
        assert flag.startswith("--"), argv
        if rest and not rest[0].startswith("--"):
            flags[flag], *rest = rest
        else:
            flags[flag] = True
    return flags


def certs_workloads(objects: list[Obj]) -> list[Obj]:
    return [*of_kind(objects, "Job"), *of_kind(objects, "CronJob")]


@pytest.mark.parametrize(
    ("mode", "workloads"),
    [
        pytest.param(
            "bootstrap",
            {("Job", PRE_JOB), ("Job", POST_JOB), ("CronJob", CRONJOB)},
            id="bootstrap mode runs a pre hook Job, a post hook Job and a renewal CronJob",
        ),
        pytest.param("certManager", set(), id="certManager mode runs no Job"),
        pytest.param("manual", set(), id="manual mode runs no Job"),
    ],
)
def test_certificate_workloads_per_mode(chart: Chart, mode: str, workloads: set[Any]) -> None:
    objects = chart.render(*MODE_VALUES[mode])
    found = {(o["kind"], o["metadata"]["name"]) for o in certs_workloads(objects)}
    assert found == workloads


COMMON_FLAGS = {
    "--secret": SECRET,
    "--namespace": NAMESPACE,
    "--service": FULLNAME,
    "--webhook-config": FULLNAME,
}


@pytest.mark.parametrize(
    ("kind", "name", "flags"),
    [
        pytest.param(
            "Job",
            PRE_JOB,
            {**COMMON_FLAGS, "--skip-ca-bundle": True},
            id="the pre hook only makes the Secret: the configuration does not exist yet",
        ),
        pytest.param(
            "Job",
            POST_JOB,
            COMMON_FLAGS,
            id="the post hook writes the CA bundle into the configuration",
        ),
        pytest.param(
            "CronJob", CRONJOB, COMMON_FLAGS, id="the CronJob renews and rewrites the bundle"
        ),
    ],
)
def test_bootstrap_command_line(chart: Chart, kind: str, name: str, flags: dict[str, Any]) -> None:
    assert bootstrap_flags(one(chart.render(), kind, name)) == flags


def test_bootstrap_flags_name_the_release_objects(chart: Chart) -> None:
    objects = chart.render()
    flags = bootstrap_flags(one(objects, "CronJob"))
    assert flags["--service"] == one(objects, "Service")["metadata"]["name"]
    configuration = one(objects, "MutatingWebhookConfiguration")
    assert flags["--webhook-config"] == configuration["metadata"]["name"]
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert flags["--secret"] in {v["secret"]["secretName"] for v in volumes if "secret" in v}


@pytest.mark.parametrize(
    ("name", "events"),
    [
        pytest.param(
            PRE_JOB,
            ["pre-install", "pre-upgrade", "pre-rollback"],
            id="the Secret Job runs before Helm creates or updates the release objects",
        ),
        pytest.param(
            POST_JOB,
            ["post-install", "post-upgrade", "post-rollback"],
            id="the CA bundle Job runs once the webhook configuration exists",
        ),
    ],
)
def test_hook_jobs_phases_and_delete_policy(chart: Chart, name: str, events: list[str]) -> None:
    job = one(chart.render(), "Job", name)
    assert hook_events(job) == events
    assert delete_policies(job) == {"before-hook-creation", "hook-succeeded"}


def identity_objects(objects: list[Obj], service_account: str) -> list[Obj]:
    """The ServiceAccount, its bindings and their roles."""
    needed = [one(objects, "ServiceAccount", service_account)]
    for binding in [*of_kind(objects, "RoleBinding"), *of_kind(objects, "ClusterRoleBinding")]:
        if any(s["name"] == service_account for s in binding["subjects"]):
            ref = binding["roleRef"]
            needed += [binding, one(objects, ref["kind"], ref["name"])]
    return needed


def test_every_hook_job_identity_exists_when_the_job_runs(chart: Chart) -> None:
    """A pre hook runs before any release object exists: its identity must be hooks of the
    same phase with a lower weight. A post hook may also use release objects."""
    objects = chart.render()
    jobs = [job for job in of_kind(objects, "Job") if hook_events(job)]
    assert jobs
    for job in jobs:
        job_name = job["metadata"]["name"]
        needed = identity_objects(objects, job_pod_spec(job)["serviceAccountName"])
        assert len(needed) >= 3, "a ServiceAccount, a binding and a role at least"
        for event in hook_events(job):
            for obj in needed:
                where = f"{obj['kind']}/{obj['metadata']['name']} for {event} of {job_name}"
                if event.startswith("post-") and not hook_events(obj):
                    continue  # a release object: created before post hooks run
                assert event in hook_events(obj), where
                assert hook_weight(obj) < hook_weight(job), where


def test_the_renewal_identity_lives_as_long_as_the_release(chart: Chart) -> None:
    """The CronJob runs any day: its identity is made of release objects, never hooks (Helm
    does not delete hook objects on uninstall, and deletes succeeded ones)."""
    objects = chart.render()
    account = job_pod_spec(one(objects, "CronJob"))["serviceAccountName"]
    for obj in identity_objects(objects, account):
        assert hook_events(obj) == [], f"{obj['kind']}/{obj['metadata']['name']}"


def test_hook_objects_never_share_a_name_with_release_objects(chart: Chart) -> None:
    """On upgrade Helm creates hooks while the release objects exist: same kind and name
    would fail with AlreadyExists."""
    objects = chart.render(*MODE_VALUES["bootstrap"])
    hooks = {(o["kind"], o["metadata"]["name"]) for o in objects if hook_events(o)}
    release = {(o["kind"], o["metadata"]["name"]) for o in objects if not hook_events(o)}
    assert hooks
    assert hooks.isdisjoint(release)


def test_pre_hook_identity_is_deleted_once_the_hooks_succeed(chart: Chart) -> None:
    objects = chart.render()
    for obj in identity_objects(objects, PRE_IDENTITY):
        assert delete_policies(obj) == {"before-hook-creation", "hook-succeeded"}


SECRETS = ("", "secrets")
CONFIGS = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
VALIDATING = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")
SERVICES = ("", "services")
ENDPOINT_SLICES = ("discovery.k8s.io", "endpointslices")
LIST_ENDPOINT_SLICES = {
    "apiGroups": ["discovery.k8s.io"],
    "resources": ["endpointslices"],
    "verbs": ["list"],
}
RBAC_CASES = [
    # (identity, verb, (API group, resource), object name or "" for a collection, allowed)
    (PRE_IDENTITY, "create", SECRETS, SECRET, True),
    (PRE_IDENTITY, "get", SECRETS, SECRET, True),
    (PRE_IDENTITY, "update", SECRETS, SECRET, True),
    (PRE_IDENTITY, "patch", SECRETS, SECRET, True),
    (PRE_IDENTITY, "get", SECRETS, "someone-elses", False),
    (PRE_IDENTITY, "list", SECRETS, "", False),
    (PRE_IDENTITY, "delete", SECRETS, SECRET, False),
    (PRE_IDENTITY, "get", CONFIGS, FULLNAME, False),
    (PRE_IDENTITY, "patch", CONFIGS, FULLNAME, False),
    (IDENTITY, "create", SECRETS, SECRET, True),
    (IDENTITY, "get", SECRETS, SECRET, True),
    (IDENTITY, "update", SECRETS, SECRET, True),
    (IDENTITY, "patch", SECRETS, SECRET, True),
    (IDENTITY, "get", SECRETS, "someone-elses", False),
    (IDENTITY, "patch", SECRETS, "someone-elses", False),
    (IDENTITY, "list", SECRETS, "", False),
    (IDENTITY, "watch", SECRETS, "", False),
    (IDENTITY, "delete", SECRETS, SECRET, False),
    (IDENTITY, "get", CONFIGS, FULLNAME, True),
    (IDENTITY, "patch", CONFIGS, FULLNAME, True),
    (IDENTITY, "patch", CONFIGS, "someone-elses", False),
    (IDENTITY, "update", CONFIGS, FULLNAME, False),
    (IDENTITY, "delete", CONFIGS, FULLNAME, False),
    (IDENTITY, "list", CONFIGS, "", False),
    (IDENTITY, "patch", VALIDATING, FULLNAME, False),
    # Asking the pods what they serve before forgetting an old CA (certs.endpoints).
    (IDENTITY, "get", SERVICES, FULLNAME, True),
    (IDENTITY, "get", SERVICES, "someone-elses", False),
    (IDENTITY, "list", SERVICES, "", False),
    (IDENTITY, "list", ENDPOINT_SLICES, "", True),
    (IDENTITY, "watch", ENDPOINT_SLICES, "", False),
    (IDENTITY, "update", ENDPOINT_SLICES, "", False),
    (PRE_IDENTITY, "get", SERVICES, FULLNAME, False),
    (PRE_IDENTITY, "list", ENDPOINT_SLICES, "", False),
]


def rbac_id(identity: str, verb: str, kind: tuple[str, str], name: str, allowed: bool) -> str:
    who = "the pre hook" if identity == PRE_IDENTITY else "the CA bundle Job and the CronJob"
    what = f"{kind[1]} named {name}" if name else f"all {kind[1]}"
    return f"{who} {'may' if allowed else 'may not'} {verb} {what}"


@pytest.mark.parametrize(
    ("identity", "verb", "kind", "name", "allowed"),
    [pytest.param(*case, id=rbac_id(*case)) for case in RBAC_CASES],
)
def test_least_privilege(
    chart: Chart, identity: str, verb: str, kind: tuple[str, str], name: str, allowed: bool
) -> None:
    rules = rules_for(chart.render(), identity)
    group, resource = kind
    assert allows(rules, verb=verb, resource=resource, group=group, name=name) is allowed


def test_rbac_has_no_wildcard_and_names_every_object_it_can(chart: Chart) -> None:
    objects = chart.render()
    roles = [*of_kind(objects, "Role"), *of_kind(objects, "ClusterRole")]
    assert len(roles) == 3
    for role in roles:
        for rule in role["rules"]:
            assert "*" not in str(rule), role["metadata"]["name"]
            # `create` is authorized before the object has a name, and EndpointSlice names are
            # generated (`list` cannot name them); everything else is named.
            unnamed = rule["verbs"] == ["create"] or rule == LIST_ENDPOINT_SLICES
            assert rule.get("resourceNames") or unnamed, rule
            assert set(rule["verbs"]) <= {"create", "get", "update", "patch", "list"}, rule
            assert "list" not in rule["verbs"] or rule == LIST_ENDPOINT_SLICES, rule


def test_bootstrap_mode_renders_no_certificate_and_no_bundle(chart: Chart) -> None:
    objects = chart.render()
    assert of_kind(objects, "Secret") == []
    configuration = one(objects, "MutatingWebhookConfiguration")
    assert "caBundle" not in webhook(objects)["clientConfig"]
    assert "cert-manager.io/inject-ca-from" not in (
        configuration["metadata"].get("annotations") or {}
    )


def test_renewal_cronjob_schedule_and_concurrency(chart: Chart) -> None:
    cronjob = one(chart.render("tls.bootstrap.schedule=0 4 * * 1"), "CronJob")
    assert cronjob["spec"]["schedule"] == "0 4 * * 1"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


def test_certificate_job_pods_are_never_sent_to_the_webhook(chart: Chart) -> None:
    objects = chart.render()
    for workload in certs_workloads(objects):
        spec = (
            workload["spec"]["jobTemplate"]["spec"]
            if workload["kind"] == "CronJob"
            else workload["spec"]
        )
        assert spec["template"]["metadata"]["labels"]["shm-injection"] == "disabled"
        assert job_pod_spec(workload)["automountServiceAccountToken"] is True  # they call the API


def test_cert_manager_ca_chain(chart: Chart) -> None:
    objects = chart.render(*MODE_VALUES["certManager"])
    issuers = {i["metadata"]["name"]: i["spec"] for i in of_kind(objects, "Issuer")}
    certificates = {c["metadata"]["name"]: c["spec"] for c in of_kind(objects, "Certificate")}
    serving = certificates[FULLNAME]
    ca_issuer = issuers[serving["issuerRef"]["name"]]
    (ca,) = [c for c in certificates.values() if c.get("isCA")]
    assert ca_issuer == {"ca": {"secretName": ca["secretName"]}}
    assert issuers[ca["issuerRef"]["name"]] == {"selfSigned": {}}
    assert serving["secretName"] == SECRET
    assert serving["dnsNames"] == [
        FULLNAME,
        f"{FULLNAME}.{NAMESPACE}",
        f"{FULLNAME}.{NAMESPACE}.svc",
        f"{FULLNAME}.{NAMESPACE}.svc.cluster.local",
    ]
    assert "server auth" in serving["usages"]
    for obj in [*of_kind(objects, "Issuer"), *of_kind(objects, "Certificate")]:
        assert obj["apiVersion"] == "cert-manager.io/v1"
        assert obj["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize(
    ("values", "duration", "renew_before", "ca_duration"),
    [
        pytest.param(
            (), "2160h", "720h", "43800h", id="90-day certificates on a 5-year CA by default"
        ),
        pytest.param(
            (
                "tls.certManager.duration=720h",
                "tls.certManager.renewBefore=240h",
                "tls.certManager.caDuration=8760h",
            ),
            "720h",
            "240h",
            "8760h",
            id="lifetimes are configurable",
        ),
    ],
)
def test_cert_manager_lifetimes(
    chart: Chart, values: tuple[str, ...], duration: str, renew_before: str, ca_duration: str
) -> None:
    objects = chart.render(*MODE_VALUES["certManager"], *values)
    certificates = {c["metadata"]["name"]: c["spec"] for c in of_kind(objects, "Certificate")}
    serving = certificates.pop(FULLNAME)
    (ca,) = certificates.values()
    assert (serving["duration"], serving["renewBefore"], ca["duration"]) == (
        duration,
        renew_before,
        ca_duration,
    )


def test_cert_manager_injects_the_serving_certificate_ca(chart: Chart) -> None:
    objects = chart.render(*MODE_VALUES["certManager"])
    annotations = one(objects, "MutatingWebhookConfiguration")["metadata"]["annotations"]
    namespace, name = annotations["cert-manager.io/inject-ca-from"].split("/")
    assert one(objects, "Certificate", name)["metadata"]["namespace"] == namespace == NAMESPACE
    assert "caBundle" not in webhook(objects)["clientConfig"]
    assert of_kind(objects, "Secret") == []


def test_manual_mode_uses_the_given_secret_and_bundle(chart: Chart) -> None:
    objects = chart.render(*MODE_VALUES["manual"])
    assert webhook(objects)["clientConfig"]["caBundle"] == FAKE_CA_BUNDLE
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert "my-webhook-tls" in {v["secret"]["secretName"] for v in volumes if "secret" in v}
    kinds = {o["kind"] for o in objects}
    assert kinds.isdisjoint(
        {"Secret", "Issuer", "Certificate", "Job", "CronJob", "Role", "ClusterRole"}
    )


MANUAL_ERRORS = [
    pytest.param(
        ("tls.mode=manual", f"tls.caBundle={FAKE_CA_BUNDLE}"),
        "tls.existingSecret is required",
        id="manual mode without existingSecret fails naming it",
    ),
    pytest.param(
        ("tls.mode=manual", "tls.existingSecret=my-webhook-tls"),
        "tls.caBundle is required",
        id="manual mode without caBundle fails naming it",
    ),
    pytest.param(
        ("tls.mode=manual", "tls.existingSecret=my-webhook-tls", "tls.caBundle=aGVsbG8K"),
        "tls.caBundle must be base64 of a PEM CA certificate",
        id="manual mode with base64 of something else than a PEM certificate fails",
    ),
    pytest.param(
        (
            "tls.mode=manual",
            "tls.existingSecret=my-webhook-tls",
            f"tls.caBundle={FAKE_CA_PEM.splitlines()[0]}",
        ),
        "/tls/caBundle",
        id="manual mode with PEM text instead of base64 fails the schema",
    ),
]


@pytest.mark.parametrize(("values", "message"), MANUAL_ERRORS)
def test_manual_mode_requires_its_values(
    chart: Chart, values: tuple[str, ...], message: str
) -> None:
    assert message in chart.error(*values)
