"""RetinaMNIST tables from the raw files of its three attempts (retinamnist.json: 6 epochs a stage,
retinamnist_long.json: 30 epochs, retinamnist_students.json: the student attempts), each reproduced by the
study files named in its commands (studies/retinamnist_*.yaml)."""

from __future__ import annotations

import statistics

from tablegen.files import Files, as_run

RETINA_RECIPES = "retina_convnext_teacher, retina_swin, retina_mobile, retina_convnext_self"
ENV = "OMP_NUM_THREADS=1 KDEDGE_DATA=../shared/data"
LATENCY = [
    "# the latency columns: each run folder RUN of the study (--model teacher for STUDY/teachers/*/seed<N>)",
    "kdedge export RUN --model student --precision fp32,int8 --min-agreement 0 --force",
    "kdedge bench RUN --runtimes onnxruntime --batch 1 --threads 1 --seconds 3 --json RUN/bench.json",
]
# raw file -> (table file, order, schedule, the study commands that reproduce it)
ATTEMPTS = {
    "retinamnist.json": (
        "retinamnist_table.json",
        60,
        "6 epochs per stage",
        [f"{ENV} kdedge study studies/retinamnist_6_epochs.yaml --out runs/retina6", *LATENCY],
    ),
    "retinamnist_long.json": (
        "retinamnist_long_table.json",
        61,
        "30 epochs per stage",
        [f"{ENV} kdedge study studies/retinamnist_30_epochs.yaml --out runs/retina30"],
    ),
}
STUDENTS = [
    f"{ENV} kdedge study studies/retinamnist_students.yaml --out runs/retina_students",
    f"{ENV} kdedge study retina_swin --seeds 0 --out runs/retina_swin_adam --set student.optimizer=adam "
    "student.lr=1e-3 student.weight_decay=0 student.warmup_epochs=0 student.schedule=step student.step_epochs=15 "
    "student.step_gamma=0.5 student.clip_grad_norm=null student.augment=crop_flip student.keep=last   "
    "# the Swin-T rows: the schedule shipped until 2026-12-07",
]


def _notes(raw: dict) -> list[str]:
    return [f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in raw["verdicts"].items()]


def _headline(raw: dict, best: dict, named: bool) -> str:
    reached = raw["verdicts"]["distilled student <= 5 M params reaches 0.531"]
    who = f" ({best['row']})" if named else ""
    return (
        f"{'' if reached else 'negative result: '}best distilled <= 5M student{who} "
        f"{best['test_accuracy_mean']:.3f} test accuracy (2 seeds) vs the MedMNIST v2 reference "
        f"{raw['reference']['accuracy']}"
    )


def retinamnist(raw: dict, source: str, order: int, schedule: str, study: list[str]) -> dict:
    """One RetinaMNIST attempt's table: accuracy, QWK and onnxruntime latency per row."""
    rows = [
        [
            r["row"],
            f"{r['params'] / 1e6:.1f}M",
            f"{r['test_accuracy_mean']:.3f} ± {r['test_accuracy_spread'] / 2:.3f}",
            f"{r['test_qwk_mean']:.3f}",
            r["ort_fp32_ms_b1"] and round(r["ort_fp32_ms_b1"], 2),
            r["ort_int8_ms_b1"] and round(r["ort_int8_ms_b1"], 2),
        ]
        for r in raw["rows"]
    ]
    rows.append(["MedMNIST v2 best baseline", "", f"{raw['reference']['accuracy']:.3f}", "", None, None])
    best = max(
        (r for r in raw["rows"] if r["params"] <= 5e6 and "no KD" not in r["row"]),
        key=lambda r: r["test_accuracy_mean"],
    )
    gain = raw["verdicts"].get("MobileNetV3-L: KD - no KD, accuracy")
    return {
        "title": f"RetinaMNIST (real DR grading), {schedule}: ConvNeXt-T teacher, students with and without KD",
        "experiment": raw.get("experiment", RETINA_RECIPES),
        "order": order,
        "headline": _headline(raw, best, False) + ("" if gain is None else f"; MobileNetV3-L KD - no KD {gain:+.3f}"),
        "date": raw["date"],
        "machine": raw["machine"]["cpu"] + ", 2 cores, fp32; " + raw["machine"]["note"],
        "commands": [*study, *as_run(raw["date"], raw["commands"])],
        "source": f"bench/results/{source} (per seed), docs/retinamnist.md",
        "columns": ["model", "params", "test acc (2 seeds, ± half-range)", "QWK", "ORT fp32 ms b1", "ORT int8 ms b1"],
        "rows": rows,
        "notes": _notes(raw) + [f"400 official test images; 32 px, {schedule}, from scratch (no hub weights)"],
    }


def _mean(values: list) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.fmean(values):.3f}" if values else "-"


def student_row(r: dict) -> list:
    """One student attempt: accuracy over the seeds and per seed, last-epoch accuracy, QWK, minutes per run."""
    return [
        r["row"],
        f"{r['params'] / 1e6:.1f}M",
        f"{r['test_accuracy_mean']:.3f} ± {r['test_accuracy_spread'] / 2:.3f}",
        " / ".join(f"{s['test_accuracy']:.4f}" for s in r["per_seed"]),
        _mean([s["last_epoch_test_accuracy"] for s in r["per_seed"]]),
        f"{r['test_qwk_mean']:.3f}",
        round(statistics.fmean(s["train_seconds"] for s in r["per_seed"]) / 60, 1),
    ]


def retinamnist_students(raw: dict, source: str, order: int) -> dict:
    """The RetinaMNIST student attempts (best_val runs, losses and augmentation varied)."""
    rows = [student_row(r) for r in raw["rows"]]
    rows.append(["MedMNIST v2 best baseline", "", f"{raw['reference']['accuracy']:.3f}", "", "", "", None])
    best = max(
        (r for r in raw["rows"] if r["params"] <= 5e6 and ", KD" in r["row"]), key=lambda r: r["test_accuracy_mean"]
    )
    columns = ["model", "params", "test acc (seeds 0 / 1 mean, ± half-range)", "per seed", "last epoch acc", "QWK",
               "train min/run"]  # fmt: skip
    return {
        "title": raw["table_title"],
        "experiment": raw["experiment"],
        "order": order,
        "headline": _headline(raw, best, True),
        "date": raw["date"],
        "machine": raw["machine"],
        "commands": [*STUDENTS, *as_run(raw["date"], raw["commands"])],
        "source": f"bench/results/{source} (per seed), docs/retinamnist.md",
        "columns": columns,
        "rows": rows,
        "notes": _notes(raw) + raw.get("notes", []),
    }


def tables(files: Files) -> dict[str, dict]:
    """Every RetinaMNIST table whose raw file is present, by table file name."""
    found = {}
    for source, (target, order, schedule, study) in ATTEMPTS.items():
        if source in files:
            found[target] = retinamnist(files[source], source, order, schedule, study)
    if "retinamnist_students.json" in files:
        raw = files["retinamnist_students.json"]
        found["retinamnist_students_table.json"] = retinamnist_students(raw, "retinamnist_students.json", 62)
    return found
