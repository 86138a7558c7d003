"""bench/mlp_precision.py: a short run writes a results table whose seconds per epoch follow from its step
times and whose ratios are against fp32 at the recipe's batch; a batch list without the recipe's is refused."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "mlp_precision.py"


def _run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_short_run_writes_a_consistent_table(tmp_path: Path) -> None:
    out = tmp_path / "precision.json"
    done = _run("--seconds", "0.2", "--factors", "1", "2", "--out", out)
    assert done.returncode == 0, done.stderr
    table = json.loads(out.read_text())
    assert [tuple(r[:3]) for r in table["rows"]] == [
        ("fp32", 128, "torch"),
        ("bf16", 128, "torch"),
        ("fp32", 256, "torch"),
        ("bf16", 256, "torch"),
        ("fp32", 128, "bits"),
        ("bf16", 128, "bits"),
    ]
    assert table["rows"][0][5] == "1.00x"
    for _, batch, _, ms, per_epoch, ratio in table["rows"]:
        assert per_epoch == pytest.approx(ms / 1000 * 60_000 / batch, rel=0.01)
        assert float(ratio[:-1]) == pytest.approx(table["rows"][0][4] / per_epoch, abs=0.01)
    assert "load average" in table["machine"] and table["order"] == 68
    assert not out.with_name(out.name + ".partial").exists()


def test_factors_without_the_recipes_batch_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # in-process: a subprocess would spend seconds importing torch
    script = importlib.import_module("mlp_precision")
    monkeypatch.setattr(sys, "argv", ["mlp_precision.py", "--factors", "4", "--out", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit) as stopped:
        script.main()
    assert str(stopped.value) == "error: --factors must include 1 (the recipe's batch, which the ratios are against)"
    assert not (tmp_path / "x.json").exists()
