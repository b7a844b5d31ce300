"""`certs bootstrap` forgetting old CAs and distrusting a lost one, against the fake apiserver
and stand-in pods (TLS servers on 127.0.0.1 listed as the Service's EndpointSlices).

Time is a `FakeTime` that moves only when the command sleeps; the `Kubelet` then projects the
Secret into the pods after its delay. After every step the test checks what the
kube-apiserver would find: every certificate a pod serves is signed by a CA every webhook's
caBundle trusts (no failed admission at any moment).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certs.bootstrap import BootstrapOptions, bootstrap
from certs.errors import Failed
from certs.generate import Bundle, generate_bundle
from certs.renewal import issued_by
from certs.trust import OVERLAP, SETTLE, fingerprint
from tests.certs.fake_apiserver import (
    CONFIG_GROUP,
    DISCOVERY_GROUP,
    FakeApiServer,
    config_path,
    endpoint_slices_path,
    secret_path,
    service,
    tls_secret,
    webhook_configuration,
)
from tests.certs.pods import FakeTime, Kubelet, Pod, register, running_pods
from webhook.cli import main

NAMESPACE, SECRET, SERVICE, CONFIG = "shm-system", "shm-webhook-tls", "shm-webhook", "shm-webhook"
WEBHOOKS = ("pods.shm-webhook.io", "pods-kube-system.shm-webhook.io")
YEAR = timedelta(days=365)
KUBELET_DELAY = timedelta(seconds=70)


def _files(bundle: Bundle) -> dict[str, bytes]:
    return {
        "ca.crt": bundle.ca_cert_pem,
        "ca.key": bundle.ca_key_pem,
        "tls.crt": bundle.cert_pem,
        "tls.key": bundle.key_pem,
    }


def _config(ca_bundle: bytes) -> dict[str, Any]:
    return webhook_configuration(
        CONFIG, service=SERVICE, namespace=NAMESPACE, webhooks=WEBHOOKS, ca_bundle=ca_bundle
    )


def _bundle(now: datetime) -> Bundle:
    return generate_bundle(service=SERVICE, namespace=NAMESPACE, now=now)


def _ca(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _trusted(fake: FakeApiServer) -> list[list[x509.Certificate]]:
    config = fake.get(config_path(CONFIG))
    assert config is not None
    return [
        x509.load_pem_x509_certificates(base64.b64decode(webhook["clientConfig"]["caBundle"]))
        for webhook in config["webhooks"]
    ]


def _stored_ca(fake: FakeApiServer) -> x509.Certificate:
    secret = fake.get(secret_path(NAMESPACE, SECRET))
    assert secret is not None
    return _ca(base64.b64decode(secret["data"]["ca.crt"]))


def _no_failed_admission(fake: FakeApiServer, pods: list[Pod]) -> None:
    for bundle in _trusted(fake):
        for pod in pods:
            assert any(issued_by(pod.served(), ca) for ca in bundle), f"{pod.name} untrusted"


@pytest.fixture
def time() -> FakeTime:
    return FakeTime(datetime.now(UTC))


@pytest.fixture
def installed(
    fake: FakeApiServer, time: FakeTime, tmp_path: Path
) -> Iterator[tuple[Bundle, list[Pod]]]:
    """A release whose Secret and caBundle hold CA `lost` (made four years ago, so due) and
    whose two pods serve its certificate; the Service and its EndpointSlices list the pods."""
    lost = _bundle(time.now() - 4 * YEAR)
    fake.store(tls_secret(SECRET, namespace=NAMESPACE, files=_files(lost)))
    fake.store(_config(lost.ca_cert_pem))
    fake.store(service(SERVICE, namespace=NAMESPACE, ports={"https": 443, "metrics": 9090}))
    with running_pods(tmp_path, _files(lost), count=2) as pods:
        register(fake, pods, namespace=NAMESPACE, service=SERVICE)
        yield lost, pods


def _kubelet(
    fake: FakeApiServer, time: FakeTime, pods: list[Pod], *, stuck: Sequence[Pod] = ()
) -> Kubelet:
    """Pods that load the Secret KUBELET_DELAY after it changes, and a check, whenever time
    passes, that the kube-apiserver trusts what each pod serves."""
    kubelet = Kubelet(
        fake, time, pods, namespace=NAMESPACE, name=SECRET, delay=KUBELET_DELAY, stuck=stuck
    )
    time.on_sleep.append(lambda: _no_failed_admission(fake, pods))
    return kubelet


def _run(kubeconfig_file: Path, time: FakeTime, *distrust: str, timeout: float = 120.0) -> str:
    out = io.StringIO()
    options = BootstrapOptions(
        secret=SECRET,
        namespace=NAMESPACE,
        service=SERVICE,
        webhook_config=CONFIG,
        kubeconfig=kubeconfig_file,
        timeout=timeout,
        distrust_cas=distrust,
    )
    bootstrap(options, out=out, clock=time.clock)
    return out.getvalue()


def test_after_a_rotation_the_old_ca_stays_until_a_run_finds_every_pod_serving_the_new(
    fake: FakeApiServer,
    kubeconfig_file: Path,
    time: FakeTime,
    installed: tuple[Bundle, list[Pod]],
) -> None:
    lost, pods = installed
    _kubelet(fake, time, pods)

    first = _run(kubeconfig_file, time)

    new = _stored_ca(fake)
    assert new != _ca(lost.ca_cert_pem)
    assert _trusted(fake) == [[new, _ca(lost.ca_cert_pem)]] * len(WEBHOOKS)
    assert f"kept CA {lost_name(lost)}" in first
    assert "kubelet" in first

    time.advance(timedelta(days=1))  # the CronJob's next daily run; the pods reloaded long ago
    second = _run(kubeconfig_file, time)

    assert [pod.served().issuer for pod in pods] == [new.subject] * 2
    assert _trusted(fake) == [[new]] * len(WEBHOOKS)
    assert f"dropped CA {lost_name(lost)}: none of 2 endpoints serves" in second
    _no_failed_admission(fake, pods)


def lost_name(bundle: Bundle) -> str:
    ca = _ca(bundle.ca_cert_pem)
    return f"{ca.subject.rfc4514_string()} (sha256 {fingerprint(ca)})"


def test_a_pod_still_serving_the_old_certificate_keeps_the_old_ca_and_is_named(
    fake: FakeApiServer,
    kubeconfig_file: Path,
    time: FakeTime,
    installed: tuple[Bundle, list[Pod]],
) -> None:
    lost, pods = installed
    _kubelet(fake, time, pods, stuck=[pods[1]])
    _run(kubeconfig_file, time)
    time.advance(timedelta(days=1))

    out = _run(kubeconfig_file, time)

    assert _trusted(fake) == [[_stored_ca(fake), _ca(lost.ca_cert_pem)]] * len(WEBHOOKS)
    assert f"127.0.0.1:{pods[1].port} (pod web-1) still serves" in out
    assert "(pod web-0)" not in out
    _no_failed_admission(fake, pods)


@pytest.mark.parametrize(
    ("later", "kept"),
    [
        pytest.param(OVERLAP - timedelta(minutes=1), True, id="kept up to the overlap"),
        pytest.param(OVERLAP + timedelta(minutes=1), False, id="dropped after the overlap"),
    ],
)
def test_when_the_endpoints_cannot_be_listed_the_old_ca_stays_for_the_overlap_only(
    fake: FakeApiServer,
    kubeconfig_file: Path,
    time: FakeTime,
    installed: tuple[Bundle, list[Pod]],
    later: timedelta,
    kept: bool,
) -> None:
    lost, pods = installed
    _kubelet(fake, time, pods)
    forbidden = "endpointslices.discovery.k8s.io is forbidden"
    fake.fail(
        "GET", endpoint_slices_path(NAMESPACE), code=403, reason="Forbidden", message=forbidden
    )
    _run(kubeconfig_file, time)
    time.advance(later)

    out = _run(kubeconfig_file, time)

    old = [_ca(lost.ca_cert_pem)] if kept else []
    assert _trusted(fake) == [[_stored_ca(fake), *old]] * len(WEBHOOKS)
    assert "cannot tell" in out
    assert forbidden in out


def test_a_run_with_nothing_to_forget_asks_no_endpoint(
    fake: FakeApiServer, kubeconfig_file: Path, time: FakeTime
) -> None:
    current = _bundle(time.now())
    fake.store(tls_secret(SECRET, namespace=NAMESPACE, files=_files(current)))
    fake.store(_config(current.ca_cert_pem))

    _run(kubeconfig_file, time)

    assert not [r for r in fake.requests if r.path.startswith(f"/apis/{DISCOVERY_GROUP}/")]
    assert not [r for r in fake.requests if "/services/" in r.path]
    assert [r.method for r in fake.requests if r.method != "GET"] == []


def test_distrusting_the_secret_s_ca_rotates_waits_for_the_pods_then_drops_it(
    fake: FakeApiServer,
    kubeconfig_file: Path,
    time: FakeTime,
    installed: tuple[Bundle, list[Pod]],
    tmp_path: Path,
) -> None:
    lost, pods = installed
    _kubelet(fake, time, pods)
    (tmp_path / "lost-ca.crt").write_bytes(lost.ca_cert_pem)

    out = _run(kubeconfig_file, time, str(tmp_path / "lost-ca.crt"))

    new = _stored_ca(fake)
    assert new != _ca(lost.ca_cert_pem)
    assert _trusted(fake) == [[new]] * len(WEBHOOKS)
    assert [pod.served().issuer for pod in pods] == [new.subject] * 2
    # Trust before serve: the caBundle held the new CA before the Secret changed.
    writes = [(r.method, r.path) for r in fake.requests if r.method != "GET"]
    assert writes[:2] == [("PATCH", config_path(CONFIG)), ("PUT", secret_path(NAMESPACE, SECRET))]
    assert SETTLE.total_seconds() <= time.elapsed < SETTLE.total_seconds() + 30
    assert "is distrusted" in out
    assert out.splitlines()[-1].endswith("trusts no distrusted CA")
    _no_failed_admission(fake, pods)


def test_distrust_fails_at_the_deadline_while_a_pod_serves_the_lost_ca_and_keeps_trusting_it(
    fake: FakeApiServer,
    kubeconfig_file: Path,
    time: FakeTime,
    installed: tuple[Bundle, list[Pod]],
) -> None:
    lost, pods = installed
    _kubelet(fake, time, pods, stuck=[pods[0]])

    with pytest.raises(Failed) as failed:
        _run(kubeconfig_file, time, fingerprint(_ca(lost.ca_cert_pem)), timeout=60)

    assert f"(pod {pods[0].name}) still serves" in str(failed.value)
    assert "\n" not in str(failed.value)
    assert time.elapsed == pytest.approx(SETTLE.total_seconds() + 60, abs=1)
    assert _trusted(fake) == [[_stored_ca(fake), _ca(lost.ca_cert_pem)]] * len(WEBHOOKS)
    _no_failed_admission(fake, pods)

    # The pod is restarted: running the same command again finishes the job, without rotating.
    key = (pods[1].directory / "tls.key").read_bytes()
    pods[0].load({"tls.crt": pods[1].cert_pem, "tls.key": key})
    secret_before = fake.get(secret_path(NAMESPACE, SECRET))

    _run(kubeconfig_file, time, fingerprint(_ca(lost.ca_cert_pem)))

    assert fake.get(secret_path(NAMESPACE, SECRET)) == secret_before
    assert _trusted(fake) == [[_stored_ca(fake)]] * len(WEBHOOKS)


def test_distrusting_an_old_ca_nothing_serves_drops_it_at_once_through_the_cli(
    fake: FakeApiServer,
    kubeconfig_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The Secret was already replaced (a day ago) and the pods serve its CA; the caBundle
    still trusts the lost CA. Its fingerprint comes from `certs check`."""
    now = datetime.now(UTC)
    lost, current = _bundle(now - 2 * YEAR), _bundle(now - timedelta(days=1))
    fake.store(tls_secret(SECRET, namespace=NAMESPACE, files=_files(current)))
    fake.store(_config(current.ca_cert_pem + lost.ca_cert_pem))
    fake.store(service(SERVICE, namespace=NAMESPACE, ports={"https": 443}))
    (tmp_path / "lost-ca.crt").write_bytes(lost.ca_cert_pem)
    assert main(["certs", "check", "--cert-file", str(tmp_path / "lost-ca.crt")]) == 0
    sha256 = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())["sha256"]

    with running_pods(tmp_path, _files(current), count=2) as pods:
        register(fake, pods, namespace=NAMESPACE, service=SERVICE)
        code = main(
            ["certs", "bootstrap", "--secret", SECRET, "--namespace", NAMESPACE,
             "--service", SERVICE, "--webhook-config", CONFIG,
             "--kubeconfig", str(kubeconfig_file), "--distrust-ca", sha256]
        )  # fmt: skip

    assert code == 0, capsys.readouterr()
    assert _trusted(fake) == [[_ca(current.ca_cert_pem)]] * len(WEBHOOKS)
    assert fake.count("PUT") + fake.count("POST") == 0, "the Secret was fine: not written"
    out = capsys.readouterr().out
    assert f"dropped CA {lost_name(lost)}: none of 2 endpoints serves" in out


