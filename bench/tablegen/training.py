"""CIFAR-10 tables from the raw files of the training side: the alpha study (cifar10_alpha_study.json and
cifar10_alexnet_teacher.json; studies/cifar10_alpha.yaml), the ResNet subset table
(cifar10_resnet_subset.json; studies/cifar10_resnet_subset.yaml) and the training throughput
measured on an AMX CPU on 2026-12-04 (cifar10_throughput_quiet.json; eager vs torch.compile: throughput.py)."""

from __future__ import annotations

import statistics

from tablegen.files import Files, as_run

ALPHA_COLUMNS = ["kdedge alpha (soft weight)", "study alpha (hard weight)", "student", "seeds", "train acc %",
                 "val acc %", "test acc % mean (max-min)"]  # fmt: skip
SUBSET_COLUMNS = ["model (training)", "epochs", "train images", "test images", "test acc % per seed", "mean",
                  "max-min", "s/epoch"]  # fmt: skip
THROUGHPUT_COLUMNS = ["model", "setting", "batch", "threads", "images/s", "GFLOP/s", "of own-dtype peak", "load"]
ENV = "KDEDGE_DATA=../shared/data"


def alpha_rows(raw: dict) -> list[list]:
    """Per kdedge alpha: both conventions, seeds, mean train / val accuracy, test mean (max - min), in %."""
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
    return rows


def alpha_study(raw: dict, teacher: dict) -> dict:
    """The alpha study: AlexNet teacher, small-CNN students at kdedge alpha 1, 0 and 0.5, 2 seeds."""
    rows = alpha_rows(raw)
    best = max(rows, key=lambda r: float(r[-1].split()[0]))
    no_teacher = [r for r in rows if r[0] == 0.0][0][-1].split()[0]
    teacher_acc = teacher["teacher_30_epochs"]["summary"]["test_accuracy"] * 100
    return {
        "title": "Alpha study: AlexNet -> small CNN on the CIFAR-10 subset (4,000 / 1,000 images)",
        "experiment": "cifar10_alexnet_smallcnn",
        "order": 70,
        "headline": f"AlexNet teacher {teacher_acc:.1f} % test; best student kdedge alpha {best[0]} "
        f"(study alpha {best[1]}): {best[-1].split()[0]} % vs {no_teacher} % without the teacher (2 seeds)",
        "date": "2026-12-04",
        "machine": f"{raw['machine']['cpu']}, 2 cores shared (load {raw['machine']['load_average_1min']})",
        "commands": [
            f"{ENV} kdedge train cifar10_alexnet_smallcnn --out runs/alex_teacher30",
            f"{ENV} kdedge study studies/cifar10_alpha.yaml --out runs/alpha_study",
            *as_run("2026-12-04", [teacher["command"], raw["command"]]),
        ],
        "source": "bench/results/cifar10_alpha_study.json, docs/cifar10.md, bench/results/cifar10_alpha_curves.png",
        "columns": ALPHA_COLUMNS,
        "rows": rows,
        "notes": [
            "one 30-epoch teacher for both seeds; students 10 epochs; train accuracy is the running "
            "accuracy of the last epoch's batches"
        ],
    }


def _date(machine: dict) -> str:
    return str(machine.get("date", "2026-12-04"))[:10]


def subset_headline(raw: dict) -> str:
    """Self-KD against no KD on ResNet18; reverse KD on ResNet50 when its rows are there."""
    by_row = {r["row"].split(" (")[0]: r["mean"] for r in raw["rows"]}
    seeds = {r["row"].split(" (")[0]: len(r["seeds"]) for r in raw["rows"]}
    plain, self_kd = by_row.get("ResNet18, no KD"), by_row.get("ResNet18 <- ResNet18")
    headline = (
        f"ResNet18 on the 4,000-image subset: self-KD {self_kd:.1f} % vs no KD {plain:.1f} % test "
        f"(mean of {len(raw['rows'][0]['seeds'])} seeds; chance 11.2 %)"
    )
    if {"ResNet50 <- ResNet18", "ResNet50, no KD"} <= set(by_row):
        headline += (
            f"; ResNet50 taught by ResNet18 {by_row['ResNet50 <- ResNet18']:.1f} % vs "
            f"{by_row['ResNet50, no KD']:.1f} % alone ({_seeds(seeds['ResNet50 <- ResNet18'])}, 8 epochs)"
        )
    own = next((r for r in raw["rows"] if r["row"].startswith("ResNet50 <- ResNet50")), None)
    if own and own.get("teacher_accuracy_percent"):  # self-KD beside its own teachers (retrained for it)
        teachers = own["teacher_accuracy_percent"]
        headline += (
            f"; ResNet50 taught by itself {own['mean']:.1f} % vs its teachers' {sum(teachers) / len(teachers):.1f} %"
            f" ({_seeds(len(own['seeds']))})"
        )
    return headline


def _seeds(count: int) -> str:
    return f"mean of {count} seeds" if count > 1 else "1 seed"


