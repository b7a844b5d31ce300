"""Throwaway TLS material and a real TLS server for tests; made with our own `certs.generate`, so
no key file is ever committed. Handshakes check validity against the real clock, so material
that goes through a handshake is generated with the current time."""

from __future__ import annotations

import functools
import os
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from certs.generate import Bundle, generate_bundle, issue_serving_cert

SERVICE = "shm-webhook"
NAMESPACE = "default"
SERVER_NAME = "shm-webhook.default.svc"


@functools.cache
def throwaway_bundle() -> Bundle:
    """One CA and serving certificate per test session, valid now."""
    return generate_bundle(service=SERVICE, namespace=NAMESPACE, now=datetime.now(UTC))


def another_serving_cert(bundle: Bundle, *, validity: timedelta) -> tuple[bytes, bytes]:
    """A second (cert_pem, key_pem) for the same names from the bundle's CA: a rotation."""
    return issue_serving_cert(
        ca_cert_pem=bundle.ca_cert_pem,
        ca_key_pem=bundle.ca_key_pem,
        dns_names=[SERVICE, f"{SERVICE}.{NAMESPACE}", SERVER_NAME],
        now=datetime.now(UTC),
        validity=validity,
    )


def serial(cert_pem_or_der: bytes) -> int:
    if cert_pem_or_der.startswith(b"-----"):
        return x509.load_pem_x509_certificate(cert_pem_or_der).serial_number
    return x509.load_der_x509_certificate(cert_pem_or_der).serial_number


def project_secret(mount: Path, files: Mapping[str, bytes], *, version: str) -> None:
    """Publish `files` under `mount` the way the kubelet updates a Secret volume.

    The files go into a fresh `..<version>` directory, then the `..data` symlink is swapped to
    it in one rename; `tls.crt` and friends are fixed symlinks into `..data`.
    """
    data_dir = mount / f"..{version}"
    data_dir.mkdir(parents=True)
    for name, content in files.items():
        (data_dir / name).write_bytes(content)
    staged = mount / "..data_tmp"
    staged.symlink_to(data_dir.name)
    os.replace(staged, mount / "..data")
    for name in files:
        if not (mount / name).is_symlink():
            (mount / name).symlink_to(Path("..data") / name)


class _EchoHandler(socketserver.BaseRequestHandler):
    server: _TLSServer

    def handle(self) -> None:
        try:
            with self.server.context.wrap_socket(self.request, server_side=True) as tls:
                while data := tls.recv(1024):
                    tls.sendall(data)
        except OSError:  # ssl.SSLError included: refused handshakes are what some tests want
            pass


class _TLSServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(("127.0.0.1", 0), _EchoHandler)


@contextmanager
def tls_echo_server(context: ssl.SSLContext) -> Iterator[int]:
    """A TLS echo server on 127.0.0.1 using `context`, a thread per connection; yields the port."""
    server = _TLSServer(context)
    # serve_forever only notices shutdown() between polls; the default 0.5 s slows every test.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    """A client trusting only `ca_pem`, checking the server name as the kube-apiserver does."""
    return ssl.create_default_context(cadata=ca_pem.decode())


def connect(
    port: int, *, context: ssl.SSLContext, server_hostname: str = SERVER_NAME
) -> ssl.SSLSocket:
    """A completed handshake (and one echoed byte, so the server side is done too)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        tls = context.wrap_socket(sock, server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise
    echo(tls)
    return tls


def echo(tls: ssl.SSLSocket) -> None:
    tls.sendall(b"x")
    assert tls.recv(1) == b"x"


def peer_serial(tls: ssl.SSLSocket) -> int:
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return serial(der)
