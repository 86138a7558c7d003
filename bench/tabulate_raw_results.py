"""Turn the benchmark scripts' raw result files into the table format of bench/make_tables.py, so that
docs/results.md and README's "Results at a glance" show them. Numbers are read, never typed:

    python bench/tabulate_raw_results.py && python bench/make_tables.py

Reads, when present: retinamnist.json (bench/retinamnist_results.py), cifar10_alpha_study.json +
cifar10_alexnet_teacher.json (bench/cifar10_alpha_study.py), cifar10_resnet_subset.json
(bench/cifar10_kd_table.py), cifar10_throughput_quiet.json (bench/cifar10_train_throughput.py before torch.compile
was measured); and through
bench/tabulate_deploy_results.py own_images_*.json and edge_formats_<name>.json, through bench/search_results.py
search_<name>.json, through bench/train_throughput_table.py train_throughput_compile.json. Writes <name>_table.json
beside each.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _write(name: str, result: dict) -> None:
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")


RETINA_RECIPES = "retina_convnext_teacher, retina_swin, retina_mobile, retina_convnext_self"


def retinamnist(source: str, target: str, order: int, schedule: str) -> None:
    """One RetinaMNIST table (bench/retinamnist_results.py's output `source`) -> `target`."""
    raw = json.loads((RESULTS / source).read_text())
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
    reached = raw["verdicts"]["distilled student <= 5 M params reaches 0.531"]
    gain = raw["verdicts"].get("MobileNetV3-L: KD - no KD, accuracy")
    _write(
        target,
        {
            "title": f"RetinaMNIST (real DR grading), {schedule}: ConvNeXt-T teacher, students with and without KD",
            "experiment": raw.get("experiment", RETINA_RECIPES),
            "order": order,
            "headline": f"{'' if reached else 'negative result: '}best distilled <= 5M student "
            f"{best['test_accuracy_mean']:.3f} test accuracy (2 seeds) vs the MedMNIST v2 reference "
            f"{raw['reference']['accuracy']}" + ("" if gain is None else f"; MobileNetV3-L KD - no KD {gain:+.3f}"),
            "date": raw["date"],
            "machine": raw["machine"]["cpu"] + ", 2 cores, fp32; " + raw["machine"]["note"],
            "commands": raw["commands"],
            "source": f"bench/results/{source} (per seed), docs/retinamnist.md",
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
            + [f"400 official test images; 32 px, {schedule}, from scratch (no hub weights)"],
        },
    )


def retinamnist_students(source: str, target: str, order: int) -> None:
    """The RetinaMNIST student attempts (bench/retinamnist_results.py --row ...: best_val runs) -> `target`."""
    raw = json.loads((RESULTS / source).read_text())

    def mean(values: list) -> str:
        values = [v for v in values if v is not None]
        return f"{statistics.fmean(values):.3f}" if values else "-"

    rows = [
        [
            r["row"],
            f"{r['params'] / 1e6:.1f}M",
            f"{r['test_accuracy_mean']:.3f} ± {r['test_accuracy_spread'] / 2:.3f}",
            " / ".join(f"{s['test_accuracy']:.4f}" for s in r["per_seed"]),
            mean([s["last_epoch_test_accuracy"] for s in r["per_seed"]]),
            f"{r['test_qwk_mean']:.3f}",
            round(statistics.fmean(s["train_seconds"] for s in r["per_seed"]) / 60, 1),
        ]
        for r in raw["rows"]
    ]
    rows.append(["MedMNIST v2 best baseline", "", f"{raw['reference']['accuracy']:.3f}", "", "", "", None])
    best = max(
        (r for r in raw["rows"] if r["params"] <= 5e6 and ", KD" in r["row"]), key=lambda r: r["test_accuracy_mean"]
    )
    reached = raw["verdicts"]["distilled student <= 5 M params reaches 0.531"]
    _write(
        target,
        {
            "title": raw["table_title"],
            "experiment": raw["experiment"],
            "order": order,
            "headline": f"{'' if reached else 'negative result: '}best distilled <= 5M student ({best['row']}) "
            f"{best['test_accuracy_mean']:.3f} test accuracy (2 seeds) vs the MedMNIST v2 reference "
            f"{raw['reference']['accuracy']}",
            "date": raw["date"],
            "machine": raw["machine"],
            "commands": raw["commands"],
            "source": f"bench/results/{source} (per seed), docs/retinamnist.md",
            "columns": [
                "model",
                "params",
                "test acc (seeds 0 / 1 mean, ± half-range)",
                "per seed",
                "last epoch acc",
                "QWK",
                "train min/run",
            ],
            "rows": rows,
            "notes": [f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in raw["verdicts"].items()]
            + raw.get("notes", []),
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


def _date(machine: dict) -> str:
    return str(machine.get("date", "2026-12-04"))[:10]


def cifar10_resnet_subset() -> None:
    raw = json.loads((RESULTS / "cifar10_resnet_subset.json").read_text())
    machine = raw["machine"]
    rows = [
        [
            r["row"],
            r["epochs"],
            r["train_images"],
            r["test_images"],
            " / ".join(f"{a:.1f}" for a in r["test_accuracy_percent"]),
            r["mean"],
            r["spread"],
            r["seconds_per_epoch"],
        ]
        for r in raw["rows"]
    ]
    by_row = {r["row"].split(" (")[0]: r["mean"] for r in raw["rows"]}
    plain, self_kd = by_row.get("ResNet18, no KD"), by_row.get("ResNet18 <- ResNet18")
    _write(
        "cifar10_resnet_subset_table.json",
        {
            "title": "CIFAR-10 ResNet18 / ResNet50: no KD, self-KD and reverse KD on the real subset",
            "experiment": "cifar10_self_r18, cifar10_self_r50, cifar10_reverse_r50_from_r18",
            "order": 65,
            "headline": f"ResNet18 on the 4,000-image subset: self-KD {self_kd:.1f} % vs no KD {plain:.1f} % test "
            f"(mean of {len(raw['rows'][0]['seeds'])} seeds; chance 11.2 %)"
            + (
                f"; ResNet50 taught by ResNet18 {by_row['ResNet50 <- ResNet18']:.1f} % vs "
                f"{by_row['ResNet50, no KD']:.1f} % alone (1 seed, short)"
                if {"ResNet50 <- ResNet18", "ResNet50, no KD"} <= set(by_row)
                else ""
            ),
            "date": _date(machine),
            "machine": f"{machine.get('cpu', 'CPU')}, {machine.get('cpus')} cores, torch {machine.get('torch')}, "
            f"bf16 autocast (amp: auto), load average {machine.get('load_average_1min')} at the end",
            "commands": ["KDEDGE_DATA=../shared/data " + raw["command"].replace("bench/", "python bench/", 1)],
            "source": "bench/results/cifar10_resnet_subset.json, docs/cifar10.md",
            "columns": [
                "model (training)",
                "epochs",
                "train images",
                "test images",
                "test acc % per seed",
                "mean",
                "max-min",
                "s/epoch",
            ],
            "rows": rows,
            "notes": [
                "the recipes as shipped (SGD lr 0.1, nesterov, cosine, warm-up a quarter of the run, crop+flip, "
                "batch 128), shortened to the epochs shown; the no-KD row is the self-KD run's own teacher "
                "(same seed, init, batch order and augmentation: only the loss differs)",
                "what it cannot show: the full-data, 200-epoch numbers of the papers; a few points between rows "
                "are within what 2 seeds on 1,000 test images resolve (binomial std ~1.5 points)",
                "the full-data table on a CUDA machine: python bench/cifar10_kd_table.py --full "
                "(--nproc N for torchrun); --estimate prints the expected time per row",
            ],
        },
    )


def throughput() -> None:
    raw = json.loads((RESULTS / "cifar10_throughput_quiet.json").read_text())
    rows = [
        [r["model"], r["setting"], r["batch"], r["threads"], r["images_per_s"], r["achieved_gflops"],
         f"{100 * r['fraction_of_own_dtype_peak']:.0f} %", r["load_average_1min"]]
        for r in raw["rows"]
    ]  # fmt: skip
    rate = {(r["model"], r["setting"], r["threads"]): r["images_per_s"] for r in raw["rows"]}
    before, after = rate[("cifar_resnet18", "fp32 NCHW", 2)], rate[("cifar_resnet18", "bf16 autocast channels_last", 2)]
    peak = raw["peak_gflops"]
    _write(
        "cifar10_throughput_quiet_table.json",
        {
            "title": "CPU training throughput: ResNet18 / ResNet50 (CIFAR) against FLOPs and the GEMM peak",
            "experiment": "bench/cifar10_train_throughput.py",
            "order": 66,
            "headline": f"ResNet18 training step {before:.0f} -> {after:.0f} images/s ({after / before:.1f}x) on 2 "
            "cores: bf16 autocast on AMX (amp: auto) and channels_last",
            "date": raw["machine"]["date"][:10],
            "machine": f"{raw['machine']['cpu']}, {raw['machine']['cores']} cores, AMX-BF16, quiet (load average in "
            f"the last column); GEMM peak 2048^3 fp32 {peak['float32']:.0f} / bf16 {peak['bfloat16']:.0f} GFLOP/s",
            "commands": [
                "python bench/cifar10_train_throughput.py --models cifar_resnet18 cifar_resnet50 --threads 2 1 "
                "--batches 128 --steps 3 --json bench/results/cifar10_throughput_quiet.json"
            ],
            "source": "bench/results/cifar10_throughput_quiet.json, docs/cifar10.md",
            "columns": ["model", "setting", "batch", "threads", "images/s", "GFLOP/s", "of own-dtype peak", "load"],
            "rows": rows,
            "notes": [
                "one full SGD step (forward, backward, nesterov update), median of 3 after warm-up; FLOPs per "
                "image counted by torch.utils.flop_counter (ResNet18-CIFAR 3.33 G, ResNet50-CIFAR 7.78 G)",
                "before = what a CPU run did before the CPU training speed-ups (fp32, NCHW); kdedge runs now use "
                "amp: auto (bf16 on AMX) and, since this measurement, channels_last on the CPU as well",
            ],
        },
    )


if __name__ == "__main__":
    retinamnist("retinamnist.json", "retinamnist_table.json", 60, "6 epochs per stage")
    if (RESULTS / "retinamnist_long.json").is_file():
        retinamnist("retinamnist_long.json", "retinamnist_long_table.json", 61, "30 epochs per stage")
    if (RESULTS / "retinamnist_students.json").is_file():
        retinamnist_students("retinamnist_students.json", "retinamnist_students_table.json", 62)
    alpha_study()
    for needed, make in (
        ("cifar10_resnet_subset.json", cifar10_resnet_subset),
        ("cifar10_throughput_quiet.json", throughput),
    ):
        if (RESULTS / needed).is_file():
            make()
    from tabulate_deploy_results import tabulate  # bench/ is on sys.path when run as a script

    tabulate()
    from search_results import tabulate as search_tables  # kdedge search: search_<name>.json, if any

    search_tables()
    from train_throughput_table import tabulate as throughput_tables  # eager vs torch.compile, if measured

    throughput_tables()
