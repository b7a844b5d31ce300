# The shm-webhook image: `docker build -t shm-webhook .` (or `buildah bud`) from the repository root.
#
# One base image, Debian 12 "bookworm" slim, pinned by tag and digest. The build stage installs
# Debian's Python 3.11 and assembles in /rootfs, from Debian packages, the final stage's root
# filesystem: the interpreter, the libraries it loads, a passwd file, and no shell or package
# manager (what a distroless image holds, made here from Debian's packages at their current
# security level instead of from a third party's release). Into /opt/venv it installs the locked
# runtime dependencies (requirements/runtime.txt, hash-checked, wheels only) and the project's
# wheel. The final stage is /rootfs plus /opt/venv; the virtualenv's python is a symlink to
# /usr/bin/python3.11, the same Debian build in both stages.
#
# Runs as 65532:65532 under a read-only root filesystem: the process writes only below /tmp
# (the chart mounts an emptyDir there), which holds HOME and the development certificate of a
# `serve` started without --tls-cert-file.
#
# SOURCE_URL (a build argument) sets the org.opencontainers.image.source label; the optional
# secrets pip.conf and pip-cert configure pip in the build stage (a PyPI mirror, a proxy). The suite
# (tests/image/) builds with DEBIAN_DIGEST="" from a stand-in for debian:12-slim that
# scripts/image_base.py makes from Debian packages.

ARG DEBIAN=docker.io/library/debian:12-slim
ARG DEBIAN_DIGEST=@sha256:d5d3f9c23164ea16f31852f95bd5959aad1c5e854332fe00f7b3a20fcc9f635c

FROM ${DEBIAN}${DEBIAN_DIGEST} AS build

# What the final stage's Python needs at run time: Debian's python3.11-minimal and
# libpython3.11-stdlib with their Depends (resolved by hand, as distroless does: apt would add
# dpkg, tar and perl), libgcc-s1 for the Rust-built wheels, base-files for /etc/os-release and
# netbase for /etc/services. tests/image/ loads every extension module of the image.
ARG RUNTIME_PACKAGES="base-files netbase media-types tzdata \
    libc6 libgcc-s1 libssl3 zlib1g libffi8 libexpat1 libbz2-1.0 liblzma5 libcrypt1 libuuid1 \
    libsqlite3-0 libdb5.3 libncursesw6 libtinfo6 libreadline8 readline-common \
    libnsl2 libtirpc3 libtirpc-common libgssapi-krb5-2 libk5crypto3 libkrb5-3 libkrb5support0 \
    libkeyutils1 libcom-err2 \
    python3.11-minimal libpython3.11-minimal libpython3.11-stdlib"

# Debian stable replaces a package's version with each security update, so pinned versions would
# stop the build at the next one; the base image's digest pins where apt starts from.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3.11-venv

# The runtime root: each package's files unpacked (its maintainer scripts never run, there is no
# dpkg), with /bin, /lib, /lib64 and /sbin symlinks into /usr as on Debian 12. status.d/ holds each
# package's control fields where image scanners look for them in a distroless image. The stdlib
# is byte-compiled here, as Debian's postinst would, since nothing can write .pyc at run time.
WORKDIR /debs
# hadolint ignore=SC2086
RUN mkdir -p /rootfs/usr/bin /rootfs/usr/lib /rootfs/usr/lib64 /rootfs/usr/sbin \
        /rootfs/var/lib/dpkg/status.d \
    && for dir in bin lib lib64 sbin; do ln -s "usr/$dir" "/rootfs/$dir"; done \
    && apt-get download $RUNTIME_PACKAGES \
    && for deb in *.deb; do \
        dpkg-deb --fsys-tarfile "$deb" >/tmp/files.tar \
        && tar -x --keep-directory-symlink -f /tmp/files.tar -C /rootfs \
        && dpkg-deb --field "$deb" >"/rootfs/var/lib/dpkg/status.d/$(dpkg-deb --field "$deb" Package)"; \
    done \
    && find /rootfs/usr/share/doc -mindepth 2 ! -name copyright -delete \
    && rm -rf /rootfs/usr/share/man /rootfs/usr/share/info /rootfs/usr/share/lintian \
        /rootfs/usr/share/locale \
    && python3.11 -m compileall -q -j 0 -s /rootfs -p / /rootfs/usr/lib/python3.11 \
    && printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' \
        'nonroot:x:65532:65532:nonroot:/tmp:/usr/sbin/nologin' >/rootfs/etc/passwd \
    && printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >/rootfs/etc/group \
    && install -d -m 1777 /rootfs/tmp

# pip runs from its own virtualenv (/opt/pip, with the build backend) and installs into /opt/venv
# with --python, so the image ships no installer. Every requirement is locked with its hashes
# (scripts/lock) and comes as a wheel: nothing is compiled, no compiler is installed. The
# optional secrets reach a PyPI mirror or a proxy: a pip.conf, and the CA bundle it may name as
# /run/secrets/pip-cert (docker build --secret id=pip.conf,src=... --secret id=pip-cert,src=...).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ONLY_BINARY=:all:
WORKDIR /src
COPY requirements/build.txt requirements/runtime.txt requirements/
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-cert,target=/run/secrets/pip-cert \
    python3.11 -m venv /opt/pip \
    && /opt/pip/bin/pip install --no-cache-dir --require-hashes --no-deps \
        -r requirements/build.txt \
    && python3.11 -m venv --without-pip /opt/venv \
    && /opt/pip/bin/pip --python /opt/venv/bin/python install --no-cache-dir --require-hashes \
        --no-deps -r requirements/runtime.txt

# Exactly what the wheel is built from; .dockerignore keeps everything else out of the context.
# pip compiles every module to .pyc while installing, so nothing needs writing at run time.
COPY pyproject.toml README.md LICENSE ./
COPY webhook/ webhook/
COPY certs/ certs/
RUN /opt/pip/bin/pip wheel --no-cache-dir --no-build-isolation --no-deps --wheel-dir /wheels . \
    && /opt/pip/bin/pip --python /opt/venv/bin/python install --no-cache-dir --no-index \
        --no-deps /wheels/*.whl \
    && /opt/pip/bin/pip --python /opt/venv/bin/python check

FROM scratch

# Set at build time by CI: docker build --build-arg SOURCE_URL=https://... .
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="shm-webhook" \
      org.opencontainers.image.description="Kubernetes mutating admission webhook that gives pods a sized, memory-backed /dev/shm" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE_URL}"

COPY --from=build /rootfs/ /
COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:/usr/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

# Numeric, so Kubernetes can verify runAsNonRoot; /etc/passwd names it "nonroot" all the same.
USER 65532:65532
WORKDIR /tmp
# HTTPS admission endpoint, plain-HTTP Prometheus metrics (the `serve` defaults).
EXPOSE 8443 9090
ENTRYPOINT ["shm-webhook"]
CMD ["serve"]
