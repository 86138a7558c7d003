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
    loaded = [(path, json.loads(path.read_text())) for path in files]
    # a table has columns; a raw file (a script's own record, e.g. search_<name>.json) may have a title too
    tables = [(path, data) for path, data in loaded if isinstance(data, dict) and "columns" in data]
    assert len(tables) >= 8
    for path, data in tables:
        assert {"title", "experiment", "headline", "date", "machine", "commands", "source"} <= set(data), path
        assert data["rows"] and all(len(row) == len(data["columns"]) for row in data["rows"]), path


def test_the_fidelity_table_is_regenerated_identically_from_the_result_files() -> None:
    command = [sys.executable, "bench/fidelity.py", "--check"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_every_fidelity_row_names_an_existing_result_file_and_a_verdict() -> None:
    fidelity = json.loads((REPO / "bench" / "results" / "fidelity.json").read_text())
    assert fidelity["order"] < min(
        json.loads(path.read_text()).get("order", 1 << 30)
        for path in (REPO / "bench" / "results").glob("*.json")
        if path.name != "fidelity.json" and isinstance(json.loads(path.read_text()), dict)
    ), "the fidelity table leads the results page and README's glance"
    columns = fidelity["columns"]
    for row in fidelity["rows"]:
        assert (REPO / row[columns.index("result file")]).is_file(), row
        assert row[columns.index("verdict")].startswith(("meets", "trails by", "not run")), row


def test_fidelity_verdicts_count_fewer_errors_and_higher_accuracy_as_better() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fidelity", REPO / "bench" / "fidelity.py")
    fidelity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fidelity)
    errors = fidelity.Ref("teacher", 67, "errors", True, "paper")
    accuracy = fidelity.Ref("student", 0.531, "accuracy", False, "paper")
    assert fidelity.verdict(errors, 84) == "trails by 17 errors"
    assert fidelity.verdict(errors, 60) == "meets (7 fewer errors)"
    assert fidelity.verdict(accuracy, 0.549) == "meets (0.018)"
    assert fidelity.verdict(accuracy, 0.499) == "trails by 0.032"
    assert fidelity.verdict(accuracy, None) == "not run"
