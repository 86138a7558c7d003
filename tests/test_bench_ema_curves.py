"""bench/ema_teacher_curves.py: the paired raw-vs-average summary of a run trained with ema_decay, read from
its metrics.jsonl; a run without raw scores is refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "ema_teacher_curves.py"


def _run(tmp_path: Path, name: str, records: list[dict]) -> Path:
    run = tmp_path / name
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_it_summarises_the_average_against_the_raw_weights(tmp_path: Path) -> None:
    records = [
        {"stage": "teacher", "epoch": e, "test_errors": 100 - e, "raw_test_errors": 110 - e} for e in range(1, 6)
    ]
    records.append({"stage": "student", "epoch": 1, "test_errors": 500, "raw_test_errors": 600})  # another stage
    run = _run(tmp_path, "t", records)
    table, png = tmp_path / "s.json", tmp_path / "c.png"
    done = subprocess.run(
        [sys.executable, SCRIPT, run, "--last", "2", "--png", png, "--json", table], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    row = json.loads(table.read_text())["runs"]["t"]
    assert row == {
        "epochs": 5,
        "average": 95,
        "raw": 105,
        "average_last": [95.5, 95, 96],
        "raw_last": [105.5, 105, 106],
    }
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_without_raw_scores_is_refused_in_one_line(tmp_path: Path) -> None:
    run = _run(tmp_path, "plain", [{"stage": "teacher", "epoch": 1, "test_errors": 90}])
    done = subprocess.run([sys.executable, SCRIPT, run, "--png", tmp_path / "c.png"], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip().endswith(
        "no teacher epochs with raw_test_errors (train with ema_decay)"
    )
    assert len(done.stderr.strip().splitlines()) == 1