def cifar10_resnet_subset(raw: dict) -> dict:
    """ResNet18 / ResNet50: no KD, self-KD and reverse KD on the CIFAR-10 subset."""
    machine = raw["machine"]
    rows = [
        [r["row"], r["epochs"], r["train_images"], r["test_images"],
         " / ".join(f"{a:.1f}" for a in r["test_accuracy_percent"]), r["mean"], r["spread"], r["seconds_per_epoch"]]
        for r in raw["rows"]
    ]  # fmt: skip
    return {
        "title": "CIFAR-10 ResNet18 / ResNet50: no KD, self-KD and reverse KD on the real subset",
        "experiment": "cifar10_self_r18, cifar10_self_r50, cifar10_reverse_r50_from_r18",
        "order": 65,
        "headline": subset_headline(raw),
        "date": _date(machine),
        "machine": f"{machine.get('cpu', 'CPU')}, {machine.get('cpus')} cores, torch {machine.get('torch')}, "
        f"bf16 autocast (amp: auto), load average {machine.get('load_average_1min')} at the end",
        "commands": [f"{ENV} kdedge study studies/cifar10_resnet_subset.yaml --out runs/cifar10_kd_subset"],
        "source": "bench/results/cifar10_resnet_subset.json, docs/cifar10.md",
        "columns": SUBSET_COLUMNS,
        "rows": rows,
        "notes": [
            "the recipes as shipped (SGD lr 0.1, nesterov, cosine, warm-up a quarter of the run, crop+flip, "
            "batch 128), shortened to the epochs shown; the no-KD row is the self-KD run's own teacher "
            "(same seed, init, batch order and augmentation: only the loss differs)",
            "what it cannot show: the full-data, 200-epoch numbers of the papers; a few points between rows "
            "are within what 2 seeds on 1,000 test images resolve (binomial std ~1.5 points)",
            "measured before the study file existed, with its recipes and settings (the ResNet50 rows at seed 0 "
            "only); the command lines as run: docs/cifar10.md",
            *raw.get("notes", []),
            "the full-data table on a CUDA machine: kdedge study studies/cifar10_resnet_full.yaml; "
            "docs/cifar10.md gives the expected time per row",
        ],
    }


def throughput(raw: dict) -> dict:
    """CPU training throughput of the CIFAR ResNets against FLOPs and the measured GEMM peak."""
    rows = [
        [r["model"], r["setting"], r["batch"], r["threads"], r["images_per_s"], r["achieved_gflops"],
         f"{100 * r['fraction_of_own_dtype_peak']:.0f} %", r["load_average_1min"]]
        for r in raw["rows"]
    ]  # fmt: skip
    rate = {(r["model"], r["setting"], r["threads"]): r["images_per_s"] for r in raw["rows"]}
    before, after = rate[("cifar_resnet18", "fp32 NCHW", 2)], rate[("cifar_resnet18", "bf16 autocast channels_last", 2)]
    peak = raw["peak_gflops"]
    return {
        "title": "CPU training throughput: ResNet18 / ResNet50 (CIFAR) against FLOPs and the GEMM peak",
        "experiment": "bench/cifar10_train_throughput.py",
        "order": 66,
        "headline": f"ResNet18 training step {before:.0f} -> {after:.0f} images/s ({after / before:.1f}x) on 2 "
        "cores: bf16 autocast on AMX (amp: auto) and channels_last",
        "date": raw["machine"]["date"][:10],
        "machine": f"{raw['machine']['cpu']}, {raw['machine']['cores']} cores, AMX-BF16, quiet (load average in "
        f"the last column); GEMM peak 2048^3 fp32 {peak['float32']:.0f} / bf16 {peak['bfloat16']:.0f} GFLOP/s",
        "commands": [
            "# as measured on 2026-12-04, by bench/cifar10_train_throughput.py before its torch.compile rows "
            "(its flags since: --models --threads --steps --max-autotune --json):",
            "python bench/cifar10_train_throughput.py --models cifar_resnet18 cifar_resnet50 --threads 2 1 "
            "--batches 128 --steps 3 --json bench/results/cifar10_throughput_quiet.json",
        ],
        "source": "bench/results/cifar10_throughput_quiet.json, docs/cifar10.md",
        "columns": THROUGHPUT_COLUMNS,
        "rows": rows,
        "notes": [
            "one full SGD step (forward, backward, nesterov update), median of 3 after warm-up; FLOPs per "
            "image counted by torch.utils.flop_counter (ResNet18-CIFAR 3.33 G, ResNet50-CIFAR 7.78 G)",
            "before = what a CPU run did before the CPU training speed-ups (fp32, NCHW); kdedge runs now use "
            "amp: auto (bf16 on AMX) and, since this measurement, channels_last on the CPU as well",
        ],
    }


def tables(files: Files) -> dict[str, dict]:
    """Every CIFAR-10 table whose raw files are present, by table file name."""
    found = {}
    if {"cifar10_alpha_study.json", "cifar10_alexnet_teacher.json"} <= set(files):
        teacher = files["cifar10_alexnet_teacher.json"]
        found["cifar10_alpha_study_table.json"] = alpha_study(files["cifar10_alpha_study.json"], teacher)
    if "cifar10_resnet_subset.json" in files:
        found["cifar10_resnet_subset_table.json"] = cifar10_resnet_subset(files["cifar10_resnet_subset.json"])
    if "cifar10_throughput_quiet.json" in files:
        found["cifar10_throughput_quiet_table.json"] = throughput(files["cifar10_throughput_quiet.json"])
    return found
