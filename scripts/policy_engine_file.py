"""Write charts/shm-webhook/files/policy-engine.yaml: the CEL of the policy engine, from
`webhook.admission_policy.policy_parts()`, for the chart's `engine: policy` templates.

    python scripts/policy_engine_file.py           # rewrite the file
    python scripts/policy_engine_file.py --check   # exit 1, with a diff, when it is stale

The chart cannot run Python, and the CEL does not depend on the values: the templates write
the settings as the policies' first variables and append this file's, so `helm template` and
`shm-webhook policy` make the same objects (tests/chart/test_policy_engine.py renders both).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "charts" / "shm-webhook" / "files" / "policy-engine.yaml"
HEADER = (
    "# The CEL of the policy engine (engine: policy), the same for every set of values: the\n"
    "# templates put the values first, as variables. Generated from webhook/admission_*.py by\n"
    "# `python scripts/policy_engine_file.py`; do not edit.\n"
)


def text() -> str:
    sys.path.insert(0, str(REPO))
    from webhook.admission_policy import policy_parts

    return HEADER + yaml.safe_dump(policy_parts(), sort_keys=False, width=2**31)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the file is stale")
    options = parser.parse_args(argv)
    wanted = text()
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if wanted == current:
        return 0
    if options.check:
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            wanted.splitlines(keepends=True),
            str(TARGET),
            "generated",
        )
        sys.stdout.writelines(diff)
        print(f"{TARGET} is stale: run python scripts/policy_engine_file.py", file=sys.stderr)
        return 1
    TARGET.parent.mkdir(exist_ok=True)
    TARGET.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
