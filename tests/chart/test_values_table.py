"""scripts/values_table.py: the README's values table is the one values.yaml and the schema
make, and the generator holds to its comment convention."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chart.render import CHART_DIR

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "values_table.py"


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    """The three files the generator reads, in a scratch chart directory."""
    for name in ("values.yaml", "values.schema.json", "README.md"):
        shutil.copy(CHART_DIR / name, tmp_path / name)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_the_readme_table_is_the_generated_one() -> None:
    done = generate("--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_changed_comment_makes_the_table_stale_and_generation_mends_it(chart_copy: Path) -> None:
    edit(chart_copy / "values.yaml", "# -- Seconds the API server", "# -- Seconds | the API server")
    stale = generate("--check", "--chart", str(chart_copy))
    assert stale.returncode == 1
    assert "is stale: run python scripts/values_table.py" in stale.stderr
    assert "+| `timeoutSeconds` | integer | `3` | Seconds \\| the API server" in stale.stdout
    assert generate("--chart", str(chart_copy)).returncode == 0
    assert generate("--check", "--chart", str(chart_copy)).returncode == 0
    readme = (chart_copy / "README.md").read_text(encoding="utf-8")
    assert readme.count("| `timeoutSeconds` |") == 1


def test_the_prose_around_the_table_is_kept(chart_copy: Path) -> None:
    readme = chart_copy / "README.md"
    before = readme.read_text(encoding="utf-8")
    edit(readme, "| `scope` |", "| `scope-typo` |")
    edit(
        chart_copy / "values.yaml",
        "# -- Seconds the API server",
        "# -- Seconds that the API server",
    )
    assert generate("--chart", str(chart_copy)).returncode == 0
    after = readme.read_text(encoding="utf-8")
    head = before.index("<!-- values-table:start -->")
    assert after[:head] == before[:head]
    assert "`scope-typo`" not in after
    assert "Seconds that the API server" in after


def test_a_value_without_its_comment_is_refused_by_line(chart_copy: Path) -> None:
    edit(chart_copy / "values.yaml", "# -- Log level of the webhook", "# Log level of the webhook")
    done = generate("--check", "--chart", str(chart_copy))
    assert done.returncode == 2
    line = next(
        number
        for number, text in enumerate((chart_copy / "values.yaml").read_text().splitlines(), 1)
        if text.startswith("logLevel:")
    )
    assert (
        done.stderr
        == f"values_table: values.yaml:{line}: logLevel has no `# --` comment above it\n"
    )


def test_a_readme_without_the_markers_is_refused(chart_copy: Path) -> None:
    edit(chart_copy / "README.md", "<!-- values-table:end -->", "")
    done = generate("--check", "--chart", str(chart_copy))
    assert done.returncode == 2
    assert "values-table:end" in done.stderr


def test_a_value_missing_from_the_schema_is_refused(chart_copy: Path) -> None:
    edit(chart_copy / "values.yaml", "logLevel: info", "logLevel: info\n# -- New.\nnewValue: 1")
    done = generate("--check", "--chart", str(chart_copy))
    assert done.returncode == 2
    assert done.stderr == "values_table: values.schema.json has no newValue\n"
