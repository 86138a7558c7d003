"""Deployment-side tables from the raw files of the benchmark scripts: own_images_cifar.json
(bench/own_images_cifar.py), own_images_memory.json (bench/own_images_memory.py) and edge_formats_<name>.json
(bench/edge_formats.py)."""

from __future__ import annotations

from tablegen.files import Files

CIFAR_COLUMNS = ["data", "train images", "test images", "teacher acc % per seed", "student acc % per seed",
                 "student mean %"]  # fmt: skip
MEMORY_COLUMNS = ["measurement", "memory limit MB", "images", "decoded GB", "load s", "epoch s", "peak RSS MB",
                  "of it anonymous", "of it file-backed", "status"]  # fmt: skip
MEMORY_ROWS = ("small_memmap_first_load", "small_memmap", "small_in_memory", "large_memmap_first_load")
EDGE_COLUMNS = ["runtime", "precision", "file", "size MB", "p50 ms (batch 1)", "accuracy %", "test images",
                "max abs diff vs torch", "top-1 agreement %", "status"]  # fmt: skip
EDGE = {
    "mnist800": ("Edge formats: the MNIST 784-800-800-10 student in every format", 81),
    "cifar10_r18": ("Edge formats: the CIFAR-10 ResNet18 (self-KD) student in every format", 82),
    "retina_mobile": ("Edge formats: the RetinaMNIST MobileNetV3-L (KD) student in every format", 83),
    "cifar10_r18_arm": ("ARM formats: the CIFAR-10 ResNet18 student (short run) in every format", 84),
    "retina_mobile_arm": ("ARM formats: the RetinaMNIST MobileNetV3-L student (6 epochs) in every format", 84),
}
SAME_IMAGES = (
    "the (pixels, label) pairs of every split are identical in both runs (sha256 per image, checked for every "
    "seed): what differs is the order the images are listed in, hence the batches"
)


def _per_seed(values: list[float]) -> str:
    return " / ".join(f"{100 * v:.1f}" for v in values)


def own_images_cifar(cifar: dict) -> dict:
    """The CIFAR-10 subset as PNG files (data.name: folder) against the built-in loader."""
    labelled = (
        ("built-in cifar10 loader", cifar["builtin_cifar10"]),
        ("data.name: folder (PNG files)", cifar["folder"]),
    )
    rows = [
        [name, r["train_images"], r["test_images"], _per_seed(r["teacher_per_seed"]),
         _per_seed(r["student_per_seed"]), round(100 * r["student_test_accuracy"], 1)]
        for name, r in labelled
    ]  # fmt: skip
    same = all(cifar.get("same_images_and_labels_per_seed") or [False])
    return {
        "title": "Your own images: the CIFAR-10 subset as PNG files vs the built-in loader",
        "experiment": "bench/own_images_cifar.py",
        "order": 90,
        "headline": f"same recipe and split, folder of PNG files vs built-in loader: student gap of the "
        f"{len(cifar['seeds'])}-seed means {cifar['student_gap_points']:+.1f} points "
        f"({'within' if cifar['within_2_points'] else 'NOT within'} the 2-point target)",
        "date": "2026-12-04",
        "machine": f"Intel Xeon, 2 cores, load average {cifar['load_average'][0]:.1f} at the end",
        "commands": ["KDEDGE_DATA=../shared/data python " + cifar["command"].removeprefix("python ")],
        "source": "bench/results/own_images_cifar.json",
        "columns": CIFAR_COLUMNS,
        "rows": rows,
        "notes": [
            f"{cifar['epochs']} epochs per stage, small CNN width 16 -> width 8, Hinton loss alpha 0.5 T 4; per "
            "seed the folder holds that seed's built-in train / val / test split (PATH/train|val|test/<class>/)",
            "the folder run normalises with the mean / std it measured on its training split, the built-in "
            "loader with its fixed CIFAR-10 values, and visits the images in another order (sorted files): "
            "the gap includes that noise",
            *([SAME_IMAGES] if same else []),
        ],
    }


def memory_rows(memory: dict) -> list[list]:
    """One row per measurement of the memory benchmark that ran."""
    rows = []
    for name in MEMORY_ROWS:
        r = memory.get(name)
        if r is None:
            continue
        limit = memory["large_limit_mb"] if name.startswith("large") else None
        keys = ("images", "decoded_gb", "load_seconds", "epoch_seconds", "peak_rss_mb", "peak_rss_anon_mb",
                "peak_rss_file_mb")  # fmt: skip
        rows.append([name.replace("_", " "), limit, *(r.get(k) for k in keys), r.get("failed", "ok")])
    return rows


def own_images_memory(memory: dict) -> dict:
    """The memory-mapped image cache against everything in RAM, and a set larger than the memory limit."""
    rows = memory_rows(memory)
    return {
        "title": "Data larger than memory: the memory-mapped image cache vs everything in RAM",
        "experiment": "bench/own_images_memory.py",
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
    }


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


def edge_row(r: dict) -> list:
    """One exported file: size, batch-1 latency, accuracy, parity and agreement with PyTorch."""
    accuracy = None if r.get("accuracy") is None else round(100 * r["accuracy"], 2)
    diff = None if r.get("max_abs_diff_torch") is None else f"{r['max_abs_diff_torch']:.1e}"
    agreement = None if r.get("test_agreement") is None else round(100 * r["test_agreement"], 1)
    return [r["runtime"], r["precision"], r.get("file"), r.get("size_mb"), r.get("latency_ms_p50"), accuracy,
            r.get("test_count"), diff, agreement, r["status"]]  # fmt: skip


def edge_formats(raw: dict, name: str, title: str, order: int) -> dict:
    """One run's student in every export format, side by side with onnxruntime (edge_formats_<name>.json)."""
    rows = [edge_row(r) for r in raw["rows"]]
    timed = {(r[0], r[1]): r[4] for r in rows if r[4] is not None}
    fastest = min(timed, key=timed.get)
    ort = timed.get(("onnxruntime", "fp32"))
    machine = raw["machine"]
    return {
        "title": title,
        "experiment": "bench/edge_formats.py",
        "order": order,
        "headline": f"{title.split(': the ')[1].split(' in every')[0]}: fastest at batch 1 {fastest[0]} "
        f"{fastest[1]} {timed[fastest]:.3f} ms vs onnxruntime fp32 {ort:.3f} ms, in one run",
        "date": raw.get("date", "2026-12-04"),
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
    }


def tables(files: Files) -> dict[str, dict]:
    """Every deployment-side table whose raw files are present, by table file name."""
    found = {}
    if {"own_images_cifar.json", "own_images_memory.json"} <= set(files):
        found["own_images_cifar_table.json"] = own_images_cifar(files["own_images_cifar.json"])
        found["own_images_memory_table.json"] = own_images_memory(files["own_images_memory.json"])
    for name, (title, order) in EDGE.items():
        if f"edge_formats_{name}.json" in files:
            found[f"edge_formats_{name}_table.json"] = edge_formats(
                files[f"edge_formats_{name}.json"], name, title, order
            )
    return found
