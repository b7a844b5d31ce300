"""The Secret and caBundle lifecycle, through the real kubernetes client and a fake apiserver.

Every scenario pins `now`: the fake apiserver does not look at certificate dates, so time can
jump years ahead between two bootstrap runs.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client

from certs.cabundle import patch_ca_bundle, read_trusted
from certs.errors import PublishError
from certs.generate import Bundle, dns_names, generate_bundle, issue_serving_cert
from certs.publish import (
    SecretPlan,
    SecretResult,
    SecretSpec,
    apply_secret,
    decide_secret,
    ensure_secret,
)
from certs.renewal import needs_renewal
from certs.trust import fingerprint
from tests.certs.fake_apiserver import (
    JSON_PATCH,
    FakeApiServer,
    config_path,
    secret_path,
    secrets_path,
    serve,
    tls_secret,
    webhook_configuration,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
YEAR = timedelta(days=365)
NAMESPACE, SECRET, SERVICE, CONFIG = "tools", "shm-webhook-tls", "shm-webhook", "shm-webhook"
WEBHOOKS = ("pods.shm-webhook.io", "pods-kube-system.shm-webhook.io")


class FakeClock:
    """`clock` and `sleep` for patch_ca_bundle: sleeping only moves this clock on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def api(fake: FakeApiServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[client.ApiClient]:
    # The client takes proxies from the environment; the fake is local.
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")
    with serve(fake) as url, client.ApiClient(client.Configuration(host=url)) as api_client:
        yield api_client


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def admission(api: client.ApiClient) -> client.AdmissionregistrationV1Api:
    return client.AdmissionregistrationV1Api(api)


SPEC = SecretSpec(namespace=NAMESPACE, name=SECRET, service=SERVICE)


def _ensure(core: client.CoreV1Api, now: datetime) -> SecretResult:
    return ensure_secret(core, SPEC, now=now)


def _patch(
    admission: client.AdmissionregistrationV1Api,
    ca_pem: bytes,
    *,
    now: datetime,
    clock: FakeClock | None = None,
) -> int:
    clock = clock or FakeClock()
    return patch_ca_bundle(
        admission,
        webhook_config=CONFIG,
        ca_bundle_pem=ca_pem,
        now=now,
        timeout=30,
        sleep=clock.sleep,
        clock=clock,
    )


def _config(*, names: tuple[str, ...] = WEBHOOKS, ca_bundle: bytes | None = None) -> dict[str, Any]:
    return webhook_configuration(
        CONFIG, service=SERVICE, namespace=NAMESPACE, webhooks=names, ca_bundle=ca_bundle
    )


def _secret(files: Mapping[str, bytes], *, note: str = "") -> dict[str, Any]:
    return tls_secret(SECRET, namespace=NAMESPACE, files=files, note=note)


def _files(bundle: Bundle) -> dict[str, bytes]:
    return {
        "ca.crt": bundle.ca_cert_pem,
        "ca.key": bundle.ca_key_pem,
        "tls.crt": bundle.cert_pem,
        "tls.key": bundle.key_pem,
    }


def _outliving_its_ca(bundle: Bundle) -> dict[str, bytes]:
    """The bundle's files with a serving certificate from a month before to a year after the CA
    expires, as a tool other than ours may sign (ours caps a certificate at its CA's notAfter)."""
    ca = x509.load_pem_x509_certificate(bundle.ca_cert_pem)
    ca_key = serialization.load_pem_private_key(bundle.ca_key_pem, password=None)
    key = serialization.load_pem_private_key(bundle.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    names = [x509.DNSName(name) for name in dns_names(service=SERVICE, namespace=NAMESPACE)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ca.not_valid_after_utc - 30 * DAY)
        .not_valid_after(ca.not_valid_after_utc + YEAR)
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return _files(bundle) | {"tls.crt": cert.public_bytes(serialization.Encoding.PEM)}


def _bundle(now: datetime) -> Bundle:
    return generate_bundle(service=SERVICE, namespace=NAMESPACE, now=now)


def _stored_files(fake: FakeApiServer) -> dict[str, bytes]:
    secret = fake.get(secret_path(NAMESPACE, SECRET))
    assert secret is not None
    return {key: base64.b64decode(value) for key, value in secret["data"].items()}


def _stored_version(fake: FakeApiServer) -> str:
    secret = fake.get(secret_path(NAMESPACE, SECRET))
    assert secret is not None
    return str(secret["metadata"]["resourceVersion"])


def _trusted(fake: FakeApiServer) -> list[list[bytes]]:
    """Per webhook, the DER of each CA in its caBundle, in order."""
    config = fake.get(config_path(CONFIG))
    assert config is not None
    return [
        [
            ca.public_bytes(serialization.Encoding.DER)
            for ca in x509.load_pem_x509_certificates(
                base64.b64decode(webhook["clientConfig"]["caBundle"])
            )
        ]
        for webhook in config["webhooks"]
    ]


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def _serves(files: Mapping[str, bytes], *, now: datetime) -> bool:
    names = dns_names(service=SERVICE, namespace=NAMESPACE)
    renew, _ = needs_renewal(
        cert_pem=files["tls.crt"],
        key_pem=files["tls.key"],
        ca_pem=files["ca.crt"],
        dns_names=names,
        now=now,
    )
    return not renew


def _install(
    fake: FakeApiServer,
    core: client.CoreV1Api,
    admission: client.AdmissionregistrationV1Api,
) -> SecretResult:
    fake.store(_config())
    result = _ensure(core, NOW)
    _patch(admission, result.ca_bundle_pem, now=NOW)
    return result


def test_first_install_creates_the_secret_and_trusts_its_ca_in_every_webhook(
    fake: FakeApiServer,
    core: client.CoreV1Api,
    admission: client.AdmissionregistrationV1Api,
) -> None:
    fake.store(_config())
    result = _ensure(core, NOW)

    assert result.action == "created"
    secret = fake.get(secret_path(NAMESPACE, SECRET))
    assert secret is not None
    assert secret["type"] == "kubernetes.io/tls"
    files = _stored_files(fake)
    assert set(files) == {"tls.crt", "tls.key", "ca.crt", "ca.key"}
    assert result.ca_bundle_pem == files["ca.crt"]
    assert _serves(files, now=NOW)

    assert _patch(admission, result.ca_bundle_pem, now=NOW) == len(WEBHOOKS)
    assert _trusted(fake) == [[_der(files["ca.crt"])]] * len(WEBHOOKS)
    patches = [r for r in fake.requests if r.method == "PATCH"]
    assert [r.content_type for r in patches] == [JSON_PATCH]


def test_a_rerun_keeps_everything_and_writes_nothing(
    fake: FakeApiServer,
    core: client.CoreV1Api,
    admission: client.AdmissionregistrationV1Api,
) -> None:
    _install(fake, core, admission)
    files, version = _stored_files(fake), _stored_version(fake)

    result = _ensure(core, NOW + 30 * DAY)
    assert result.action == "kept"
    assert result.reason.startswith("valid until")
    assert _patch(admission, result.ca_bundle_pem, now=NOW + 30 * DAY) == 0

    assert (fake.count("POST"), fake.count("PUT"), fake.count("PATCH")) == (1, 0, 1)
    assert (_stored_files(fake), _stored_version(fake)) == (files, version)


def test_a_serving_certificate_in_its_renew_window_is_reissued_from_the_same_ca(
    fake: FakeApiServer,
    core: client.CoreV1Api,
    admission: client.AdmissionregistrationV1Api,
) -> None:
    _install(fake, core, admission)
    before, version = _stored_files(fake), _stored_version(fake)
    later = NOW + 300 * DAY

    result = _ensure(core, later)

    assert result.action == "renewed"
    after = _stored_files(fake)
    assert (after["ca.crt"], after["ca.key"]) == (before["ca.crt"], before["ca.key"])
    assert after["tls.crt"] != before["tls.crt"]
    assert _serves(after, now=later)
    assert int(_stored_version(fake)) > int(version)
    assert _patch(admission, result.ca_bundle_pem, now=later) == 0, "same CA: nothing to patch"
    assert fake.count("PATCH") == 1


def test_a_ca_rotation_trusts_old_and_new_ca_until_the_old_one_expires(
    fake: FakeApiServer,
    core: client.CoreV1Api,
    admission: client.AdmissionregistrationV1Api,
) -> None:
    old_ca = _install(fake, core, admission).ca_bundle_pem
    rotation = NOW + 4 * YEAR

    rotated = _ensure(core, rotation)
    assert rotated.action == "rotated-ca"
    assert rotated.ca_bundle_pem != old_ca
    assert _serves(_stored_files(fake), now=rotation)
    assert _patch(admission, rotated.ca_bundle_pem, now=rotation) == len(WEBHOOKS)
    assert _trusted(fake) == [[_der(rotated.ca_bundle_pem), _der(old_ca)]] * len(WEBHOOKS)

    after_old_expiry = NOW + 5 * YEAR + DAY
    renewed = _ensure(core, after_old_expiry)
    assert renewed.action == "renewed"
    assert renewed.ca_bundle_pem == rotated.ca_bundle_pem
    assert _patch(admission, renewed.ca_bundle_pem, now=after_old_expiry) == len(WEBHOOKS)
    assert _trusted(fake) == [[_der(rotated.ca_bundle_pem)]] * len(WEBHOOKS)


@pytest.mark.parametrize(
    ("files", "now"),
    [
        pytest.param(
            lambda: {k: v for k, v in _files(_bundle(NOW)).items() if k != "ca.key"},
            NOW + 300 * DAY,
            id="a Secret without the CA key gets a new CA when its certificate is due",
        ),
        pytest.param(
            lambda: _files(_bundle(NOW)) | {"ca.crt": b"not a certificate"},
            NOW + DAY,
            id="a Secret with an unreadable CA gets a new CA",
        ),
        pytest.param(
            lambda: _files(_bundle(NOW)) | {"ca.key": _bundle(NOW).ca_key_pem},
            NOW + 300 * DAY,
            id="a Secret whose CA key is not the CA's gets a new CA when its certificate is due",
        ),
    ],
)
def test_a_ca_that_cannot_sign_is_replaced(
    fake: FakeApiServer,
    core: client.CoreV1Api,
    files: Callable[[], dict[str, bytes]],
    now: datetime,
) -> None:
    existing = files()
    fake.store(_secret(existing))

    result = _ensure(core, now)

    assert result.action == "rotated-ca"
    stored = _stored_files(fake)
    assert stored["ca.crt"] not in (existing["ca.crt"], b"not a certificate")
    assert _serves(stored, now=now)


def test_a_secret_without_the_ca_key_is_kept_while_valid(
    fake: FakeApiServer, core: client.CoreV1Api
) -> None:
    files = {k: v for k, v in _files(_bundle(NOW)).items() if k != "ca.key"}
    fake.store(_secret(files))
    assert _ensure(core, NOW + DAY).action == "kept"
    assert fake.count("PUT") == 0


def _late_cert_from(bundle: Bundle, *, issued: datetime) -> dict[str, bytes]:
    """The bundle's files with a serving certificate its CA issued at `issued`."""
    cert_pem, key_pem = issue_serving_cert(
        ca_cert_pem=bundle.ca_cert_pem,
        ca_key_pem=bundle.ca_key_pem,
        dns_names=dns_names(service=SERVICE, namespace=NAMESPACE),
        now=issued,
    )
    return _files(bundle) | {"tls.crt": cert_pem, "tls.key": key_pem}


def test_a_decision_reads_only_and_applying_it_writes_what_was_decided(
    fake: FakeApiServer, core: client.CoreV1Api
) -> None:
    existing = _files(_bundle(NOW))
    fake.store(_secret(existing))
    later = NOW + 300 * DAY

    plan = decide_secret(core, SPEC, now=later)

    assert plan.action == "renewed"
    assert [r.method for r in fake.requests] == ["GET"]
    assert _stored_files(fake) == existing
    assert apply_secret(core, plan)
    assert _stored_files(fake) == dict(plan.files)
    assert _serves(plan.files, now=later)


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(None, id="a create decided while the Secret was missing"),
        pytest.param(lambda: _files(_bundle(NOW)), id="a renewal decided on an older version"),
    ],
)
def test_a_decision_overtaken_by_another_writer_is_refused_and_theirs_stays(
    fake: FakeApiServer,
    core: client.CoreV1Api,
    stored: Callable[[], dict[str, bytes]] | None,
) -> None:
    later = NOW + 300 * DAY
    if stored is not None:
        fake.store(_secret(stored()))
    plan = decide_secret(core, SPEC, now=later)
    theirs = _files(_bundle(later))
    fake.store(_secret(theirs, note="theirs"))

    assert not apply_secret(core, plan)

    assert _stored_files(fake) == theirs


