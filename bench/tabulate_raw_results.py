"""Turn two scripts' raw result files into the table format of bench/make_tables.py, so that
docs/results.md and README's "Results at a glance" show them. Numbers are read, never typed:

    python bench/tabulate_raw_results.py && python bench/make_tables.py

Reads, when present: retinamnist.json (bench/retinamnist_results.py), cifar10_alpha_study.json +
cifar10_alexnet_teacher.json (bench/cifar10_alpha_study.py), cifar10_resnet_subset.json
(bench/cifar10_kd_table.py), own_images_cifar.json / own_images_memory.json (bench/own_images_*.py) and
edge_formats_<name>.json (bench/edge_formats.py); writes <name>_table.json beside each.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


MEMORY_COLUMNS = ["measurement", "memory limit MB", "images", "decoded GB", "load s", "epoch s", "peak RSS MB",
                  "of it anonymous", "of it file-backed", "status"]  # fmt: skip
EDGE_COLUMNS = ["runtime", "precision", "file", "size MB", "p50 ms (batch 1)", "accuracy %", "test images",
                "max abs diff vs torch", "status"]  # fmt: skip


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
            f"(mean of {len(raw['rows'][0]['seeds'])} seeds; chance 11.2 %)",
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


def own_images() -> None:
    cifar = json.loads((RESULTS / "own_images_cifar.json").read_text())
    rows = [
        [name, r["train_images"], r["test_images"], round(100 * r["teacher_test_accuracy"], 1),
         round(100 * r["student_test_accuracy"], 1), r["seconds"]]
        for name, r in (("built-in cifar10 loader", cifar["builtin_cifar10"]), ("data.name: folder (PNG files)",
                        cifar["folder"]))
    ]  # fmt: skip
    _write(
        "own_images_cifar_table.json",
        {
            "title": "Your own images: the CIFAR-10 subset as PNG files vs the built-in loader",
            "experiment": "bench/own_images_cifar.py (issue 18)",
            "order": 90,
            "headline": f"same recipe and split, folder of PNG files vs built-in loader: student gap "
            f"{cifar['student_gap_points']:+.1f} points ({'within' if cifar['within_2_points'] else 'NOT within'} "
            "the 2-point target)",
            "date": "2026-12-04",
            "machine": f"Intel Xeon, 2 cores, load average {cifar['load_average'][0]:.1f} at the end",
            "commands": ["KDEDGE_DATA=../shared/data python " + cifar["command"].removeprefix("python ")],
            "source": "bench/results/own_images_cifar.json",
            "columns": ["data", "train images", "test images", "teacher acc %", "student acc %", "seconds"],
            "rows": rows,
            "notes": [
                f"{cifar['epochs']} epochs per stage, small CNN width 16 -> width 8, Hinton loss alpha 0.5 T 4; the "
                "folder holds the built-in run's own train / val / test split (PATH/train|val|test/<class>/)",
                "the folder run normalises with the mean / std it measured on its training split, the built-in "
                "loader with its fixed CIFAR-10 values, and visits the images in another order (sorted files): "
                "the gap includes that noise",
            ],
        },
    )
    memory = json.loads((RESULTS / "own_images_memory.json").read_text())
    names = ("small_memmap_first_load", "small_memmap", "small_in_memory", "large_memmap_first_load")
    rows = []
    for name in names:
        r = memory.get(name)
        if r is None:
            continue
        limit = memory["large_limit_mb"] if name.startswith("large") else None
        cells = [r.get(k) for k in ("images", "decoded_gb", "load_seconds", "epoch_seconds", "peak_rss_mb",
                                    "peak_rss_anon_mb", "peak_rss_file_mb")]  # fmt: skip
        rows.append([name.replace("_", " "), limit, *cells, r.get("failed", "ok")])
    _write(
        "own_images_memory_table.json",
        {
            "title": "Data larger than memory: the memory-mapped image cache vs everything in RAM",
            "experiment": "bench/own_images_memory.py (issue 18)",
            "order": 91,
            "headline": f"1 GB set: memmap peak RSS {memory['small_memmap'].get('peak_rss_mb')} MB vs "
            f"{memory['small_in_memory'].get('peak_rss_mb')} MB in RAM, epoch "
            f"{memory['epoch_ratio_memmap_over_memory']}x; decode {memory['decode_images_per_second']:.0f} images/s; "
            f"a {memory.get('large_memmap_first_load', {}).get('decoded_gb')} GB set trains in a "
            f"{memory['large_limit_mb']} MB cgroup ({rows[-1][-1] if rows else 'not run'})",
            "date": "2026-12-04",
            "machine": f"Intel Xeon, {memory['cpus']} cores, load average {memory['load_average'][0]:.1f} at the end",
            "commands": ["KDEDGE_DATA=../shared/data " + memory["command"]],
            "source": "bench/results/own_images_memory.json",
            "columns": MEMORY_COLUMNS,
            "rows": rows,
            "notes": [
                "images: real CIFAR-10 pictures upscaled and cropped to 256 px JPEG files, decoded once to "
                "224 x 224 x 3 uint8; the student is a tiny MLP so that the data path, not the model, is timed",
                "RSS counts the pages of the memory map the process has touched (file-backed: page cache the "
                "kernel evicts under pressure, as in the cgroup row); the anonymous part is what the process "
                "itself holds",
            ]
            + _disk_bound_note(memory),
        },
    )


def _disk_bound_note(memory: dict) -> list[str]:
    """What the set larger than the memory limit costs per image against the set that fits (a number)."""
    large, fits = memory.get("large_memmap_first_load", {}), memory.get("small_memmap", {})
    if "epoch_seconds" not in large or "epoch_seconds" not in fits:
        return []
    per_large = 1000 * large["epoch_seconds"] / large["images"]
    per_fits = 1000 * fits["epoch_seconds"] / fits["images"]
    return [
        f"the set {large['decoded_gb']} GB in a {memory['large_limit_mb']} MB cgroup trains, but each epoch reads "
        f"the map from disk again (the page cache cannot hold it): {per_large:.1f} ms per image against "
        f"{per_fits:.1f} when the set fits in memory ({per_large / per_fits:.0f}x); bounded memory, not free"
    ]


def edge_formats(name: str, title: str, order: int) -> None:
    raw = json.loads((RESULTS / f"edge_formats_{name}.json").read_text())
    rows = [
        [r["runtime"], r["precision"], r.get("file"), r.get("size_mb"), r.get("latency_ms_p50"),
         None if r.get("accuracy") is None else round(100 * r["accuracy"], 2), r.get("test_count"),
         None if r.get("max_abs_diff_torch") is None else f"{r['max_abs_diff_torch']:.1e}", r["status"]]
        for r in raw["rows"]
    ]  # fmt: skip
    timed = {(r[0], r[1]): r[4] for r in rows if r[4] is not None}
    fastest = min(timed, key=timed.get)
    ort = timed.get(("onnxruntime", "fp32"))
    machine = raw["machine"]
    _write(
        f"edge_formats_{name}_table.json",
        {
            "title": title,
            "experiment": "bench/edge_formats.py (issue 19)",
            "order": order,
            "headline": f"fastest at batch 1: {fastest[0]} {fastest[1]} {timed[fastest]:.3f} ms vs onnxruntime fp32 "
            f"{ort} ms, in one run",
            "date": "2026-12-04",
            "machine": f"{machine['cpu']}, {machine['cores']} cores, load average {machine['load_average'][0]:.1f}; "
            "batch 1, each row in its own process",
            "commands": [raw["command"]],
            "source": f"bench/results/edge_formats_{name}.json",
            "columns": EDGE_COLUMNS,
            "rows": rows,
            "notes": [
                "max abs diff vs torch: the export's parity check on random inputs (fp32 is the one that matters; "
                "fp16 / int8 files are bounded by top-1 agreement with PyTorch on real test images instead)",
                "Core ML converts on Linux but runs on macOS only; TensorRT needs a CUDA GPU with TensorRT",
            ],
        },
    )


EDGE = {
    "mnist800": ("Edge formats: the MNIST 784-800-800-10 student in every format", 81),
    "cifar10_r18": ("Edge formats: the CIFAR-10 ResNet18 (self-KD) student in every format", 82),
    "retina_mobile": ("Edge formats: the RetinaMNIST MobileNetV3-L (KD) student in every format", 83),
}

if __name__ == "__main__":
    retinamnist("retinamnist.json", "retinamnist_table.json", 60, "6 epochs per stage")
    if (RESULTS / "retinamnist_long.json").is_file():
        retinamnist("retinamnist_long.json", "retinamnist_long_table.json", 61, "30 epochs per stage")
    alpha_study()
    for needed, make in (
        (("cifar10_resnet_subset.json",), cifar10_resnet_subset),
        (("own_images_cifar.json", "own_images_memory.json"), own_images),
    ):
        if all((RESULTS / n).is_file() for n in needed):
            make()
    for edge_name, (edge_title, edge_order) in EDGE.items():
        if (RESULTS / f"edge_formats_{edge_name}.json").is_file():
            edge_formats(edge_name, edge_title, edge_order)
