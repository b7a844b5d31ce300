"""The server's TLS: an SSL context that follows its certificate files as they are rotated.

Owns: `server_context` (TLS >= 1.2, certificate chain and key), `CertificateReloader` (reloads
the files into the live context when a Secret volume or anyone else replaces them),
`certificate_not_after` and `development_certificate` (the self-signed set-up of `serve` when no
certificate is given).

Must not import fastapi, starlette or uvicorn: the server hands the context to whichever
transport it runs. Certificates are made by `certs.generate` and written by `certs.files`,
imported only for a development certificate: serving certificate files needs nothing beyond
the standard library (`cryptography` would add ~8 MiB to every replica,
docs/performance.md#memory-is-mostly-imports).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from webhook.checks import PEM_CERTIFICATE

logger = logging.getLogger(__name__)

DEVELOPMENT_SERVICE = "shm-webhook"
DEVELOPMENT_NAMESPACE = "default"
DEVELOPMENT_EXTRA_NAMES = ("localhost", "127.0.0.1", "::1")

# (st_ino, st_mtime_ns, st_size) of the certificate and of the key.
_Signature = tuple[tuple[int, int, int], tuple[int, int, int]]

_SEQUENCE = 0x30  # the DER tag of an ASN.1 SEQUENCE
# The PKCS#8 and the traditional OpenSSL forms of a passphrase-protected key.
_ENCRYPTED_KEY_MARKERS = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")


class TLSConfigError(ValueError):
    """A certificate or key file that cannot be served; the message names the file."""


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS >= 1.2 server context serving the chain in `cert_file` with the key in `key_file`."""
    context = _empty_context()
    _load(context, cert_file=cert_file, key_file=key_file)
    return context


def certificate_not_after(cert_pem_or_path: bytes | Path) -> datetime:
    """The notAfter (UTC) of the first certificate in PEM bytes or a PEM file."""
    if isinstance(cert_pem_or_path, Path):
        cert_pem_or_path = cert_pem_or_path.read_bytes()
    found = PEM_CERTIFICATE.search(cert_pem_or_path)
    if found is None:
        raise ValueError("no PEM certificate found")
    try:
        der = base64.b64decode(found.group(1), validate=False)
        return _der_not_after(der)
    except (ValueError, IndexError) as error:
        raise ValueError(f"the first PEM certificate does not decode: {error}") from None


