"""The one way an evaluation script writes its results: ``<name>.json`` and ``<name>.md`` side by side.

Every ``make eval-*`` target leaves both under ``docs/results/`` (indexed in its README), the
JSON for the next comparison and the table for people; the table is printed too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_results(out_dir: Path, name: str, report: dict[str, Any], table: str) -> None:
    """``report`` as ``out_dir/<name>.json`` and ``table`` as ``out_dir/<name>.md``; print the table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out_dir / f"{name}.md").write_text(table, encoding="utf-8")
    print(table)
