"""The chart's documentation stays true: every value is commented in values.yaml and listed in
the README table with its schema type and its default; NOTES.txt tells how to use the release."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.chart.render import CHART_DIR, NAMESPACE, RELEASE, helm_args

VALUES_TEXT = (CHART_DIR / "values.yaml").read_text(encoding="utf-8")
SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
README = (CHART_DIR / "README.md").read_text(encoding="utf-8")
ROW = re.compile(
    r"^\| `(?P<path>[^`]+)` \| (?P<type>[^|]+) \| `(?P<default>[^`]*)` \| (?P<text>.+) \|$"
)


def leaves(node: yaml.Node, path: tuple[str, ...] = ()) -> Iterator[tuple[str, yaml.Node, int]]:
    """(dotted path, value node, line of the key) of every value that is not a non-empty map."""
    assert isinstance(node, yaml.MappingNode)
    for key, value in node.value:
        here = (*path, key.value)
        if isinstance(value, yaml.MappingNode) and value.value:
            yield from leaves(value, here)
        else:
            yield ".".join(here), value, key.start_mark.line


LEAVES = list(leaves(yaml.compose(VALUES_TEXT)))


def schema_type(path: str) -> str:
    """How the README writes the type of a value, from its schema."""
    node: dict[str, Any] = SCHEMA
    for part in path.split("."):
        properties = node.get("properties")
        if properties is None:  # inside requests/limits: any resource name
            return "quantity"
        node = properties[part]
    if "enum" in node:
        return "string"
    if "oneOf" in node:
        return " or ".join(option["type"] for option in node["oneOf"])
    return {"array": "list", "object": "map"}.get(node["type"], node["type"])


def readme_rows() -> dict[str, dict[str, str]]:
    rows = {}
    for line in README.splitlines():
        match = ROW.match(line)
        if match:
            assert match["path"] not in rows, f"{match['path']} is listed twice"
            rows[match["path"]] = match.groupdict()
    return rows


def test_every_value_is_commented_in_values_yaml() -> None:
    lines = VALUES_TEXT.splitlines()
    bare = [path for path, _, line in LEAVES if not lines[line - 1].strip().startswith("# ")]
    assert bare == [], "values without a comment on the line above"


def test_readme_lists_every_value_with_its_type_and_default() -> None:
    rows = readme_rows()
    assert len(LEAVES) > 40
    assert set(rows) == {path for path, _, _ in LEAVES}
    for path, node, _ in LEAVES:
        row = rows[path]
        default = yaml.safe_load(yaml.serialize(node))
        assert json.loads(row["default"]) == default, f"{path}: README default {row['default']}"
        assert row["type"].strip() == schema_type(path), path
        assert len(row["text"].strip()) > 10, f"{path} has no description"


def test_readme_gives_the_argo_cd_ignore_differences_entry() -> None:
    assert "ignoreDifferences:" in README
    assert "'.webhooks[]?.clientConfig.caBundle'" in README
    assert "RespectIgnoreDifferences=true" in README


def notes(helm: str, *values: str) -> str:
    """NOTES.txt as `helm install` prints it (client-side dry run: no cluster needed)."""
    command = [helm, "install", RELEASE, str(CHART_DIR), "-n", NAMESPACE, "--dry-run=client"]
    done = subprocess.run(
        [*command, *helm_args(values)], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split("NOTES:", 1)[1]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            (),
            [
                "kubectl label namespace <namespace> shm-injection=enabled",
                "shm-size: 8Gi",
                "df -h /dev/shm",
            ],
            id="namespace scope: label a namespace, annotate a pod, verify",
        ),
        pytest.param(
            ("scope=cluster", "annotation=example.com/shm", "mountPath=/shm"),
            ["shm-injection=disabled", "example.com/shm: 8Gi", "df -h /shm"],
            id="cluster scope: opt a namespace out, the configured annotation and path",
        ),
        pytest.param(
            (), ["helm test rel -n shm-system --logs"], id="how to run helm test after install"
        ),
    ],
)
def test_notes_explain_how_to_use_the_release(
    helm: str, values: tuple[str, ...], expected: list[str]
) -> None:
    text = notes(helm, *values)
    for snippet in expected:
        assert snippet in text


def test_notes_leave_helm_test_out_when_the_test_is_off(helm: str) -> None:
    assert "helm test" not in notes(helm, "test.enabled=false")
