"""Write the values table of the chart's README from values.yaml and values.schema.json.

    python scripts/values_table.py           # rewrite the table in charts/shm-webhook/README.md
    python scripts/values_table.py --check   # exit 1, with a diff, when the table is stale

The comment convention is helm-docs's, so either tool reads the same values.yaml: a value is
described by the comment block directly above its key, from the line that starts with `# -- `
to the key (later `# ` lines continue the sentence). A comment without `--` above a map
introduces its keys and makes no row. Every leaf (a scalar, a list or an empty map) is one row:
its dotted path, its type as the schema gives it, its default as JSON and its description. The
table replaces whatever lies between the README's `<!-- values-table:start -->` and
`<!-- values-table:end -->` lines; nothing else in the README is touched.

Needs PyYAML only (a dependency of the project). Exit code 2, with one line on stderr, when
values.yaml or the README does not follow the convention.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parents[1] / "charts" / "shm-webhook"
START = "<!-- values-table:start -->"
END = "<!-- values-table:end -->"
HEADER = ("| value | type | default | description |", "|---|---|---|---|")
MARK = "# -- "


class ConventionError(Exception):
    """values.yaml or the README breaks the convention; the message says where."""


@dataclass(frozen=True)
class Row:
    path: str
    type: str
    default: str
    description: str

    def markdown(self) -> str:
        text = self.description.replace("|", "\\|")
        return f"| `{self.path}` | {self.type} | `{self.default}` | {text} |"


def leaves(node: yaml.Node, path: tuple[str, ...] = ()) -> Iterator[tuple[str, yaml.Node, int]]:
    """(dotted path, value node, 0-based line of the key) of every leaf, in file order."""
    if not isinstance(node, yaml.MappingNode):
        raise ConventionError("values.yaml: the top level must be a map")
    for key, value in node.value:
        here = (*path, str(key.value))
        if isinstance(value, yaml.MappingNode) and value.value:
            yield from leaves(value, here)
        else:
            yield ".".join(here), value, key.start_mark.line


def description(lines: list[str], key_line: int, path: str) -> str:
    """The `# -- ` comment of the key on key_line, as one line of text."""
    block: list[str] = []
    index = key_line - 1
    while index >= 0 and lines[index].strip().startswith("#"):
        block.insert(0, lines[index].strip())
        index -= 1
    starts = [i for i, line in enumerate(block) if line.startswith(MARK)]
    if not starts:
        raise ConventionError(
            f"values.yaml:{key_line + 1}: {path} has no `{MARK.strip()}` comment above it"
        )
    first, *rest = block[starts[-1] :]
    words = [first[len(MARK) :], *(line.removeprefix("#").strip() for line in rest)]
    return " ".join(word for word in words if word)


def schema_type(schema: dict[str, Any], path: str) -> str:
    """How the table writes a value's type, from its schema node."""
    node = schema
    for part in path.split("."):
        properties = node.get("properties")
        if properties is None:  # inside resources requests/limits: any resource name
            return "quantity"
        if part not in properties:
            raise ConventionError(f"values.schema.json has no {path}")
        node = properties[part]
    if "enum" in node:
        return "string"
    if "oneOf" in node:
        return " or ".join(option["type"] for option in node["oneOf"])
    kind = str(node["type"])
    return {"array": "list", "object": "map"}.get(kind, kind)


def rows(values_text: str, schema: dict[str, Any]) -> list[Row]:
    lines = values_text.splitlines()
    found = []
    document = yaml.compose(values_text)
    if document is None:
        raise ConventionError("values.yaml is empty")
    for path, node, line in leaves(document):
        default = json.dumps(yaml.safe_load(yaml.serialize(node)), ensure_ascii=False)
        found.append(Row(path, schema_type(schema, path), default, description(lines, line, path)))
    return found


def table(chart_dir: Path = CHART_DIR) -> str:
    values_text = (chart_dir / "values.yaml").read_text(encoding="utf-8")
    schema = json.loads((chart_dir / "values.schema.json").read_text(encoding="utf-8"))
    return "\n".join([*HEADER, *(row.markdown() for row in rows(values_text, schema))])


def with_table(readme: str, new_table: str) -> str:
    """The README with the text between the markers replaced by new_table."""
    lines = readme.splitlines(keepends=True)
    marks = [i for i, line in enumerate(lines) if line.strip() in (START, END)]
    if [lines[i].strip() for i in marks] != [START, END]:
        raise ConventionError(f"README.md must hold one {START} line, then one {END} line")
    start, end = marks
    return "".join([*lines[: start + 1], "\n", new_table, "\n\n", *lines[end:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the table is stale")
    parser.add_argument("--chart", type=Path, default=CHART_DIR, help="the chart directory")
    options = parser.parse_args(argv)
    readme_path = options.chart / "README.md"
    try:
        readme = readme_path.read_text(encoding="utf-8")
        wanted = with_table(readme, table(options.chart))
    except (ConventionError, OSError, yaml.YAMLError) as error:
        print(f"values_table: {error}", file=sys.stderr)
        return 2
    if wanted == readme:
        return 0
    if options.check:
        diff = difflib.unified_diff(
            readme.splitlines(keepends=True),
            wanted.splitlines(keepends=True),
            str(readme_path),
            "generated",
        )
        sys.stdout.writelines(diff)
        print(f"{readme_path} is stale: run python scripts/values_table.py", file=sys.stderr)
        return 1
    readme_path.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