@pytest.mark.parametrize(
    ("rotate_due_ca", "action"),
    [
        pytest.param(True, "rotated-ca", id="a run that publishes the caBundle rotates a due CA"),
        pytest.param(False, "kept", id="a run that cannot publish it keeps a due, usable CA"),
    ],
)
def test_a_due_ca_is_rotated_only_by_a_run_that_publishes_the_ca_bundle(
    fake: FakeApiServer, core: client.CoreV1Api, rotate_due_ca: bool, action: str
) -> None:
    now = NOW + 4 * YEAR
    existing = _late_cert_from(_bundle(NOW), issued=now - 10 * DAY)
    fake.store(_secret(existing))
    spec = SecretSpec(
        namespace=NAMESPACE, name=SECRET, service=SERVICE, rotate_due_ca=rotate_due_ca
    )

    result = ensure_secret(core, spec, now=now)

    assert result.action == action
    assert (result.ca_bundle_pem == existing["ca.crt"]) is not rotate_due_ca
    assert _serves(_stored_files(fake), now=now)


def test_without_rotating_a_due_ca_a_due_certificate_is_reissued_from_it(
    fake: FakeApiServer, core: client.CoreV1Api
) -> None:
    existing = _files(_bundle(NOW))
    fake.store(_secret(existing))
    now = NOW + 4 * YEAR
    spec = SecretSpec(namespace=NAMESPACE, name=SECRET, service=SERVICE, rotate_due_ca=False)

    result = ensure_secret(core, spec, now=now)

    assert result.action == "renewed"
    stored = _stored_files(fake)
    assert (stored["ca.crt"], stored["ca.key"]) == (existing["ca.crt"], existing["ca.key"])
    assert _serves(stored, now=now)


