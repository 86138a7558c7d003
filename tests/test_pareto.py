"""The bench plot's Pareto front and which points get a text label."""

from __future__ import annotations

from kdedge.bench.pareto import _labelled, pareto_front, write_pareto


def _row(model: str, ms: float, acc: float, **extra) -> dict:
    return {
        "model": model,
        "arch": model,
        "latency_ms_p50": ms,
        "accuracy": acc,
        "runtime": "onnxruntime",
        "precision": "fp32",
        "stage": "student",
        "batch_size": 1,
        "status": "ok",
        **extra,
    }


def test_front_keeps_only_rows_that_beat_every_faster_row() -> None:
    rows = [_row("a", 1.0, 0.90), _row("a", 2.0, 0.89), _row("b", 3.0, 0.95), _row("b", 4.0, 0.97)]
    assert [r["latency_ms_p50"] for r in pareto_front(rows, "accuracy", 1)] == [1.0, 3.0, 4.0]
    sizes = [_row("a", 1.0, 0, size_mb=17.0), _row("a", 2.0, 0, size_mb=4.0), _row("b", 3.0, 0, size_mb=9.0)]
    assert [r["latency_ms_p50"] for r in pareto_front(sizes, "size_mb", -1)] == [1.0, 2.0]  # smaller wins


def test_labels_go_to_the_front_each_models_fastest_and_deployable_rows(tmp_path) -> None:
    rows = [
        _row("a", 1.0, 0.90),
        _row("a", 2.0, 0.85),
        _row("a", 2.5, 0.84, deploy=True),
        _row("b", 3.0, 0.80),
        _row("b", 5.0, 0.70),
    ]
    chosen = _labelled(rows, pareto_front(rows, "accuracy", 1))
    assert [r["latency_ms_p50"] for r in rows if id(r) in chosen] == [1.0, 2.5, 3.0]
    write_pareto({"rows": rows, "machine": {"cpu": "test", "threads": 1}}, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000
