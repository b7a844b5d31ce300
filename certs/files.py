"""Writing a certificate bundle to a directory, in the file names Kubernetes TLS Secrets use.

Owns: `write_bundle` (`ca.crt`, `tls.crt`, `tls.key`, and `ca.key` only on request) and the file
names. Every file is replaced atomically, so a server reloading from the directory never reads
half a key. Must not import kubernetes or anything in `webhook`; making certificates is
`certs.generate`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from certs.generate import Bundle

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"

_PUBLIC_MODE = 0o644
_SECRET_MODE = 0o600


def write_bundle(bundle: Bundle, out_dir: Path, *, include_ca_key: bool = False) -> None:
    """Write the bundle into `out_dir` (created if missing); keys are readable by the owner only.

    The CA key is left out unless `include_ca_key`: whoever holds it can mint certificates the
    kube-apiserver trusts for this webhook.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    _replace(out_dir / CA_CERT_FILE, bundle.ca_cert_pem, mode=_PUBLIC_MODE)
    if include_ca_key:
        _replace(out_dir / CA_KEY_FILE, bundle.ca_key_pem, mode=_SECRET_MODE)
    # Key before certificate: a reloader that sees the new certificate then also finds its key.
    _replace(out_dir / KEY_FILE, bundle.key_pem, mode=_SECRET_MODE)
    _replace(out_dir / CERT_FILE, bundle.cert_pem, mode=_PUBLIC_MODE)


def _replace(path: Path, content: bytes, *, mode: int) -> None:
    # mkstemp creates the file 0600 whatever the umask, so a key is never briefly world-readable.
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as temp:
            os.fchmod(temp.fileno(), mode)
            temp.write(content)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