@pytest.mark.parametrize(
    ("files", "now"),
    [
        pytest.param(
            lambda: _files(_bundle(NOW)), NOW + 5 * YEAR + DAY, id="an expired CA is replaced"
        ),
        pytest.param(
            lambda: _outliving_its_ca(_bundle(NOW)),
            NOW + 5 * YEAR + DAY,
            id="an expired CA is replaced even when its certificate has not expired",
        ),
        pytest.param(
            lambda: _files(_bundle(NOW)) | {"ca.crt": b"not a certificate"},
            NOW + DAY,
            id="an unreadable CA is replaced",
        ),
        pytest.param(
            lambda: {k: v for k, v in _files(_bundle(NOW)).items() if k != "ca.key"},
            NOW + 4 * YEAR,
            id="a CA without its key is replaced when the certificate is due",
        ),
    ],
)
def test_an_unusable_ca_is_replaced_even_by_a_run_that_cannot_publish_the_ca_bundle(
    fake: FakeApiServer,
    core: client.CoreV1Api,
    files: Callable[[], dict[str, bytes]],
    now: datetime,
) -> None:
    existing = files()
    fake.store(_secret(existing))
    spec = SecretSpec(namespace=NAMESPACE, name=SECRET, service=SERVICE, rotate_due_ca=False)

    result = ensure_secret(core, spec, now=now)

    assert result.action == "rotated-ca"
    assert result.ca_bundle_pem != existing["ca.crt"]
    assert _serves(_stored_files(fake), now=now)


