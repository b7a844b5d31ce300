"""A rolling restart as the kube-apiserver sees it (SPEC §5; docs/reliability.md, "Shutdown"):
two replicas behind one Service, a client that calls them as the kube-apiserver does
(tests/reliability/apiserver.py: a pool of kept-alive connections reused most recent first,
new connections to the endpoints of the moment, no retry of a failed POST), SIGTERM to one
replica under steady and bursty load, and the endpoint change reaching the client
`PROPAGATION` later. The client never stops sending: the old connections to the terminating
replica carry requests for as long as they stay open, as a kube-apiserver's do.

Not one admission may fail, and the terminating replica may not close a connection under the
client (not even an idle one); it must exit 0 once its clients have let go: the last when the
client's idle timer retires it (`CLIENT_IDLE`, standing for the kube-apiserver's 90 s).

tests/webhook/test_server.py checks the sequence itself with one client; tests/webhook/
test_transport.py each connection state in process.
"""

from __future__ import annotations

import http.client
import signal
import ssl
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.builders import REVIEW
from tests.reliability.apiserver import ApiServerClient, Outcome
from tests.serving import ServedWebhook, serving, write_certificates

pytestmark = pytest.mark.integration

GRACE = 2.0  # --shutdown-grace of the replica that terminates
PROPAGATION = 1.0  # from SIGTERM until new connections go to the other replica only
CLIENT_IDLE = 3.0  # the client closes a connection idle this long: after the grace
STEADY = 4  # threads sending back to back through the pool
BURST = 8  # concurrent requests every BURST_EVERY seconds: the pool's deeper connections
BURST_EVERY = 0.4
FRESH = 2  # threads sending each request on a new connection
QUIET = 1.0  # webhook/server.py: the replica exits once unused this long after the grace
EXIT_MARGIN = 1.5  # for its ticks (0.1 s) and its shutdown


def repeat(action: Callable[[], object], *, stop: threading.Event, pause: float) -> None:
    while not stop.is_set():
        action()
        time.sleep(pause)


def bursts(client: ApiServerClient, *, stop: threading.Event) -> None:
    with ThreadPoolExecutor(BURST) as pool:
        while not stop.wait(BURST_EVERY):
            list(pool.map(lambda _: client.admit(), range(BURST)))


def unready_after(server: ServedWebhook, *, signalled: float, deadline: float) -> float | None:
    """Seconds from the signal until /readyz fails, polled every 50 ms as a kubelet would."""
    while time.monotonic() < deadline:
        try:
            ready = server.get("/readyz")[0] == 200
        except (OSError, http.client.HTTPException):
            ready = False
        if not ready:
            return time.monotonic() - signalled
        time.sleep(0.05)
    return None


def across_the_end_of_the_grace(server: ServedWebhook, *, grace_ends: float) -> str:
    """A request whose headers and half body come before the grace ends, the rest after:
    the answer's status and headers, lowercase; "" if none."""
    half = len(REVIEW) // 2
    sock: ssl.SSLSocket = server.tls_socket(timeout=15)
    try:
        time.sleep(max(0.0, grace_ends - 0.5 - time.monotonic()))
        sock.sendall(
            b"POST /mutate?timeout=3s HTTP/1.1\r\nHost: shm-webhook\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(REVIEW), REVIEW[:half])
        )
        time.sleep(max(0.0, grace_ends + 0.5 - time.monotonic()))
        sock.sendall(REVIEW[half:])
        response = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
        response.begin()
        response.read()
        return f"{response.status} {str(response.headers).lower()}"
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        sock.close()


def failures(outcomes: list[Outcome]) -> list[Outcome]:
    return [outcome for outcome in outcomes if outcome.status != 200]


