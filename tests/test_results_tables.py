"""Results are data: every published table is generated from bench/results/*.json by `python bench/tables.py`
(the benchmark scripts' raw files -> table files, the fidelity table, docs/results.md and README's "Results at a
glance"), and must not drift from it (no stale hand-edited number, no table file behind its raw file)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def tables_tool():
    """bench/tables.py as a module (under a name of its own: `tables` is also a PyPI package)."""
    spec = importlib.util.spec_from_file_location("bench_tables", REPO / "bench" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_file_matches_the_json() -> None:
    command = [sys.executable, "bench/tables.py", "--check"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_changed_raw_number_makes_its_table_file_and_the_page_stale(tmp_path: Path) -> None:
    tool = tables_tool()
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results, ignore=shutil.ignore_patterns("*.png"))
    raw = json.loads((results / "retinamnist.json").read_text())
    raw["rows"][0]["test_accuracy_mean"] = 0.987
    (results / "retinamnist.json").write_text(json.dumps(raw))
    wanted = tool.generated(results, REPO / "README.md")
    stale = tool.stale(wanted)
    assert results / "retinamnist_table.json" in stale and REPO / "docs" / "results.md" in stale
    assert json.loads(wanted[results / "retinamnist_table.json"])["rows"][0][2].startswith("0.987 ±")
    assert results / "own_images_cifar_table.json" not in stale  # an unrelated table stays as it is


def test_a_search_folder_that_is_not_there_is_one_line(tmp_path: Path, capsys) -> None:
    code = tables_tool().main(["collect", "x", str(tmp_path / "nothing"), "--title", "t"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nothing" in err[0] and not (RESULTS / "search_x.json").exists()


def test_every_result_file_has_the_documented_keys_and_rectangular_rows() -> None:
    files = sorted(RESULTS.glob("*.json"))
    loaded = [(path, json.loads(path.read_text())) for path in files]
    # a table has columns; a raw file (a script's own record, e.g. search_<name>.json) may have a title too
    tables = [(path, data) for path, data in loaded if isinstance(data, dict) and "columns" in data]
    assert len(tables) >= 8
    for path, data in tables:
        assert {"title", "experiment", "headline", "date", "machine", "commands", "source"} <= set(data), path
        assert data["rows"] and all(len(row) == len(data["columns"]) for row in data["rows"]), path


def test_every_fidelity_row_names_an_existing_result_file_and_a_verdict() -> None:
    fidelity = json.loads((RESULTS / "fidelity.json").read_text())
    assert fidelity["order"] < min(
        json.loads(path.read_text()).get("order", 1 << 30)
        for path in RESULTS.glob("*.json")
        if path.name != "fidelity.json" and isinstance(json.loads(path.read_text()), dict)
    ), "the fidelity table leads the results page and README's glance"
    columns = fidelity["columns"]
    for row in fidelity["rows"]:
        assert (REPO / row[columns.index("result file")]).is_file(), row
        assert row[columns.index("verdict")].startswith(("meets", "trails by", "not run")), row


def test_fidelity_verdicts_count_fewer_errors_and_higher_accuracy_as_better() -> None:
    tables_tool()  # puts bench/ on the path
    from tablegen import fidelity

    errors = fidelity.Ref("teacher", 67, "errors", True, "paper")
    accuracy = fidelity.Ref("student", 0.531, "accuracy", False, "paper")
    assert fidelity.verdict(errors, 84) == "trails by 17 errors"
    assert fidelity.verdict(errors, 60) == "meets (7 fewer errors)"
    assert fidelity.verdict(errors, 67) == "meets (equal)"  # not 'meets (0 fewer errors)'
    assert fidelity.verdict(accuracy, 0.549) == "meets (0.018)"
    assert fidelity.verdict(accuracy, 0.499) == "trails by 0.032"
    assert fidelity.verdict(accuracy, None) == "not run"
    rate = fidelity.Ref("7s and 8s", 13.2, "% test error", True, "paper")
    assert fidelity.verdict(rate, 13.21) == "trails by 0.01 points"  # not a rounded 'trails by 0.0'
    assert fidelity.verdict(rate, 10.2) == "meets (3.0 points)"


def test_a_mean_over_seeds_keeps_its_decimal_in_the_fidelity_table() -> None:
    """14.7 errors (the mean of 13 / 17 / 14) is not shown as 15: the verdict beside it says 0.7."""
    tables_tool()
    from tablegen import fidelity
    from tablegen.fidelity_rows import show

    assert show(14.7, "errors") == "14.7 errors"
    assert show(84.0, "errors") == "84 errors"
    errors = fidelity.Ref("teacher", 74, "errors", True, "paper")
    assert fidelity.verdict(errors, 73 + 1 / 3) == "meets (0.7 fewer errors)"  # not 0.666667