class CertificateReloader:
    """Keeps `context` serving whatever `cert_file` and `key_file` currently hold.

    Reloading happens in the same `SSLContext`: new handshakes get the new certificate while
    established connections keep theirs, so rotation never drops a connection.
    """

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        *,
        on_loaded: Callable[[datetime], None] | None = None,
    ) -> None:
        """Load the files now (raising `TLSConfigError` if they cannot be served)."""
        self.cert_file = cert_file
        self.key_file = key_file
        self._on_loaded = on_loaded
        self._signature = _signature(cert_file, key_file)
        self.context = _empty_context()
        self.not_after = _load(self.context, cert_file=cert_file, key_file=key_file)
        self._last_error: str | None = None
        if on_loaded is not None:
            on_loaded(self.not_after)

    def check(self) -> bool:
        """Reload if either file changed since the last load; True when a new pair was loaded.

        Files that cannot be loaded (a writer halfway through) leave the current certificate in
        service; they are tried again on the next call.
        """
        try:
            signature = _signature(self.cert_file, self.key_file)
            if signature == self._signature:
                return False
            not_after = _load(self.context, cert_file=self.cert_file, key_file=self.key_file)
        except (OSError, ValueError) as error:
            # Once per distinct problem: a bad file would otherwise log at every poll.
            if str(error) != self._last_error:
                logger.warning("keeping the current TLS certificate: %s", error)
            self._last_error = str(error)
            return False
        # Taken before the load, so a change racing with it is picked up next time.
        self._signature = signature
        self._last_error = None
        self.not_after = not_after
        logger.info("loaded TLS certificate %s, valid until %s", self.cert_file, not_after)
        if self._on_loaded is not None:
            self._on_loaded(not_after)
        return True

    async def watch(self, interval: float = 1.0) -> None:
        """Call `check` every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            # On the event loop thread on purpose: OpenSSL does not guard an SSL_CTX being
            # modified against handshakes starting from it in another thread.
            try:
                self.check()
            except Exception:
                # A failing on_loaded callback must not end certificate rotation.
                logger.exception("TLS certificate reload callback failed")


def development_certificate(directory: Path, *, now: datetime) -> tuple[Path, Path, Path]:
    """Generate and write a self-signed set-up for local use; returns (cert, key, CA) paths.

    The certificate names `shm-webhook.default.svc`, `localhost`, `127.0.0.1` and `::1`.
    """
    from certs.files import CA_CERT_FILE, CERT_FILE, KEY_FILE, write_bundle
    from certs.generate import generate_bundle

    bundle = generate_bundle(
        service=DEVELOPMENT_SERVICE,
        namespace=DEVELOPMENT_NAMESPACE,
        now=now,
        extra_names=DEVELOPMENT_EXTRA_NAMES,
    )
    write_bundle(bundle, directory)
    return directory / CERT_FILE, directory / KEY_FILE, directory / CA_CERT_FILE


def _empty_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Python already defaults to 1.2; the floor is ours (docs/tls.md), not a default's.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _load(context: ssl.SSLContext, *, cert_file: Path, key_file: Path) -> datetime:
    """Load the pair into `context` once it is known to load cleanly; returns its notAfter.

    `load_cert_chain` installs the certificate before it checks the key, so a bad key would
    leave a live context with a certificate it cannot sign for; a scratch context takes the
    failure instead. Checking the certificates first only serves to say which file is wrong:
    once OpenSSL has read them, a pair that does not load has a bad key.
    """
    cert_pem, key_pem = _read(cert_file), _read(key_file)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=cert_pem.decode())
        not_after = certificate_not_after(cert_pem)
    except (ValueError, ssl.SSLError):  # UnicodeDecodeError is a ValueError
        raise TLSConfigError(f"{cert_file} does not hold PEM certificates") from None
    if any(marker in key_pem for marker in _ENCRYPTED_KEY_MARKERS):
        raise TLSConfigError(f"{key_file} is encrypted; give an unencrypted key")
    scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for target in (scratch, context):
        try:
            # A password, even empty, stops OpenSSL prompting on the terminal should the key
            # have been swapped for an encrypted one since it was read.
            target.load_cert_chain(cert_file, key_file, password=b"")
        except ssl.SSLError as error:
            if error.reason == "KEY_VALUES_MISMATCH":
                message = f"{key_file} is not the private key of the certificate in {cert_file}"
            elif target is scratch:
                message = f"{key_file} does not hold a PEM private key"
            else:
                message = f"cannot serve {cert_file} with {key_file}: {error}"
            raise TLSConfigError(message) from None
    return not_after


def _der_not_after(der: bytes) -> datetime:
    """notAfter of a DER certificate: Certificate > tbsCertificate > validity (RFC 5280 4.1)."""
    _, start, _ = _der_element(der, 0, expect=_SEQUENCE)  # Certificate
    _, start, _ = _der_element(der, start, expect=_SEQUENCE)  # tbsCertificate
    tag, _, end = _der_element(der, start)
    if tag == 0xA0:  # [0] version, absent from v1 certificates
        _, _, end = _der_element(der, end)  # serialNumber
    for _ in ("signature", "issuer"):
        _, _, end = _der_element(der, end, expect=_SEQUENCE)
    _, validity, _ = _der_element(der, end, expect=_SEQUENCE)
    _, _, after = _der_element(der, validity)  # notBefore
    tag, start, end = _der_element(der, after)  # notAfter
    text = der[start:end].decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ: years 1950 to 2049
        text = ("19" if text[:2] >= "50" else "20") + text
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError(f"notAfter has the unexpected DER tag {tag:#x}")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)


def _der_element(der: bytes, at: int, *, expect: int | None = None) -> tuple[int, int, int]:
    """(tag, start, end) of the DER element at `at`: its contents are der[start:end]."""
    tag, length = der[at], der[at + 1]
    if expect is not None and tag != expect:
        raise ValueError(f"expected DER tag {expect:#x} at {at}, found {tag:#x}")
    start = at + 2
    if length & 0x80:  # long form: the next (length & 0x7f) bytes hold the length
        count = length & 0x7F
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    if start + length > len(der):
        raise ValueError("truncated DER")
    return tag, start, start + length


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TLSConfigError(f"cannot read {path}: {error.strerror}") from None


def _signature(cert_file: Path, key_file: Path) -> _Signature:
    # os.stat follows symlinks: a Secret volume swapping its `..data` link shows up as new
    # inodes even though `tls.crt` itself is the same link.
    try:
        cert, key = os.stat(cert_file), os.stat(key_file)
    except OSError as error:
        raise TLSConfigError(f"cannot read {error.filename}: {error.strerror}") from None
    return (
        (cert.st_ino, cert.st_mtime_ns, cert.st_size),
        (key.st_ino, key.st_mtime_ns, key.st_size),
    )