def test_a_rolling_restart_under_a_kube_apiserver_like_client_fails_no_admission(
    tmp_path: Path,
) -> None:
    certificates = write_certificates(tmp_path / "tls")
    grace = ("--shutdown-grace", str(GRACE))
    with (
        serving(certificates, tmp_path / "old.log", *grace) as old,
        serving(certificates, tmp_path / "new.log", *grace) as new,
    ):
        client = ApiServerClient([old, new], idle_timeout=CLIENT_IDLE)
        held = ApiServerClient([old], idle_timeout=CLIENT_IDLE)
        stop = threading.Event()
        threads = [threading.Thread(target=bursts, args=(client,), kwargs={"stop": stop})]
        for _ in range(STEADY):
            kwargs = {"stop": stop, "pause": 0.005}
            threads.append(threading.Thread(target=repeat, args=(client.admit,), kwargs=kwargs))
        for _ in range(FRESH):
            admit = lambda: client.admit(new=True, keep=False)  # noqa: E731
            kwargs = {"stop": stop, "pause": 0.01}
            threads.append(threading.Thread(target=repeat, args=(admit,), kwargs=kwargs))
        for expiring in (client, held):  # Go's idle timers
            kwargs = {"stop": stop, "pause": 0.05}
            threads.append(threading.Thread(target=repeat, args=(expiring.expire,), kwargs=kwargs))
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            # Two connections to the old replica, idle from now on: one used again after the
            # grace, one never again, for the client's idle timer to close after the grace.
            held.admit(new=True)
            held.admit(new=True)
            signalled = time.monotonic()
            grace_ends = signalled + GRACE
            results: dict[str, object] = {}
            others = [
                threading.Timer(PROPAGATION, client.route_to, args=([new],)),
                threading.Timer(GRACE + 0.5, lambda: results.update(held=held.admit())),
                threading.Thread(
                    target=lambda: results.update(
                        slow=across_the_end_of_the_grace(old, grace_ends=grace_ends)
                    )
                ),
                threading.Thread(
                    target=lambda: results.update(
                        unready=unready_after(old, signalled=signalled, deadline=grace_ends)
                    )
                ),
            ]
            old.process.send_signal(signal.SIGTERM)
            for other in others:
                other.start()
            code = old.process.wait(timeout=GRACE + CLIENT_IDLE + 15)
            exited = time.monotonic() - signalled
            time.sleep(0.5)  # the load goes on, on the other replica
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=20)
        for other in others:
            other.join(timeout=20)
        client.close()
        held.close()

    after = [o for o in client.outcomes if o.sent > signalled and o.server == old.port]
    failed = failures(client.outcomes + held.outcomes)
    summary = (
        f"exit {code} after {exited:.2f}s; {len(client.outcomes)} admissions,"
        f" {len(after)} to the old replica after SIGTERM"
        f" ({sum(o.sent < grace_ends for o in after)} in the grace);"
        f" failed {len(failed)} {[(round(o.sent - signalled, 2), o.error) for o in failed]};"
        f" idle connections closed under the client {len(client.closed_idle + held.closed_idle)}"
    )
    print(summary)
    assert failed == [], summary
    assert client.closed_idle + held.closed_idle == [], summary
    assert code == 0, old.log_text()
    # After the grace it waited for the client to let go of its last connection.
    [(retired, _)] = held.expired
    assert exited > retired - signalled > GRACE
    assert exited < CLIENT_IDLE + QUIET + EXIT_MARGIN
    # The connection used again after the grace was answered and told to close.
    held_again = results["held"]
    assert isinstance(held_again, Outcome)
    assert (held_again.status, held_again.reused, held_again.closed) == (200, True, True)
    assert str(results["slow"]).startswith("200 ")
    assert "connection: close" in str(results["slow"])
    unready = results["unready"]
    assert isinstance(unready, float)
    assert unready < 0.5
    # The load went on: pooled and new connections to the old replica until the endpoint
    # change, every answer after SIGTERM saying Connection: close, and promptly.
    assert len(after) > 5
    assert any(o.reused for o in after)
    assert any(not o.reused and o.sent > signalled + 0.5 for o in after)
    assert all(o.closed for o in after if o.sent > signalled + 0.1)  # the signal arrived
    assert statistics.median(o.answered - o.sent for o in after) < 0.1
    assert not any(port == old.port for at, port in client.dialled if at > signalled + 1.1)
