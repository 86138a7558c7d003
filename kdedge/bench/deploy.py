"""For each model, the fastest runtime/precision whose accuracy stays within a bound of fp32 and whose top-1
predictions agree with fp32's on at least the export's agreement bound (the run's export.min_top1_agreement,
0.97 by default: the bound `kdedge export` holds fp16 / int8 files to), remembered next to the run
(RUN/bench.json) and written as the deployable file by `kdedge export --target`. Accuracy alone is not enough:
on a small test set a file can score within the bound while it gives another answer on one image in four."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kdedge.bench.int8_speed import flag_slow_int8, int8_not_faster
from kdedge.errors import InputError
from kdedge.files.atomic import atomic_write, atomic_write_text
from kdedge.files.fsguard import NotWritable
from kdedge.runtime.check import check_model_file
from kdedge.runtime.formats import file_runtimes
from kdedge.ui.console import warn

TARGETS = {"cpu-x86": "cpu"}  # --target -> the bench device its choice is made on
REFERENCE_RUNTIMES = ("onnxruntime", "torch", "openvino")  # whose fp32 row is "fp32", in this order


def agreement_bound(run: str | None) -> float:
    """The least top-1 agreement with fp32 a deployable file needs: the run's export.min_top1_agreement
    (RUN/recipe.yaml), else the recipe default (bare files)."""
    from kdedge.recipe import ExportConfig, read_yaml, validate_recipe

    recipe_file = Path(run) / "recipe.yaml" if run else None
    if recipe_file is None or not recipe_file.is_file():
        return ExportConfig().min_top1_agreement
    return validate_recipe(read_yaml(recipe_file), source=str(recipe_file)).export.min_top1_agreement


def _reference_accuracy(rows: list[dict[str, Any]]) -> float | None:
    """fp32 accuracy of one model: onnxruntime's fp32 row, else PyTorch's, else OpenVINO's f32."""
    for runtime in REFERENCE_RUNTIMES:
        for row in rows:
            if (row["runtime"], row["precision"], row["status"]) == (runtime, "fp32", "ok") and row[
                "accuracy"
            ] is not None:
                return row["accuracy"]
    return None


def within_accuracy(rows: list[dict[str, Any]], accuracy_bound: float) -> list[dict[str, Any]]:
    """The measured file rows whose accuracy >= fp32 accuracy - accuracy_bound points ([] without fp32)."""
    reference = _reference_accuracy(rows)
    if reference is None:
        return []
    return [
        r
        for r in rows
        if r["status"] == "ok"
        and r["runtime"] in file_runtimes()  # rows that run a deployable file (kdedge.runtime.formats)
        and r["accuracy"] is not None
        and 100 * (reference - r["accuracy"]) <= accuracy_bound + 1e-9
    ]


def agrees(row: dict[str, Any], min_agreement: float | None) -> bool:
    """The row's top-1 agreement with fp32 meets the bound (None: not checked; unmeasured: it does not)."""
    return min_agreement is None or (
        row.get("agreement_fp32") is not None and row["agreement_fp32"] >= min_agreement - 1e-9
    )


def qualified(rows: list[dict[str, Any]], accuracy_bound: float, min_agreement: float | None) -> list[dict[str, Any]]:
    """The file rows that may be deployed: within the accuracy bound, agreeing with fp32 at least
    min_agreement, and not an int8 file that is no faster than its fp32 file (kdedge.bench.int8_speed)."""
    return [
        r for r in within_accuracy(rows, accuracy_bound) if agrees(r, min_agreement) and not int8_not_faster(r, rows)
    ]


def choose(rows: list[dict[str, Any]], accuracy_bound: float, min_agreement: float | None = None) -> dict | None:
    """The row (at the smallest measured batch: edge latency) of the fastest file-based runtime/precision
    whose accuracy >= fp32 accuracy - accuracy_bound points and whose top-1 agreement with fp32 >=
    min_agreement; None without an fp32 accuracy or when no file meets both bounds. An int8 row that is not
    faster than its fp32 row (kdedge.bench.int8_speed) is never chosen."""
    candidates = qualified(rows, accuracy_bound, min_agreement)
    if not candidates:
        return None
    smallest = min(r["batch_size"] for r in candidates)
    return min((r for r in candidates if r["batch_size"] == smallest), key=lambda r: r["latency_ms_p50"])


def mark_deployable(rows: list[dict[str, Any]], accuracy_bound: float) -> list[dict[str, Any]]:
    """Set row['deploy'] (True on every batch row of each model's chosen variant, under its run's agreement
    bound) and row['int8_not_faster']; returns the choices."""
    flag_slow_int8(rows)
    choices = []
    for key in dict.fromkeys((r.get("run"), r["model"], r["device"]) for r in rows):
        mine = [r for r in rows if (r.get("run"), r["model"], r["device"]) == key]
        best = choose(mine, accuracy_bound, agreement_bound(key[0]))
        for row in mine:
            row["deploy"] = best is not None and (row["runtime"], row["precision"]) == (
                best["runtime"],
                best["precision"],
            )
        if best is not None:
            choices.append(best)
    return choices


