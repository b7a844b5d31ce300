"""One version, one image name: the chart, pyproject and the release workflow agree.

scripts/release.py is the release workflow's only source for what a tag publishes; these tests
check it against the chart as helm renders it, run the workflow's own shell steps with stand-ins
for the GitHub-only commands, and hold the workflows to their pins.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import CHART_DIR, Chart, webhook_container

REPO = CHART_DIR.parents[1]
RELEASE_SCRIPT = REPO / "scripts" / "release.py"
WORKFLOWS = REPO / ".github" / "workflows"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]
CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
OWNER = "shm-webhook"
CHANGELOG = f"""# Changelog

## [Unreleased]

## [{VERSION}] - 2026-12-04

### Added

- Everything.

## [0.0.1] - 2026-01-01

- Nothing much.

[Unreleased]: https://example.invalid/compare/v{VERSION}...HEAD
[{VERSION}]: https://example.invalid/releases/v{VERSION}
"""


def release(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(RELEASE_SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The files scripts/release.py reads, with a CHANGELOG that has this version's section."""
    (tmp_path / "charts" / "shm-webhook").mkdir(parents=True)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    for name in ("Chart.yaml", "values.yaml"):
        shutil.copy(CHART_DIR / name, tmp_path / "charts" / "shm-webhook" / name)
    (tmp_path / "CHANGELOG.md").write_text(CHANGELOG, encoding="utf-8")
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def plan(repo: Path, tag: str = f"v{VERSION}", owner: str = OWNER) -> dict[str, str]:
    done = release("plan", "--tag", tag, "--owner", owner, "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def refusal(repo: Path, tag: str = f"v{VERSION}", owner: str = OWNER) -> str:
    done = release("plan", "--tag", tag, "--owner", owner, "--repo", str(repo))
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith("release: ")
    assert done.stderr.count("\n") == 1
    return done.stderr


def test_one_version_for_the_package_the_chart_and_the_image() -> None:
    assert CHART["appVersion"] == VERSION
    assert CHART["version"] == VERSION


def test_the_release_publishes_the_image_the_chart_deploys_by_default(
    chart: Chart, repo: Path
) -> None:
    planned = plan(repo)
    assert planned == {
        "version": VERSION,
        "image": f"ghcr.io/{OWNER}/shm-webhook:{VERSION}",
        "chart_repository": f"oci://ghcr.io/{OWNER}/charts",
        "prerelease": "false",
    }
    assert webhook_container(chart.render())["image"] == planned["image"]


def test_artifact_hub_lists_the_default_image_and_the_license(chart: Chart) -> None:
    annotations = CHART["annotations"]
    images = yaml.safe_load(annotations["artifacthub.io/images"])
    assert [entry["image"] for entry in images] == [webhook_container(chart.render())["image"]]
    assert images[0]["platforms"] == ["linux/amd64", "linux/arm64"]
    assert annotations["artifacthub.io/license"] == PYPROJECT["project"]["license"]
    assert annotations["artifacthub.io/prerelease"] == "false"
    links = yaml.safe_load(annotations["artifacthub.io/links"])
    assert all(set(link) == {"name", "url"} for link in links)
    assert links[0]["url"] == CHART["home"]


def test_the_chart_names_its_home_sources_and_maintainers() -> None:
    home = CHART["home"]
    assert home == f"https://github.com/{OWNER}/shm-webhook"
    assert CHART["sources"] == [home]
    assert CHART["maintainers"]
    assert all(m["name"] for m in CHART["maintainers"])
    assert {"shm", "admission-webhook"} <= set(CHART["keywords"])


REFUSALS = [
    # (edit to the repository copy as (file, old, new) or None, tag, owner, what stderr says)
    pytest.param(
        None,
        "v9.9.9",
        OWNER,
        f"says 9.9.9 but pyproject.toml version is {VERSION}",
        id="a tag that is not pyproject's version",
    ),
    pytest.param(
        None, VERSION, OWNER, f"the tag '{VERSION}' is not v<version>", id="a tag without its v"
    ),
    pytest.param(
        ("charts/shm-webhook/Chart.yaml", f"version: {VERSION}", "version: 9.9.9"),
        f"v{VERSION}",
        OWNER,
        "Chart.yaml version is 9.9.9",
        id="another chart version",
    ),
    pytest.param(
        ("charts/shm-webhook/Chart.yaml", f'appVersion: "{VERSION}"', 'appVersion: "9"'),
        f"v{VERSION}",
        OWNER,
        "Chart.yaml appVersion is 9",
        id="another appVersion",
    ),
    pytest.param(
        ("CHANGELOG.md", f"## [{VERSION}] - 2026-12-04", "## [9.9.9] - 2026-12-04"),
        f"v{VERSION}",
        OWNER,
        f"the section ## [{VERSION}] is missing",
        id="a CHANGELOG without the version's section",
    ),
    pytest.param(
        None,
        f"v{VERSION}",
        "someone-else",
        "set image.registry to ghcr.io and image.repository to someone-else/<name>",
        id="an owner that cannot push where values.yaml points",
    ),
    pytest.param(
        ("charts/shm-webhook/values.yaml", 'tag: ""', 'tag: "1.0"'),
        f"v{VERSION}",
        OWNER,
        "values.yaml pins the image ({'tag': '1.0'})",
        id="a pinned image tag",
    ),
    pytest.param(
        (
            "charts/shm-webhook/Chart.yaml",
            f"shm-webhook/shm-webhook:{VERSION}",
            "shm-webhook/other:1",
        ),
        f"v{VERSION}",
        OWNER,
        "artifacthub.io/images lists ['ghcr.io/shm-webhook/other:1']",
        id="an Artifact Hub image that is not the default one",
    ),
]


@pytest.mark.parametrize(("change", "tag", "owner", "message"), REFUSALS)
def test_plan_refuses(
    repo: Path, change: tuple[str, str, str] | None, tag: str, owner: str, message: str
) -> None:
    if change:
        edit(repo / change[0], change[1], change[2])
    assert message in refusal(repo, tag, owner)


def test_a_prerelease_version_needs_the_prerelease_annotation(repo: Path) -> None:
    rc = f"{VERSION}-rc.1"
    edit(repo / "pyproject.toml", f'version = "{VERSION}"', f'version = "{rc}"')
    chart = repo / "charts" / "shm-webhook" / "Chart.yaml"
    edit(chart, VERSION, rc)
    edit(repo / "CHANGELOG.md", f"## [{VERSION}]", f"## [{rc}]")
    assert "artifacthub.io/prerelease must be 'true'" in refusal(repo, f"v{rc}")
    edit(chart, 'artifacthub.io/prerelease: "false"', 'artifacthub.io/prerelease: "true"')
    assert plan(repo, f"v{rc}")["prerelease"] == "true"


def test_notes_are_the_version_section_without_heading_or_links(repo: Path) -> None:
    done = release("notes", VERSION, "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "### Added\n\n- Everything.\n"


def test_the_last_section_stops_at_the_link_definitions(repo: Path) -> None:
    edit(repo / "CHANGELOG.md", "## [0.0.1] - 2026-01-01\n\n- Nothing much.\n\n", "")
    edit(repo / "CHANGELOG.md", f"## [{VERSION}] - 2026-12-04", "## [0.0.0] - 2026-12-04")
    assert release("notes", "0.0.0", "--repo", str(repo)).stdout == "### Added\n\n- Everything.\n"


def test_an_empty_section_is_refused(repo: Path) -> None:
    done = release("notes", "Unreleased", "--repo", str(repo))
    assert done.returncode == 2
    assert done.stderr == "release: CHANGELOG.md: the section ## [Unreleased] is empty\n"


def test_the_changelog_has_the_section_of_the_current_version() -> None:
    if not (REPO / "CHANGELOG.md").exists():
        pytest.skip("CHANGELOG.md does not exist yet; the change that writes it adds it")
    done = release("notes", VERSION)
    assert done.returncode == 0, done.stderr


def workflow(name: str) -> dict[Any, Any]:
    loaded = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def steps(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A job's steps by name, or by action for unnamed ones."""
    return {step.get("name") or step["uses"].split("@")[0]: step for step in job["steps"]}


def test_ci_runs_make_test_on_python_3_11() -> None:
    ci = workflow("ci.yml")
    assert set(ci[True]) == {"push", "pull_request", "workflow_call"}  # YAML reads `on` as True
    job = ci["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    found = steps(job)
    assert found["actions/setup-python"]["with"]["python-version"] == "3.11"
    assert found["make test"]["run"].strip() == "make test"
    assert "wrk" in found["Debian packages the suite needs"]["run"]


def test_a_tag_is_tested_before_anything_is_published() -> None:
    jobs = workflow("release.yml")["jobs"]
    assert workflow("release.yml")[True] == {"push": {"tags": ["v*"]}}
    assert jobs["test"]["uses"] == "./.github/workflows/ci.yml"
    assert set(jobs["image"]["needs"]) == {"plan", "test"}
    assert "image" in jobs["publish"]["needs"]


def test_the_image_is_pushed_where_the_plan_says_for_two_platforms_with_sbom() -> None:
    jobs = workflow("release.yml")["jobs"]
    plan_run = steps(jobs["plan"])["Check the versions and read what the tag publishes"]["run"]
    assert "python scripts/release.py plan --tag" in plan_run
    assert '"$GITHUB_OUTPUT"' in plan_run
    (build,) = [s for s in jobs["image"]["steps"] if "build-push-action" in s.get("uses", "")]
    assert build["with"]["tags"] == "${{ needs.plan.outputs.image }}"
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["push"] is True
    assert build["with"]["sbom"] is True
    assert build["with"]["provenance"] == "mode=max"
    push = steps(jobs["publish"])["Package the chart and push it to ghcr.io"]["run"]
    assert 'helm push "dist/shm-webhook-$VERSION.tgz" "$CHART_REPOSITORY"' in push
    assert (
        jobs["publish"]["env"]["CHART_REPOSITORY"] == "${{ needs.plan.outputs.chart_repository }}"
    )


PINNED = re.compile(r"^\s*(- )?uses: (?P<action>[\w.-]+/[\w.-]+)@(?P<ref>\S+)(?P<comment>.*)$")


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_every_action_is_pinned_to_a_commit_named_by_its_version(name: str) -> None:
    lines = [line for line in (WORKFLOWS / name).read_text().splitlines() if "uses:" in line]
    actions = [PINNED.match(line) for line in lines if "./.github/" not in line]
    assert actions
    for match in actions:
        assert match, lines
        assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), match[0]
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", match["comment"]), match[0]


def stand_in(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize(
    ("prerelease", "flag"),
    [
        pytest.param("false", [], id="a release"),
        pytest.param("true", ["--prerelease"], id="a prerelease"),
    ],
)
def test_the_release_step_publishes_the_changelog_section(
    repo: Path, tmp_path: Path, prerelease: str, flag: list[str]
) -> None:
    """The workflow's own shell, with `gh` and `pip` replaced by recorders."""
    job = workflow("release.yml")["jobs"]["publish"]
    script = steps(job)["Create the GitHub release with the CHANGELOG section"]["run"]
    (repo / "scripts").mkdir()
    shutil.copy(RELEASE_SCRIPT, repo / "scripts" / "release.py")
    (repo / "dist").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in(bin_dir, "gh", f'printf "%s\\n" "$@" > {tmp_path}/gh.args')
    stand_in(bin_dir, "python", f'[ "$1" = -m ] && exit 0; exec {sys.executable} "$@"')
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_REF_NAME": f"v{VERSION}",
        "VERSION": VERSION,
        "IMAGE": f"ghcr.io/{OWNER}/shm-webhook:{VERSION}",
        "DIGEST": "sha256:" + "ab" * 32,
        "CHART_REPOSITORY": f"oci://ghcr.io/{OWNER}/charts",
        "PRERELEASE": prerelease,
    }
    done = subprocess.run(
        ["bash", "-e", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "gh.args").read_text().splitlines()
    assert args == [
        "release",
        "create",
        f"v{VERSION}",
        f"dist/shm-webhook-{VERSION}.tgz",
        "--verify-tag",
        "--title",
        f"v{VERSION}",
        "--notes-file",
        "dist/notes.md",
        *flag,
    ]
    notes = (repo / "dist" / "notes.md").read_text()
    assert notes == (
        "### Added\n\n- Everything.\n\n"
        f"Image: `ghcr.io/{OWNER}/shm-webhook:{VERSION}` (`sha256:{'ab' * 32}`, "
        "linux/amd64 and linux/arm64)\n"
        f"Chart: `helm install shm-webhook oci://ghcr.io/{OWNER}/charts/shm-webhook "
        f"--version {VERSION} -n shm-system --create-namespace`\n"
    )


def test_helm_packages_the_chart_under_its_version(helm: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [helm, "package", str(CHART_DIR), "--destination", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.iterdir()] == [f"shm-webhook-{VERSION}.tgz"]
