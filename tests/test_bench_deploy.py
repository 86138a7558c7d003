"""`kdedge export RUN --target`: the deployable file must agree with fp32 (the export's agreement bound), not only
score within the accuracy bound; bench measures each file's top-1 agreement with fp32 on the test images."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from cli_helpers import run_kdedge
from hostile_files import good_model

from kdedge.bench.deploy import choose, describe_choice, mark_deployable, save_run_results


def _row(runtime: str, precision: str, p50: float, accuracy: float, agreement: float | None, file: str = "") -> dict:
    return {
        "run": None,
        "model": "r/student",
        "stage": "student",
        "runtime": runtime,
        "precision": precision,
        "device": "cpu",
        "batch_size": 1,
        "file": file or f"/r/export/student.{precision}.onnx",
        "size_mb": 0.0,
        "status": "ok",
        "latency_ms_p50": p50,
        "accuracy": accuracy,
        "agreement_fp32": agreement,
    }


def test_a_fast_file_within_the_accuracy_bound_that_disagrees_with_fp32_is_not_deployable() -> None:
    """On a small test set an int8 file can score as fp32 does while giving another answer on 1 image in 4."""
    rows = [
        _row("onnxruntime", "fp32", 4.0, 0.520, 1.0),
        _row("executorch", "int8", 1.0, 0.518, 0.755),  # the fastest, 0.2 points off, 75.5 % agreement
        _row("onnxruntime", "int8", 2.0, 0.515, 0.98),
    ]
    assert choose(rows, 0.5, 0.97)["runtime"] == "onnxruntime" and choose(rows, 0.5, 0.97)["precision"] == "int8"
    assert choose(rows, 0.5, 0.99)["precision"] == "fp32"
    assert choose(rows, 0.5, 0.75)["runtime"] == "executorch"
    mark_deployable(rows, 0.5)  # bench's mark: the default bound (0.97) for files of no run
    assert [r["deploy"] for r in rows] == [False, False, True]


def test_the_bound_is_the_runs_export_min_top1_agreement(tmp_path: Path) -> None:
    from kdedge.bench.deploy import agreement_bound
    from kdedge.recipe import find_recipe, read_yaml

    recipe = read_yaml(find_recipe("hinton_mnist")) | {"export": {"min_top1_agreement": 0.7}}
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    assert agreement_bound(str(tmp_path)) == 0.7
    assert agreement_bound(None) == agreement_bound(str(tmp_path / "elsewhere")) == 0.97


def _run_with_bench(run: Path, rows: list[dict]) -> Path:
    run.mkdir()
    (run / "bench.json").write_text(json.dumps({"rows": rows}))
    return run


def test_export_target_writes_fp32_when_the_faster_int8_disagrees(tmp_path) -> None:
    import onnx

    fp32 = good_model(tmp_path / "student.fp32.onnx")
    rows = [
        _row("onnxruntime", "fp32", 4.0, 0.52, 1.0, str(fp32)) | {"size_mb": fp32.stat().st_size / 1e6},
        _row("onnxruntime", "int8", 1.0, 0.52, 0.755, str(tmp_path / "student.int8.onnx")),
    ]
    run = _run_with_bench(tmp_path / "run", rows)
    code, _, err = run_kdedge("export", str(run), "--target", "cpu-x86", "--model", "student")
    assert code == 0, err
    written = run / "export" / "deploy" / "student.cpu-x86.onnx"
    meta = {p.key: p.value for p in onnx.load(str(written)).metadata_props}
    assert meta["kdedge.runtime_precision"] == "fp32" and meta["kdedge.bench_agreement_fp32"] == "1.000000"


def test_the_deployable_line_gives_the_agreement_and_its_bound(tmp_path: Path) -> None:
    from kdedge.bench.deploy import deployable_choice

    fp32 = good_model(tmp_path / "student.fp32.onnx")
    rows = [
        _row("onnxruntime", "fp32", 4.0, 0.52, 1.0, str(fp32)),
        _row("onnxruntime", "int8", 1.0, 0.52, 0.755),
        _row("openvino", "int8", 2.0, 0.519, 0.981),
    ]
    best, why = deployable_choice(_run_with_bench(tmp_path / "run", rows), "student")
    assert (best["runtime"], best["precision"]) == ("openvino", "int8")
    assert why == (
        "openvino int8: p50 2.000 ms at batch 1, accuracy 51.90 % vs fp32 52.00 % (bound 0.5 points), agrees "
        "with fp32 on 98.10 % of the test images (bound 97 %); the fastest of the 2 runtime/precision pairs (of 3 "
        "benched here) that meet both bounds"
    )


def test_when_no_file_agrees_one_line_names_the_closest_and_its_agreement(tmp_path) -> None:
    rows = [
        _row("torch", "fp32", 4.0, 0.52, 1.0, "/r/student.safetensors"),  # the reference, not a deployable file
        _row("executorch", "int8", 1.0, 0.518, 0.755, "/r/export/student.int8.pte"),
        _row("litert", "int8", 2.0, 0.519, 0.91, "/r/export/student.int8.tflite"),
    ]
    run = _run_with_bench(tmp_path / "run", rows)
    code, _, err = run_kdedge("export", str(run), "--target", "cpu-x86", "--model", "student")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "no student file on cpu agrees with fp32 on at least 97 %" in err
    assert "the closest, litert int8 (student.int8.tflite), agrees on 91.00 %" in err and "--min-agreement" in err
    args = ["export", str(run), "--target", "cpu-x86", "--model", "student", "--min-agreement", "0.9"]
    code, _, err = run_kdedge(*args)
    assert code == 2 and "student.int8.tflite: missing or changed" in err  # chosen now (then found missing)


def test_a_bench_record_without_agreements_asks_for_a_new_bench(tmp_path) -> None:
    rows = [_row("onnxruntime", "fp32", 4.0, 0.52, None), _row("onnxruntime", "int8", 1.0, 0.52, None)]
    for row in rows:
        del row["agreement_fp32"]
    run = _run_with_bench(tmp_path / "run", rows)
    code, _, err = run_kdedge("export", str(run), "--target", "cpu-x86", "--model", "student")
    assert code == 2 and f"run `kdedge bench {run}` again" in err


def test_bench_scores_each_files_agreement_with_the_fp32_reference(tmp_path: Path) -> None:
    from kdedge.bench.run import score_rows

    labels = np.arange(8) % 4
    reference = np.eye(4, dtype=np.float32)[labels]
    quantised = reference.copy()
    quantised[:2] = np.eye(4, dtype=np.float32)[(labels[:2] + 1) % 4]  # 2 of 8 answers differ
    rows = []
    for index, (runtime, precision, logits) in enumerate(
        [("torch", "fp32", reference), ("onnxruntime", "int8", quantised), ("onnxruntime", "fp32", reference)]
    ):
        np.save(tmp_path / f"l{index}.npy", logits)
        row = {"runtime": runtime, "precision": precision, "device": "cpu", "file": f"f{index}", "status": "ok"}
        rows.append(row | {"_model_index": 0, "_scored": True, "_logits": str(tmp_path / f"l{index}.npy")})
        rows.append(row | {"_model_index": 0, "_scored": False, "_logits": None, "dataset": "x"})
        rows[-2]["dataset"] = "x"
    score_rows(rows, [SimpleNamespace(test_labels=labels, note="")])
    assert [r["agreement_fp32"] for r in rows] == [1.0, 1.0, 0.75, 0.75, 1.0, 1.0]


# -- bench.json keeps every configuration; export --target says what it chose and why -------------------
def _choice_row(runtime: str, precision: str, p50: float, accuracy: float, batch: int = 1) -> dict:
    return {
        "stage": "student",
        "runtime": runtime,
        "precision": precision,
        "device": "cpu",
        "batch_size": batch,
        "file": f"/r/export/student.{precision}.onnx",
        "status": "ok",
        "latency_ms_p50": p50,
        "accuracy": accuracy,
        "agreement_fp32": 0.99,
        "run": "/r",
        "model": "r/student",
    }


def test_bench_json_merges_benches_of_the_same_machine(tmp_path: Path) -> None:
    """A second bench of another runtime adds its rows (one of the same runtime replaces them); the
    deployable choice is made over all of them, and a bench on another CPU starts the record afresh."""
    run = tmp_path / "r"
    run.mkdir()
    machine = {"cpu": "EPYC", "threads": 2, "device": "cpu"}

    def bench(rows: list[dict], cpu: str = "EPYC") -> list[dict]:
        for row in rows:
            row["run"] = str(run.resolve())
        result = {"rows": rows, "machine": machine | {"cpu": cpu}, "options": {"accuracy_bound": 0.5}}
        save_run_results(result, [run])
        return json.loads((run / "bench.json").read_text())["rows"]

    first = bench([_choice_row("onnxruntime", "fp32", 1.0, 0.97), _choice_row("onnxruntime", "int8", 0.5, 0.969)])
    assert [r["deploy"] for r in first] == [False, True]
    second = bench([_choice_row("openvino", "int8", 0.3, 0.968)])  # faster, within 0.5 points of fp32
    assert [(r["runtime"], r["precision"], r["deploy"]) for r in second] == [
        ("onnxruntime", "fp32", False),
        ("onnxruntime", "int8", False),
        ("openvino", "int8", True),
    ]
    again = bench([_choice_row("onnxruntime", "int8", 0.2, 0.969)])  # re-measured: replaces its old row
    assert len(again) == 3
    assert [r["latency_ms_p50"] for r in again if r["runtime"] == "onnxruntime"] == [1.0, 0.2]
    assert len(bench([_choice_row("onnxruntime", "fp32", 1.0, 0.97)], cpu="Xeon")) == 1


def test_export_target_says_runtime_precision_and_the_numbers_behind_its_choice() -> None:
    rows = [
        _choice_row("onnxruntime", "fp32", 1.0, 0.97),
        _choice_row("onnxruntime", "int8", 0.5, 0.9695),
        _choice_row("openvino", "int8", 0.4, 0.90),
        _choice_row("onnxruntime", "int8", 9.0, 0.9695, batch=32),
    ]
    best = choose(rows, 0.5)
    assert (best["runtime"], best["precision"]) == ("onnxruntime", "int8")  # openvino lost 7 points
    assert describe_choice(best, rows, 0.5, 0.97) == (
        "onnxruntime int8: p50 0.500 ms at batch 1, accuracy 96.95 % vs fp32 97.00 % (bound 0.5 points), agrees "
        "with fp32 on 99.00 % of the test images (bound 97 %); the fastest of the 2 runtime/precision pairs (of 3 "
        "benched here) that meet both bounds"
    )
