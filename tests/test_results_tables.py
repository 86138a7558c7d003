"""Results are data: docs/results.md and README's "Results at a glance" are generated from
bench/results/*.json by bench/make_tables.py, and must not drift from it (no stale hand-edited number)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_results_page_and_readme_table_match_the_json() -> None:
    command = [sys.executable, "bench/make_tables.py", "--check"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_every_result_file_has_the_documented_keys_and_rectangular_rows() -> None:
    files = sorted((REPO / "bench" / "results").glob("*.json"))
    tables = [json.loads(path.read_text()) for path in files]
    tables = [data for data in tables if isinstance(data, dict) and "title" in data]
    assert len(tables) >= 8
    for path, data in zip(files, tables, strict=False):
        assert {"title", "experiment", "headline", "date", "machine", "commands", "source"} <= set(data), path
        assert data["rows"] and all(len(row) == len(data["columns"]) for row in data["rows"]), path