def test_the_hook_before_a_write_sees_the_plan_before_anything_is_written(
    fake: FakeApiServer, core: client.CoreV1Api
) -> None:
    fake.store(_secret(_files(_bundle(NOW))))
    rotation = NOW + 4 * YEAR
    seen: list[tuple[str, bytes, int]] = []

    def before_write(plan: SecretPlan) -> None:
        seen.append((plan.action, plan.ca_bundle_pem, fake.count("PUT")))

    result = ensure_secret(core, SPEC, now=rotation, before_write=before_write)

    assert seen == [("rotated-ca", result.ca_bundle_pem, 0)]
    assert _stored_files(fake)["ca.crt"] == result.ca_bundle_pem
    assert fake.count("PUT") == 1


def test_the_hook_before_a_write_is_not_called_when_the_secret_is_kept(
    fake: FakeApiServer, core: client.CoreV1Api
) -> None:
    fake.store(_secret(_files(_bundle(NOW))))
    seen: list[SecretPlan] = []

    assert ensure_secret(core, SPEC, now=NOW + DAY, before_write=seen.append).action == "kept"
    assert seen == []


def test_the_hook_before_a_write_runs_again_for_the_decision_after_a_conflict(
    fake: FakeApiServer, core: client.CoreV1Api
) -> None:
    later = NOW + 300 * DAY
    stale = _files(_bundle(NOW))
    fake.store(_secret(stale))
    fake.before("PUT", secret_path(NAMESPACE, SECRET), lambda: fake.store(_secret(stale, note="x")))
    seen: list[SecretPlan] = []

    result = ensure_secret(core, SPEC, now=later, before_write=seen.append)

    assert [plan.action for plan in seen] == ["renewed", "renewed"]
    assert fake.count("PUT") == 2
    assert _stored_files(fake)["tls.crt"] == seen[-1].files["tls.crt"]
    assert result.action == "renewed"