def _row_key(row: dict[str, Any]) -> tuple:
    """What one bench row measured: the same key twice is the same measurement, repeated."""
    return row["stage"], row["runtime"], row["precision"], row["device"], row["batch_size"], row.get("file")


def merged_rows(
    record_file: Path, rows: list[dict[str, Any]], machine: dict[str, Any], accuracy_bound: float
) -> list[dict[str, Any]]:
    """This bench's rows plus the rows of earlier benches in `record_file` that it did not repeat (a bench of
    `--runtimes openvino` adds to one of onnxruntime instead of replacing it); rows of another machine
    (CPU, threads, device) are dropped. The deployable marks are recomputed over the merged rows."""
    old: list[dict[str, Any]] = []
    if record_file.is_file():
        try:
            saved = json.loads(record_file.read_text())
        except (OSError, ValueError):  # a broken record is replaced, not trusted
            saved = {}
        same = {k: saved.get("machine", {}).get(k) for k in ("cpu", "threads", "device")}
        if same == {k: machine.get(k) for k in same}:
            new_keys = {_row_key(r) for r in rows}
            old = [r for r in saved.get("rows", []) if _row_key(r) not in new_keys]
    merged = old + rows
    mark_deployable(merged, accuracy_bound)
    return merged


def save_run_results(result: dict[str, Any], run_paths: list[Path]) -> None:
    """RUN/bench.json: every bench row of each run directory on this machine (merged_rows), for `kdedge
    export --target`."""
    bound = result["options"].get("accuracy_bound", 0.5)
    for path in run_paths:
        rows = [r for r in result["rows"] if r.get("run") == str(path.resolve()) and r.get("file")]
        if rows:
            rows = merged_rows(path / "bench.json", rows, result["machine"], bound)
            record = {"machine": result["machine"], "options": result["options"], "rows": rows}
            try:
                atomic_write_text(path / "bench.json", json.dumps(record, indent=2, default=str))
            except NotWritable:  # documented fallback: the table is printed; only --target needs the file
                warn(f"{path}: read-only, bench.json not written (`kdedge export --target` needs it)")


def describe_choice(
    best: dict[str, Any], rows: list[dict[str, Any]], accuracy_bound: float, min_agreement: float
) -> str:
    """Why this file: runtime, precision and the numbers the choice was made on, in one phrase."""
    reference = _reference_accuracy(rows)
    at_batch = [r for r in rows if r["batch_size"] == best["batch_size"]]
    benched = {
        (r["runtime"], r["precision"]) for r in at_batch if r["status"] == "ok" and r["runtime"] in file_runtimes()
    }
    allowed = {(r["runtime"], r["precision"]) for r in qualified(at_batch, accuracy_bound, min_agreement)}
    return (
        f"{best['runtime']} {best['precision']}: p50 {best['latency_ms_p50']:.3f} ms at batch "
        f"{best['batch_size']}, accuracy {100 * best['accuracy']:.2f} % vs fp32 {100 * reference:.2f} % "
        f"(bound {accuracy_bound:g} points), agrees with fp32 on {100 * best['agreement_fp32']:.2f} % of the test "
        f"images (bound {100 * min_agreement:g} %); the fastest of the {len(allowed)} runtime/precision "
        f"pairs (of {len(benched)} benched here) that meet both bounds"
    )


def _stage_rows(record_file: Path, stage: str, target: str) -> list[dict[str, Any]]:
    return [
        r for r in json.loads(record_file.read_text())["rows"] if r["stage"] == stage and r["device"] == TARGETS[target]
    ]


def _none_qualifies(record_file: Path, rows: list[dict[str, Any]], stage: str, bounds: tuple[float, float]) -> str:
    """The one line that says why no file of `stage` is deployable, naming the closest one."""
    accuracy_bound, min_agreement = bounds
    device, run = rows[0]["device"] if rows else "cpu", record_file.parent
    accurate = within_accuracy(rows, accuracy_bound)
    if not accurate:
        return (
            f"{record_file}: no {stage} row on {device} has an accuracy within {accuracy_bound:g} points of fp32 "
            "(was the test set available to bench?)"
        )
    if all(r.get("agreement_fp32") is None for r in accurate):
        return (
            f"{record_file}: measured by a kdedge that did not compare each file's predictions with fp32's; run "
            f"`kdedge bench {run}` again"
        )
    closest = max(accurate, key=lambda r: r.get("agreement_fp32") or 0.0)
    return (
        f"no {stage} file on {device} agrees with fp32 on at least {100 * min_agreement:g} % of the test images (the "
        f"export's bound): the closest, {closest['runtime']} {closest['precision']} ({Path(closest['file']).name}), "
        f"agrees on {100 * (closest.get('agreement_fp32') or 0.0):.2f} %; lower the bound with --min-agreement, or "
        "export an fp32 file and bench again"
    )


