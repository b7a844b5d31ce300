# The shm-webhook image: `docker build -t shm-webhook .` from the repository root.
#
# Two stages on the same Python base: `build` turns the project into a wheel and installs it,
# with its runtime dependencies, into the virtualenv /opt/venv; the final stage receives that
# virtualenv and nothing else (no sources, no wheels, no pip cache, no compilers). Both stages
# must use the same base image: the virtualenv's python is a symlink to the base's interpreter.
#
# Runs as 65532:65532 under a read-only root filesystem: the process writes only below /tmp
# (the chart mounts an emptyDir there), which holds HOME and the development certificate of a
# `serve` started without --tls-cert-file.

FROM python:3.11-slim-bookworm AS build

WORKDIR /src
# Exactly what the wheel is built from; .dockerignore keeps everything else out of the context.
COPY pyproject.toml README.md ./
COPY webhook/ webhook/
COPY certs/ certs/

# The wheel alone first (--no-deps), then its installation resolves the runtime dependencies.
# The virtualenv gets no pip or setuptools of its own (the base image's pip installs into it
# with --python), so the image ships no installer the service does not use. pip compiles every
# module to .pyc while installing, so nothing needs writing at run time.
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-cache-dir --disable-pip-version-check \
        /wheels/*.whl

FROM python:3.11-slim-bookworm

# Set at build time by CI: docker build --build-arg SOURCE_URL=https://... .
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="shm-webhook" \
      org.opencontainers.image.description="Kubernetes mutating admission webhook that gives pods a sized, memory-backed /dev/shm" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE_URL}"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

COPY --from=build /opt/venv /opt/venv

# Numeric, so Kubernetes can verify runAsNonRoot without an /etc/passwd entry.
USER 65532:65532
WORKDIR /tmp
# HTTPS admission endpoint, plain-HTTP Prometheus metrics (the `serve` defaults).
EXPOSE 8443 9090
ENTRYPOINT ["shm-webhook"]
CMD ["serve"]