@pytest.mark.parametrize(
    ("value", "extra", "words"),
    [
        pytest.param(
            "nonexistent.crt", [], ["nonexistent.crt", "fingerprint"], id="a missing file"
        ),
        pytest.param("tls.crt", [], ["not a CA", "ca.crt"], id="a serving certificate"),
        pytest.param("empty.crt", [], ["no PEM certificate"], id="a file with no certificate"),
        pytest.param("ab" * 31, [], ["fingerprint"], id="a fingerprint too short"),
        pytest.param(
            "ca.crt", ["--skip-ca-bundle"], ["--skip-ca-bundle"], id="with --skip-ca-bundle"
        ),
    ],
)
def test_distrust_usage_errors_are_exit_code_2_with_one_line_and_no_request(
    fake: FakeApiServer,
    kubeconfig_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    value: str,
    extra: list[str],
    words: list[str],
) -> None:
    bundle = _bundle(datetime.now(UTC))
    (tmp_path / "tls.crt").write_bytes(bundle.cert_pem)
    (tmp_path / "ca.crt").write_bytes(bundle.ca_cert_pem)
    (tmp_path / "empty.crt").write_bytes(b"")
    path = tmp_path / value
    argument = str(path) if value.endswith(".crt") else value

    code = main(
        ["certs", "bootstrap", "--secret", SECRET, "--namespace", NAMESPACE,
         "--service", SERVICE, "--webhook-config", CONFIG,
         "--kubeconfig", str(kubeconfig_file), "--distrust-ca", argument, *extra]
    )  # fmt: skip

    assert code == 2
    [line] = capsys.readouterr().err.splitlines()
    for word in words:
        assert word in line
    assert fake.requests == []
    assert not any(r.path.startswith(f"/apis/{CONFIG_GROUP}/") for r in fake.requests)