def deployable_choice(
    run_path: Path,
    stage: str,
    target: str = "cpu-x86",
    accuracy_bound: float = 0.5,
    min_agreement: float | None = None,
) -> tuple[dict[str, Any], str]:
    """The bench row `kdedge export --target` deploys for one stage of a run (from RUN/bench.json) and why
    (describe_choice). min_agreement None: the run's export bound (agreement_bound)."""
    if target not in TARGETS:
        raise InputError(f"--target: unknown target '{target}'; allowed: {', '.join(TARGETS)}")
    record_file = Path(run_path) / "bench.json"
    if not record_file.is_file():
        raise InputError(
            f"{run_path}: no bench results ({record_file.name}); run `kdedge bench {run_path} "
            f"--device {TARGETS[target]}` first, it measures which file is fastest here"
        )
    bound = agreement_bound(str(run_path)) if min_agreement is None else min_agreement
    rows = _stage_rows(record_file, stage, target)
    best = choose(rows, accuracy_bound, bound)
    if best is None:
        raise InputError(_none_qualifies(record_file, rows, stage, (accuracy_bound, bound)))
    return best, describe_choice(best, rows, accuracy_bound, bound)


def write_deployable(run_path: Path, stage: str, best: dict[str, Any], target: str = "cpu-x86") -> Path:
    """Copy the chosen file (`best`, a bench row) to RUN/export/deploy/<stage>.<target>.onnx, adding to its
    metadata how to run it (kdedge.target, kdedge.runtime, kdedge.runtime_precision) and what bench measured."""
    import onnx

    source = Path(best["file"])
    if not source.is_file() or abs(source.stat().st_size / 1e6 - best["size_mb"]) > 1e-3:
        raise InputError(f"{source}: missing or changed since it was benched; run `kdedge bench {run_path}` again")
    check_model_file(source)  # bench.json may name any file: checked before onnx loads its data
    extra = {
        "kdedge.target": target,
        "kdedge.runtime": best["runtime"],
        "kdedge.runtime_precision": best["precision"],
        "kdedge.bench_latency_ms_p50": f"{best['latency_ms_p50']:.4f}",
        "kdedge.bench_batch_size": str(best["batch_size"]),
        "kdedge.bench_accuracy": f"{best['accuracy']:.6f}",
        "kdedge.bench_agreement_fp32": f"{best['agreement_fp32']:.6f}",
        "kdedge.deploy_source": source.name,
    }
    if source.suffix != ".onnx":
        deploy_dir = Path(run_path) / "export" / "deploy"
        return _write_edge_deployable(source, deploy_dir, f"{stage}.{target}", extra)
    model = onnx.load(str(source))
    kept = [p for p in model.metadata_props if p.key not in extra]
    del model.metadata_props[:]
    for key, value in [*((p.key, p.value) for p in kept), *extra.items()]:
        model.metadata_props.add(key=key, value=value)
    out = Path(run_path) / "export" / "deploy" / f"{stage}.{target}.onnx"
    atomic_write(out, lambda tmp: onnx.save(model, str(tmp)))
    return out


def _write_edge_deployable(source: Path, folder: Path, stem: str, extra: dict[str, str]) -> Path:
    """Copy an edge file (.pte / .tflite / .mnn, or an .ncnn folder) to folder/<stem><suffix> with its sidecar
    metadata plus `extra` (sidecar first, then the file, each through a temp name: a reader never sees half
    of either)."""
    import shutil

    from kdedge.runtime.edge_meta import read_edge_metadata, sidecar

    meta = read_edge_metadata(source) | extra
    out = folder / f"{stem}{source.suffix}"
    atomic_write_text(sidecar(out), json.dumps(meta, indent=2, sort_keys=True) + "\n")
    if source.is_dir():  # an .ncnn folder: copied beside, then renamed over the old one
        _replace_folder(source, out)
    else:
        atomic_write(out, lambda tmp: shutil.copyfile(source, tmp))
    return out


def _replace_folder(source: Path, out: Path) -> None:
    """Copy the folder `source` to `out` through a temp name, so a reader finds the old or the new one whole."""
    import shutil

    staged, old = out.with_name(f".{out.name}.new"), out.with_name(f".{out.name}.old")
    for leftover in (staged, old):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(source, staged)
    if out.exists():
        os.replace(out, old)
    os.replace(staged, out)
    shutil.rmtree(old, ignore_errors=True)


def deploy_run(
    run_path: Path, which: str, target: str, accuracy_bound: float, min_agreement: float | None = None
) -> list[tuple[Path, str]]:
    """`kdedge export RUN --target T`: (deployable file, why it was chosen) of each stage asked for
    (student, teacher, both). min_agreement None: the run's export bound."""
    if which not in ("student", "teacher", "both"):
        raise InputError(f"--model: expected student, teacher or both (got '{which}')")
    stages = ("teacher", "student") if which == "both" else (which,)
    record_file = Path(run_path) / "bench.json"
    if which == "both" and record_file.is_file():  # only the stages the run has
        benched = {r["stage"] for r in json.loads(record_file.read_text())["rows"]}
        stages = tuple(s for s in stages if s in benched) or stages
    chosen = [
        (stage, *deployable_choice(Path(run_path), stage, target, accuracy_bound, min_agreement)) for stage in stages
    ]
    return [(write_deployable(Path(run_path), stage, best, target), why) for stage, best, why in chosen]
