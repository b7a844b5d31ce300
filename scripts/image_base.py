"""Stand in for the Dockerfile's base image, made from Debian packages, so the image builds with no
container registry:

    python scripts/image_base.py [--root DIR --runroot DIR]

mmdebstrap makes a root filesystem holding exactly the packages of the real debian:12-slim
(PACKAGES, its published manifest) with the same documentation excludes, from the Debian mirror
this machine's apt uses (read from /etc/apt at run time, never written down here). The tarball is
cached under `$XDG_CACHE_HOME/shm-webhook/image/` (default `~/.cache/...`), keyed by everything
that shapes it; buildah imports it into its local storage (the one `--root` names, default the
system's) under the exact name the Dockerfile's FROM line uses, with the real image's PATH and
CMD. Prints that name.

Standard library only; Debian hosts only (apt sources, mmdebstrap, buildah). Exit code 2 with one
line on stderr when the stand-in cannot be made.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

NAME = "docker.io/library/debian:12-slim"
SUITE = "bookworm"
# The package set of the real image (debuerreotype's bookworm/slim rootfs.manifest).
_MANIFEST = """
adduser apt base-files base-passwd bash bsdutils coreutils dash debconf debian-archive-keyring
debianutils diffutils dpkg e2fsprogs findutils gcc-12-base gpgv grep gzip hostname
init-system-helpers libacl1 libapt-pkg6.0 libattr1 libaudit-common libaudit1 libblkid1
libbz2-1.0 libc-bin libc6 libcap-ng0 libcap2 libcom-err2 libcrypt1 libdb5.3 libdebconfclient0
libext2fs2 libffi8 libgcc-s1 libgcrypt20 libgmp10 libgnutls30 libgpg-error0 libhogweed6
libidn2-0 liblz4-1 liblzma5 libmd0 libmount1 libnettle8 libp11-kit0 libpam-modules
libpam-modules-bin libpam-runtime libpam0g libpcre2-8-0 libseccomp2 libselinux1
libsemanage-common libsemanage2 libsepol2 libsmartcols1 libss2 libstdc++6 libsystemd0
libtasn1-6 libtinfo6 libudev1 libunistring2 libuuid1 libxxhash0 libzstd1 login logsave mawk
mount ncurses-base ncurses-bin passwd perl-base sed sysvinit-utils tar tzdata usr-is-merged
util-linux util-linux-extra zlib1g
"""
PACKAGES = tuple(_MANIFEST.split())
MMDEBSTRAP_OPTIONS = (
    "--quiet",
    # custom: exactly PACKAGES (apt would pick usrmerge, and with it perl, for init-system-helpers);
    # the hook makes /bin, /lib and /sbin the symlinks into /usr that Debian 12 has.
    "--variant=custom",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    # Device nodes come from the container runtime, not from the image.
    "--skip=output/dev",
    # What debuerreotype's --slimify leaves out of the -slim images.
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/lintian/*",
)
# The real image's configuration (docker inspect debian:12-slim).
CONFIG = (
    "--env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    '--cmd=["bash"]',
)
KEY_LABEL = "io.github.shm-webhook.stand-in"
_TIMEOUT_S = 900


class StandInError(Exception):
    """The stand-in cannot be made; the message says why."""


@dataclass(frozen=True)
class Source:
    """One `deb` entry of apt's sources, in deb822 fields."""

    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str = ""

    def deb822(self, suites: Sequence[str]) -> str:
        lines = [
            "Types: deb",
            f"URIs: {' '.join(self.uris)}",
            f"Suites: {' '.join(suites)}",
            f"Components: {' '.join(self.components)}",
        ]
        if self.signed_by:
            lines.append(f"Signed-By: {self.signed_by}")
        return "\n".join(lines) + "\n"


def parse_deb822(text: str) -> Iterator[Source]:
    """The enabled `deb` stanzas of a .sources file (continuation lines and comments allowed)."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        yield Source(
            uris=tuple(fields.get("uris", "").split()),
            suites=tuple(fields.get("suites", "").split()),
            components=tuple(fields.get("components", "").split()),
            signed_by=fields.get("signed-by", "").strip(),
        )


def parse_one_line(text: str) -> Iterator[Source]:
    """The `deb` lines of a sources.list file: `deb [options] uri suite component...`."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        options: dict[str, str] = {}
        if len(words) > 1 and words[1].startswith("["):
            end = next(i for i, word in enumerate(words) if word.endswith("]"))
            for option in " ".join(words[1 : end + 1]).strip("[]").split():
                name, _, value = option.partition("=")
                options[name] = value
            words = [words[0], *words[end + 1 :]]
        if len(words) >= 3:
            yield Source((words[1],), (words[2],), tuple(words[3:]), options.get("signed-by", ""))