def test_a_concurrent_bootstrap_that_creates_the_secret_first_wins(
    fake: FakeApiServer, core: client.CoreV1Api
) -> None:
    theirs = _files(_bundle(NOW))
    fake.before("POST", secrets_path(NAMESPACE), lambda: fake.store(_secret(theirs)))

    result = _ensure(core, NOW)

    assert result.action == "kept"
    assert result.ca_bundle_pem == theirs["ca.crt"]
    assert _stored_files(fake) == theirs
    assert (fake.count("POST"), fake.count("GET")) == (1, 2)


def test_a_concurrent_renewal_between_read_and_write_is_respected(
    fake: FakeApiServer, core: client.CoreV1Api
) -> None:
    later = NOW + 300 * DAY
    fake.store(_secret(_files(_bundle(NOW))))
    theirs = _files(_bundle(later))
    path = secret_path(NAMESPACE, SECRET)
    fake.before("PUT", path, lambda: fake.store(_secret(theirs)))

    result = _ensure(core, later)

    assert result.action == "kept", "the re-read found the other writer's valid certificate"
    assert _stored_files(fake) == theirs
    assert fake.count("PUT") == 1


def test_a_secret_that_keeps_changing_under_us_is_an_error(
    fake: FakeApiServer, core: client.CoreV1Api
) -> None:
    stale = _files(_bundle(NOW))
    fake.store(_secret(stale))
    writes = iter(range(1_000))
    path = secret_path(NAMESPACE, SECRET)
    fake.before("PUT", path, lambda: fake.store(_secret(stale, note=str(next(writes)))), times=None)

    with pytest.raises(PublishError, match=f"Secret {NAMESPACE}/{SECRET}"):
        _ensure(core, NOW + 300 * DAY)
    assert fake.count("PUT") > 1


def test_a_webhook_configuration_that_appears_late_is_waited_for_with_backoff(
    fake: FakeApiServer, admission: client.AdmissionregistrationV1Api
) -> None:
    ca = _bundle(NOW).ca_cert_pem
    fake.appear_after(_config(), gets=3)
    clock = FakeClock()

    assert _patch(admission, ca, now=NOW, clock=clock) == len(WEBHOOKS)

    assert fake.count("GET", config_path(CONFIG)) == 4
    assert len(clock.sleeps) == 3
    assert all(b == 2 * a for a, b in zip(clock.sleeps, clock.sleeps[1:], strict=False))
    assert _trusted(fake) == [[_der(ca)]] * len(WEBHOOKS)


