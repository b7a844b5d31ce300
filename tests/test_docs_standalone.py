"""The repository documents itself: nothing shipped points outside it, and every relative link
and `docs/*.md#anchor` reference in it leads to a file (and a heading) that exists.

"Shipped" is every file git tracks (or would track) except the test code: tests/, .ci/ and
scripts/test. Headings are matched by their GitHub anchors, the ids GitHub gives a rendered
heading, so a link that works here works on the repository's page.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO

NOT_SHIPPED = ("tests/", ".ci/", "scripts/test")
# Material that lived beside the repository, which a clone does not have.
OUTSIDE_REFERENCES = re.compile(
    r"\.\./shared|shared/(?:SPEC|PERF-NOTES)|SPEC\.md|SPEC §|PERF-NOTES"
)
# Files that still cite the outside material, to be emptied as they are rewritten to cite
# docs/ (see the anchors the docs provide for them). Only shrinks: a file fixed must leave the
# list, and no file may join it.
KNOWN_OUTSIDE_REFERENCES: frozenset[str] = frozenset()
# [text](target) and [label]: target, outside code; images are links too.
INLINE_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
FENCE = re.compile(r"^\s*(```|~~~).*?^\s*\1\s*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
# A mention such as `docs/behaviour.md#memory-accounting` in code, YAML or prose, relative to
# the repository root (not preceded by a path: `../../docs/x.md` is a relative link).
DOCS_MENTION = re.compile(r"(?<![\w/.-])(docs/[\w.-]+\.md)(?:#([\w-]+))?")
SCHEMES = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


@cache
def shipped_files() -> tuple[str, ...]:
    done = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, (
        f"git ls-files failed (the tests need a git checkout): {done.stderr!r}"
    )
    names = sorted({name for name in done.stdout.decode().split("\0") if name})
    return tuple(
        name for name in names if not name.startswith(NOT_SHIPPED) and (REPO / name).is_file()
    )


def text_of(name: str) -> str | None:
    try:
        return (REPO / name).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None  # a binary file refers to nothing


def markdown_files() -> list[str]:
    return [name for name in shipped_files() if name.endswith(".md")]


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: its text, lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = text.replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@cache
def anchors(name: str) -> frozenset[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 suffixes for repeats."""
    text = FENCE.sub("", (REPO / name).read_text(encoding="utf-8"))
    found: list[str] = []
    seen: dict[str, int] = {}
    for match in HEADING.finditer(text):
        anchor = github_anchor(match.group(2))
        repeats = seen.get(anchor, 0)
        seen[anchor] = repeats + 1
        found.append(f"{anchor}-{repeats}" if repeats else anchor)
    return frozenset(found)


def links(text: str) -> Iterator[str]:
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    for pattern in (INLINE_LINK, REFERENCE_LINK):
        for match in pattern.finditer(prose):
            yield match.group(1)


def broken_link(source: str, target: str) -> str | None:
    """Why `target`, a link in the Markdown file `source`, leads nowhere; None when it works."""
    if SCHEMES.match(target) or target.startswith("//"):
        return None  # absolute URLs are not checked (no network in the tests)
    path_part, _, fragment = target.partition("#")
    resolved = ((REPO / source).parent / path_part if path_part else REPO / source).resolve()
    if not resolved.is_relative_to(REPO):
        return f"{target} leaves the repository"
    relative = resolved.relative_to(REPO).as_posix()
    if not resolved.exists():
        return f"{target}: {relative} does not exist"
    if resolved.is_file() and relative not in shipped_files() and path_part:
        return f"{target}: {relative} is not shipped"
    if fragment and relative.endswith(".md") and fragment not in anchors(relative):
        return f"{target}: {relative} has no heading #{fragment}"
    return None


def test_no_shipped_file_refers_to_material_outside_the_repository() -> None:
    offending: dict[str, list[str]] = {}
    for name in shipped_files():
        text = text_of(name)
        if text is None:
            continue
        lines = [
            f"{number}: {line.strip()}"
            for number, line in enumerate(text.splitlines(), start=1)
            if OUTSIDE_REFERENCES.search(line)
        ]
        if lines and name not in KNOWN_OUTSIDE_REFERENCES:
            offending[name] = lines
    assert offending == {}, "cite docs/ instead of the material beside the repository"


def test_the_known_list_of_outside_references_only_shrinks() -> None:
    fixed = sorted(
        name
        for name in KNOWN_OUTSIDE_REFERENCES
        if name not in shipped_files() or not OUTSIDE_REFERENCES.search(text_of(name) or "")
    )
    assert fixed == [], "these no longer refer outside: remove them from KNOWN_OUTSIDE_REFERENCES"


@pytest.mark.parametrize("source", markdown_files())
def test_relative_links_lead_to_files_and_headings_in_the_repository(source: str) -> None:
    problems = [
        problem
        for target in links((REPO / source).read_text(encoding="utf-8"))
        if (problem := broken_link(source, target)) is not None
    ]
    assert problems == []


def test_mentions_of_docs_pages_and_their_headings_resolve() -> None:
    problems = []
    for name in shipped_files():
        text = text_of(name)
        if text is None:
            continue
        for match in DOCS_MENTION.finditer(text):
            page, fragment = match.group(1), match.group(2)
            if not (REPO / page).is_file():
                problems.append(f"{name}: {page} does not exist")
            elif fragment and fragment not in anchors(page):
                problems.append(f"{name}: {page} has no heading #{fragment}")
    assert problems == []


def test_the_docs_index_lists_every_page() -> None:
    index = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    listed = {target.partition("#")[0] for target in links(index)}
    pages = {Path(name).name for name in shipped_files() if re.fullmatch(r"docs/[^/]+\.md", name)}
    assert pages - {"README.md"} <= listed


def test_the_readme_quick_start_is_make_serve_and_make_test() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    assert commands == ["make serve", "make test"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^serve:", makefile, re.MULTILINE)
    assert re.search(r"^test:", makefile, re.MULTILINE)


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        pytest.param("## `bootstrap` (default)", "bootstrap-default", id="code and parentheses"),
        pytest.param("## GitOps (Argo CD, Flux)", "gitops-argo-cd-flux", id="commas"),
        pytest.param("### `certs generate`", "certs-generate", id="a space inside code"),
        pytest.param("## Where it applies: `scope`", "where-it-applies-scope", id="a colon"),
        pytest.param("## `reason` values", "reason-values", id="code then text"),
    ],
)
def test_anchors_are_computed_as_github_does(heading: str, anchor: str) -> None:
    assert github_anchor(heading.lstrip("#").strip()) == anchor
