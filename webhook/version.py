"""The version of this build: pyproject.toml's, as the installed distribution reports it.

Owns: `VERSION`, shown by `shm-webhook --version` and the `shm_webhook_build_info` metric; the
chart's appVersion is tested equal to it. Pure: the standard library only.
"""

from __future__ import annotations

from importlib import metadata

try:
    VERSION = metadata.version("shm-webhook")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    VERSION = "0+unknown"