def test_a_webhook_configuration_that_never_appears_times_out_with_a_clear_error(
    fake: FakeApiServer, admission: client.AdmissionregistrationV1Api
) -> None:
    clock = FakeClock()

    with pytest.raises(PublishError, match=f"MutatingWebhookConfiguration {CONFIG} .* 30s"):
        _patch(admission, _bundle(NOW).ca_cert_pem, now=NOW, clock=clock)

    assert sum(clock.sleeps) == pytest.approx(30)
    assert fake.count("GET") == len(clock.sleeps) + 1
    assert fake.count("PATCH") == 0


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            lambda first: _config(names=WEBHOOKS[::-1], ca_bundle=first),
            id="a reorder of the webhooks between read and patch",
        ),
        pytest.param(
            lambda _: _config(ca_bundle=_bundle(NOW - DAY).ca_cert_pem),
            id="a caBundle rewritten between read and patch",
        ),
    ],
)
def test_a_concurrent_edit_makes_the_patch_fail_and_retry_on_a_fresh_read(
    fake: FakeApiServer,
    admission: client.AdmissionregistrationV1Api,
    edit: Callable[[bytes], dict[str, Any]],
) -> None:
    first, ours = _bundle(NOW - 2 * DAY).ca_cert_pem, _bundle(NOW).ca_cert_pem
    fake.store(_config(ca_bundle=first))
    edited = edit(first)
    fake.before("PATCH", config_path(CONFIG), lambda: fake.store(edited))

    assert _patch(admission, ours, now=NOW) == len(WEBHOOKS)

    assert fake.count("PATCH") == 2
    config = fake.get(config_path(CONFIG))
    assert config is not None
    assert [w["name"] for w in config["webhooks"]] == [w["name"] for w in edited["webhooks"]]
    theirs = base64.b64decode(edited["webhooks"][0]["clientConfig"]["caBundle"])
    assert _trusted(fake) == [[_der(ours), _der(theirs)]] * len(WEBHOOKS)


def test_a_configuration_without_webhooks_needs_no_patch(
    fake: FakeApiServer, admission: client.AdmissionregistrationV1Api
) -> None:
    fake.store(_config(names=()))
    assert _patch(admission, _bundle(NOW).ca_cert_pem, now=NOW) == 0
    assert fake.count("PATCH") == 0


def test_a_valid_secret_whose_ca_is_distrusted_gets_a_new_ca(
    fake: FakeApiServer, core: client.CoreV1Api
) -> None:
    old = _files(_bundle(NOW))
    fake.store(_secret(old))
    ca = x509.load_pem_x509_certificate(old["ca.crt"])
    spec = dataclasses.replace(SPEC, distrusted=frozenset({fingerprint(ca)}))

    result = ensure_secret(core, spec, now=NOW + DAY)

    assert result.action == "rotated-ca"
    assert "distrusted" in result.reason
    assert fingerprint(ca) in result.reason
    assert _der(result.ca_bundle_pem) != _der(old["ca.crt"])
    assert _serves(_stored_files(fake), now=NOW + DAY)
    assert ensure_secret(core, spec, now=NOW + DAY).action == "kept", "the new CA is not distrusted"


def test_read_trusted_gives_each_bundle_and_the_ports_of_the_service_the_webhooks_call(
    fake: FakeApiServer, admission: client.AdmissionregistrationV1Api
) -> None:
    ours, theirs = _bundle(NOW).ca_cert_pem, _bundle(NOW - DAY).ca_cert_pem
    config = _config(names=("a.shm-webhook.io", "b.shm-webhook.io", "c.shm-webhook.io"))
    default_port, other_port, by_url = config["webhooks"]
    del default_port["clientConfig"]["service"]["port"]
    other_port["clientConfig"]["service"]["port"] = 8443
    other_port["clientConfig"]["caBundle"] = base64.b64encode(ours + theirs).decode()
    by_url["clientConfig"] = {"url": "https://example.com/mutate"}
    fake.store(config)

    trusted = read_trusted(
        admission, webhook_config=CONFIG, service=SERVICE, namespace=NAMESPACE, timeout=0
    )

    assert trusted.ports == {443, 8443}
    assert trusted.bundles == [b"", ours + theirs, b""]
    elsewhere = read_trusted(
        admission, webhook_config=CONFIG, service="other", namespace=NAMESPACE, timeout=0
    )
    assert elsewhere.ports == set()