def host_sources(apt_dir: Path = Path("/etc/apt")) -> list[Source]:
    """Every enabled `deb` source of this machine's apt, in the order apt reads them."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    sources: list[Source] = []
    for path in files:
        if path.suffix == ".sources" and path.is_file():
            sources += parse_deb822(path.read_text())
        elif path.name.endswith(".list") and path.is_file():
            sources += parse_one_line(path.read_text())
    return sources


def host_codename(os_release: Path = Path("/etc/os-release")) -> str:
    try:
        text = os_release.read_text()
    except OSError as error:
        raise StandInError(f"cannot read {os_release}: {error.strerror}") from error
    match = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.MULTILINE)
    if match is None:
        raise StandInError(f"{os_release} names no VERSION_CODENAME: is this Debian?")
    return match[1]


def mirror_sources(sources: Sequence[Source], *, codename: str, suite: str = SUITE) -> str:
    """deb822 sources for `suite` (and its -updates and -security) on the host's Debian mirrors:
    the entries of the host's release `codename`, with that name changed to `suite`."""
    stanzas = []
    for source in sources:
        suites = [
            suite + name[len(codename) :]
            for name in source.suites
            if name == codename or name.startswith(f"{codename}-")
        ]
        if suites and "main" in source.components:
            stanzas.append(source.deb822(suites))
    if not stanzas:
        raise StandInError(
            f"this machine's apt sources (/etc/apt) have no enabled `deb` entry for {codename} "
            "with the main component: mmdebstrap has no Debian mirror to use"
        )
    return "\n".join(stanzas)


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return (Path(root) / "shm-webhook" / "image").expanduser().absolute()


def cache_key(sources: str) -> str:
    """What the tarball depends on: the suite, the packages, mmdebstrap's options, the mirrors."""
    shaped = json.dumps([SUITE, sorted(PACKAGES), MMDEBSTRAP_OPTIONS, CONFIG, sources])
    return hashlib.sha256(shaped.encode()).hexdigest()[:16]


def make_rootfs(tarball: Path, *, sources: str) -> None:
    """The root filesystem as a tarball, made through a temporary name (a stopped run leaves
    no half a tarball behind to be taken for a cached one)."""
    if shutil.which("mmdebstrap") is None:
        raise StandInError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_name(f".{tarball.name}.{os.getpid()}.partial.tar")
    with tempfile.TemporaryDirectory(prefix="shm-webhook-base-") as tmp:
        listing = Path(tmp) / "mirror.sources"
        listing.write_text(sources)
        command = [
            "mmdebstrap",
            *MMDEBSTRAP_OPTIONS,
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(partial),
            str(listing),
        ]
        print(f"image_base: mmdebstrap {SUITE} ({len(PACKAGES)} packages)", file=sys.stderr)
        done = subprocess.run(command, stdout=sys.stderr, timeout=_TIMEOUT_S, check=False)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise StandInError(f"mmdebstrap failed (exit {done.returncode}); see its output above")
    os.replace(partial, tarball)


def _buildah(storage: Sequence[str], *args: str) -> str:
    done = subprocess.run(
        ["buildah", *storage, *args], capture_output=True, text=True, timeout=_TIMEOUT_S
    )
    if done.returncode != 0:
        raise StandInError(f"buildah {args[0]} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def imported_key(storage: Sequence[str]) -> str | None:
    """The cache key of the stand-in already in the storage under NAME, if any."""
    done = subprocess.run(
        ["buildah", *storage, "inspect", "--type", "image", NAME],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        return None
    labels = json.loads(done.stdout).get("OCIv1", {}).get("config", {}).get("Labels") or {}
    key = labels.get(KEY_LABEL)
    return key if isinstance(key, str) else None


def import_image(tarball: Path, *, key: str, storage: Sequence[str]) -> None:
    """Commit the tarball as the image NAME: a scratch container with the files unpacked, as root,
    with their owners and modes."""
    container = _buildah(storage, "from", "--pull=never", "scratch")
    try:
        mount = _buildah(storage, "mount", container)
        subprocess.run(
            ["tar", "-x", "--numeric-owner", "-p", "-f", str(tarball), "-C", mount],
            check=True,
            timeout=_TIMEOUT_S,
        )
        _buildah(storage, "config", *CONFIG, f"--label={KEY_LABEL}={key}", container)
        _buildah(storage, "commit", "--quiet", container, NAME)
    finally:
        subprocess.run(["buildah", *storage, "rm", container], capture_output=True, check=False)


def provide(storage: Sequence[str]) -> str:
    """Make NAME exist in the storage as the stand-in for the current package set and mirrors."""
    if shutil.which("buildah") is None:
        raise StandInError("buildah is not installed (apt-get install buildah)")
    sources = mirror_sources(host_sources(), codename=host_codename())
    key = cache_key(sources)
    if imported_key(storage) == key:
        return NAME
    tarball = cache_dir() / f"debian-12-slim-{key}.tar"
    if not tarball.is_file():
        make_rootfs(tarball, sources=sources)
    import_image(tarball, key=key, storage=storage)
    return NAME


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="buildah's storage root (buildah --root)")
    parser.add_argument("--runroot", help="buildah's state directory (buildah --runroot)")
    args = parser.parse_args(argv)
    storage = [f"--{name}={value}" for name in ("root", "runroot") if (value := vars(args)[name])]
    try:
        print(provide(storage))
    except (StandInError, OSError, subprocess.SubprocessError) as error:
        print(f"scripts/image_base.py: cannot stand in for {NAME}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
