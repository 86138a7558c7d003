"""Turn two scripts' raw result files into the table format of bench/make_tables.py, so that
docs/results.md and README's "Results at a glance" show them. Numbers are read, never typed:

    python bench/tabulate_raw_results.py && python bench/make_tables.py

Reads bench/results/retinamnist.json (bench/retinamnist_results.py) and cifar10_alpha_study.json +
cifar10_alexnet_teacher.json (bench/cifar10_alpha_study.py); writes retinamnist_table.json and
cifar10_alpha_study_table.json beside them.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _write(name: str, result: dict) -> None:
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")


def retinamnist() -> None:
    raw = json.loads((RESULTS / "retinamnist.json").read_text())
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
    _write(
        "retinamnist_table.json",
        {
            "title": "RetinaMNIST (real DR grading): ConvNeXt-T -> Swin-T / MobileNetV3-L, KD vs no KD",
            "experiment": "retina_convnext_teacher, retina_swin, retina_mobile",
            "order": 60,
            "headline": f"negative result: best distilled <= 5M student {best['test_accuracy_mean']:.3f} test accuracy "
            f"(2 seeds) vs the MedMNIST v2 reference {raw['reference']['accuracy']}; KD did not help",
            "date": raw["date"],
            "machine": raw["machine"]["cpu"] + ", 2 cores, 1 thread, fp32; " + raw["machine"]["note"],
            "commands": raw["commands"],
            "source": "bench/results/retinamnist.json (per seed), docs/retinamnist.md",
            "columns": [
                "model",
                "params",
                "test acc (2 seeds, ± half-range)",
                "QWK",
                "ORT fp32 ms b1",
                "ORT int8 ms b1",
            ],
            "rows": rows,
            "notes": [f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in raw["verdicts"].items()]
            + [
                "400 official test images; 32 px, 6 epochs per stage, from scratch (no hub weights); "
                "retina_convnext_self (self-KD) was not run in this session"
            ],
        },
    )


def alpha_study() -> None:
    raw = json.loads((RESULTS / "cifar10_alpha_study.json").read_text())
    teacher = json.loads((RESULTS / "cifar10_alexnet_teacher.json").read_text())
    rows = []
    for alpha in sorted({r["kdedge_alpha"] for r in raw["rows"]}, reverse=True):
        runs = [r for r in raw["rows"] if r["kdedge_alpha"] == alpha]
        acc = [r["test_accuracy"] * 100 for r in runs]
        rows.append(
            [
                alpha,
                runs[0]["study_alpha"],
                runs[0]["meaning"],
                len(runs),
                round(statistics.mean(r["train_accuracy"] * 100 for r in runs), 1),
                round(statistics.mean(r["val_accuracy"] * 100 for r in runs), 1),
                f"{statistics.mean(acc):.1f} ({max(acc) - min(acc):.1f})",
            ]
        )
    best = max(rows, key=lambda r: float(r[-1].split()[0]))
    teacher_acc = teacher["teacher_30_epochs"]["summary"]["test_accuracy"] * 100
    _write(
        "cifar10_alpha_study_table.json",
        {
            "title": "Alpha study: AlexNet -> small CNN on the CIFAR-10 subset (4,000 / 1,000 images)",
            "experiment": "cifar10_alexnet_smallcnn",
            "order": 70,
            "headline": f"AlexNet teacher {teacher_acc:.1f} % test; best student kdedge alpha {best[0]} "
            f"(study alpha {best[1]}): {best[-1].split()[0]} % vs "
            f"{[r for r in rows if r[0] == 0.0][0][-1].split()[0]} % without the teacher (2 seeds)",
            "date": "2026-12-04",
            "machine": f"{raw['machine']['cpu']}, 2 cores shared (load {raw['machine']['load_average_1min']})",
            "commands": [teacher["command"], raw["command"]],
            "source": "bench/results/cifar10_alpha_study.json, docs/cifar10.md, bench/cifar10_alpha_curves.png",
            "columns": [
                "kdedge alpha (soft weight)",
                "study alpha (hard weight)",
                "student",
                "seeds",
                "train acc %",
                "val acc %",
                "test acc % mean (max-min)",
            ],
            "rows": rows,
            "notes": [
                "one 30-epoch teacher for both seeds; students 10 epochs; train accuracy is the running "
                "accuracy of the last epoch's batches"
            ],
        },
    )


if __name__ == "__main__":
    retinamnist()
    alpha_study()
