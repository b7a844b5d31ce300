"""What the cluster tier is told by its environment, read once and checked.

Owns the variables and the tier's one skip message:

- `KUBECONFIG`: the cluster. Required, and never defaulted to `~/.kube/config`: the tier
  installs a cluster-wide webhook and must not land on whatever cluster a shell points at.
- `SHM_WEBHOOK_IMAGE`: a reference of the project image the cluster can start (pulled with
  `IfNotPresent`), or else
- `SHM_WEBHOOK_IMAGE_LOAD`: a command with `{archive}` in it; the tier builds the image
  (tests/image/build.py), exports it as a docker-archive and runs the command to load it
  into the cluster's runtime (`kind load image-archive {archive}`).
- `SHM_WEBHOOK_TEST_IMAGE` (optional): the image of the measuring pods, which run
  `python3 -c`; default: the project image.

Pure: reads a mapping, imports nothing of the project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

KUBECONFIG = "KUBECONFIG"
IMAGE = "SHM_WEBHOOK_IMAGE"
IMAGE_LOAD = "SHM_WEBHOOK_IMAGE_LOAD"
TEST_IMAGE = "SHM_WEBHOOK_TEST_IMAGE"
ARCHIVE_FIELD = "{archive}"

NEEDS = (
    f"the cluster tier needs {KUBECONFIG} naming a throwaway cluster and an image it can "
    f"start: {IMAGE}=<reference>, or {IMAGE_LOAD}='<command> {ARCHIVE_FIELD}' to build the "
    "image and load it (docs/testing-tiers.md); skipped even under CI=true"
)


class BadEnvironment(Exception):
    """The variables are set but cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Environment:
    kubeconfig: str
    image: str | None  # a reference to use as it is
    image_load: str | None  # a command template, when the tier builds the image
    test_image: str | None


def read(environ: Mapping[str, str]) -> Environment | None:
    """The tier's settings; None when it is not asked to run (then it skips with `NEEDS`)."""
    kubeconfig = environ.get(KUBECONFIG, "").strip()
    image = environ.get(IMAGE, "").strip() or None
    image_load = environ.get(IMAGE_LOAD, "").strip() or None
    if not kubeconfig or (image is None and image_load is None):
        return None
    if image is not None and image_load is not None:
        raise BadEnvironment(
            f"{IMAGE} and {IMAGE_LOAD} are both set: set {IMAGE} to use an image the cluster "
            f"has, or {IMAGE_LOAD} to build and load one, not both"
        )
    if image_load is not None and ARCHIVE_FIELD not in image_load:
        raise BadEnvironment(
            f"{IMAGE_LOAD}={image_load!r} has no {ARCHIVE_FIELD}: write where the archive "
            f"goes, e.g. 'kind load image-archive {ARCHIVE_FIELD}'"
        )
    return Environment(
        kubeconfig=kubeconfig,
        image=image,
        image_load=image_load,
        test_image=environ.get(TEST_IMAGE, "").strip() or None,
    )


@dataclass(frozen=True)
class Reference:
    """An image reference split as the chart's values take it."""

    repository: str
    tag: str
    digest: str


def split(reference: str) -> Reference:
    """`registry/repo:tag@sha256:...` into the chart's `image.repository` (registry included:
    the chart's `image.registry` is set empty), `image.tag` and `image.digest`."""
    name, _, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    else:
        tag = "latest"
    if not name or not tag or (digest and not digest.startswith("sha256:")):
        raise BadEnvironment(
            f"{IMAGE}={reference!r} is not an image reference; write e.g. "
            "localhost/shm-webhook:dev or ghcr.io/org/shm-webhook:1.0@sha256:<digest>"
        )
    return Reference(repository=name, tag=tag, digest=digest)
