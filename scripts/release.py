"""What a release tag publishes, read from the repository's own files (the release workflow's
single source: nothing about the image or chart is written in the workflow itself).

    python scripts/release.py plan --tag v0.1.0 --owner shm-webhook   # key=value lines
    python scripts/release.py notes 0.1.0                            # that CHANGELOG section

`plan` checks that the tag, pyproject's version, the chart's version and appVersion are one
version, that the CHANGELOG has a section for it, that the chart's Artifact Hub annotations
name the image and the prerelease state that version has, and that the repository's owner can
push where values.yaml says the image lives (the GitHub token pushes only below its owner). It
prints `version`, `image` (the reference the chart renders by default), `chart_repository`
(`oci://<registry>/<owner>/charts`) and `prerelease`, for $GITHUB_OUTPUT.

Standard library and PyYAML only. Exit code 2 with one line on stderr when a check fails.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
# Keep a Changelog: "## [0.1.0] - 2026-12-04"; link definitions ("[0.1.0]: https://...") close it.
_SECTION = re.compile(r"^## \[(?P<version>[^\]]+)\]")
_LINK_DEFINITION = re.compile(r"^\[[^\]]+\]: ")


class ReleaseError(Exception):
    """The repository is not ready to release this tag; the message says what to change."""


@dataclass(frozen=True)
class Plan:
    version: str
    image: str
    chart_repository: str
    prerelease: bool

    def lines(self) -> list[str]:
        return [
            f"version={self.version}",
            f"image={self.image}",
            f"chart_repository={self.chart_repository}",
            f"prerelease={str(self.prerelease).lower()}",
        ]


def _yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ReleaseError(f"{path.name} is not a YAML map")
    return loaded


def default_image(values: Mapping[str, Any], chart: Mapping[str, Any]) -> str:
    """The image reference the chart renders with its default values (templates/_helpers.tpl)."""
    image = values["image"]
    registry = values["global"]["imageRegistry"] or image["registry"]
    reference = f"{registry}/{image['repository']}" if registry else image["repository"]
    reference = f"{reference}:{image['tag'] or chart['appVersion']}"
    return f"{reference}@{image['digest']}" if image["digest"] else reference


def changelog_section(changelog: str, version: str) -> str:
    """The body of the CHANGELOG section of version, without its heading."""
    lines = changelog.splitlines()
    starts = [
        i for i, line in enumerate(lines) if (m := _SECTION.match(line)) and m["version"] == version
    ]
    if len(starts) != 1:
        how = "is missing" if not starts else f"appears {len(starts)} times"
        raise ReleaseError(f"CHANGELOG.md: the section ## [{version}] {how}")
    body: list[str] = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith("## ") or _LINK_DEFINITION.match(line):
            break
        body.append(line)
    text = "\n".join(body).strip()
    if not text:
        raise ReleaseError(f"CHANGELOG.md: the section ## [{version}] is empty")
    return text + "\n"


def plan(*, tag: str, owner: str, repo: Path = REPO) -> Plan:
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))
    chart_dir = repo / "charts" / "shm-webhook"
    chart = _yaml(chart_dir / "Chart.yaml")
    values = _yaml(chart_dir / "values.yaml")
    version = tag.removeprefix("v")
    if not tag.startswith("v") or not version:
        raise ReleaseError(f"the tag {tag!r} is not v<version>")
    found = {
        "pyproject.toml version": pyproject["project"]["version"],
        "Chart.yaml version": str(chart["version"]),
        "Chart.yaml appVersion": str(chart["appVersion"]),
    }
    for where, value in found.items():
        if value != version:
            raise ReleaseError(f"the tag {tag} says {version} but {where} is {value}")
    changelog_section((repo / "CHANGELOG.md").read_text(encoding="utf-8"), version)

    pinned = {key: values["image"][key] for key in ("tag", "digest") if values["image"][key]}
    if pinned:
        raise ReleaseError(
            f"values.yaml pins the image ({pinned}): the chart must default to the image this "
            "tag publishes, so image.tag and image.digest stay empty"
        )
    image = default_image(values, chart)
    registry = values["global"]["imageRegistry"] or values["image"]["registry"]
    namespace = values["image"]["repository"].split("/")[0]
    if (registry, namespace) != ("ghcr.io", owner.lower()):
        raise ReleaseError(
            f"values.yaml publishes {image}, which the token of {owner} cannot push: set "
            f"image.registry to ghcr.io and image.repository to {owner.lower()}/<name>"
        )
    annotations = chart.get("annotations") or {}
    listed = [entry["image"] for entry in yaml.safe_load(annotations["artifacthub.io/images"])]
    if listed != [image]:
        raise ReleaseError(f"Chart.yaml artifacthub.io/images lists {listed}, expected [{image}]")
    prerelease = "-" in version  # semver: 0.2.0-rc.1
    wanted = str(prerelease).lower()
    if annotations["artifacthub.io/prerelease"] != wanted:
        raise ReleaseError(f"Chart.yaml artifacthub.io/prerelease must be {wanted!r} for {version}")
    return Plan(version, image, f"oci://{registry}/{namespace}/charts", prerelease)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    plan_parser = commands.add_parser("plan", help="check a tag and print what it publishes")
    plan_parser.add_argument("--tag", required=True, help="the pushed tag, v<version>")
    plan_parser.add_argument("--owner", required=True, help="the GitHub repository's owner")
    notes_parser = commands.add_parser("notes", help="print the CHANGELOG section of a version")
    notes_parser.add_argument("version")
    for each in (plan_parser, notes_parser):
        each.add_argument("--repo", type=Path, default=REPO, help="the repository's root")
    options = parser.parse_args(argv)
    try:
        if options.command == "plan":
            print("\n".join(plan(tag=options.tag, owner=options.owner, repo=options.repo).lines()))
        else:
            changelog = (options.repo / "CHANGELOG.md").read_text(encoding="utf-8")
            sys.stdout.write(changelog_section(changelog, options.version))
    except (ReleaseError, OSError, KeyError, TypeError, yaml.YAMLError) as error:
        message = f"missing {error}" if isinstance(error, KeyError) else str(error)
        print(f"release: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
