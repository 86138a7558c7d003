"""Every model family of the packaged recipes through the NCNN (pnnx) and MNN converters, and its ONNX file
(as `kdedge export` writes it) through the ONNX consumers (onnxruntime, OpenVINO, OpenCV DNN, tract).

    python bench/arm_families.py [--families mlp,cifar_resnet18] [--images 64]

Each family is built at a recipe's input size with seeded random weights (conversion fidelity does not depend
on training), converted by kdedge's own converters (kdedge.export.ncnn_convert / mnn_convert / convert), and
run by kdedge's runners on real test images of the matching data set (MNIST 1x28x28, CIFAR-10 3x32x32 from
$KDEDGE_DATA). A cell says ok with the max |file - PyTorch| relative to max |PyTorch| and the top-1 agreement
with PyTorch, or the converter's / runtime's own first line. Writes bench/results/arm_families_table.json
(the results table format; `python bench/tables.py` renders it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from kdedge.export.convert import export_fp32, tidy_onnx
from kdedge.export.edge_common import ConvertJob
from kdedge.models.builders import build_model
from kdedge.runtime import consumers
from kdedge.runtime.mnn_runner import MnnRunner
from kdedge.runtime.ncnn_runner import NcnnRunner

RESULTS = Path(__file__).resolve().parent / "results"
# (family, in_channels, image size, kwargs): the packaged recipes' models at the recipes' sizes (the timm
# models of the APTOS recipes at 32 px: RetinaMNIST's size, to keep one run of this script short)
FAMILIES = [
    ("mlp", 1, 28, {"hidden": [800, 800]}),
    ("mnist_cnn", 1, 28, {}),
    ("small_cnn", 3, 32, {}),
    ("alexnet_cifar", 3, 32, {}),
    ("cifar_resnet18", 3, 32, {}),
    ("cifar_resnet50", 3, 32, {}),
    ("convnext_tiny", 3, 32, {}),
    ("swin_tiny_patch4_window7_224", 3, 32, {"window_size": 4}),
    ("mobilenetv3_large_100", 3, 32, {}),
    ("mobilenetv3_small_100", 3, 32, {}),
    ("efficientnet_b0", 3, 32, {}),
    ("resnet18", 3, 32, {}),
    ("resnet50", 3, 32, {}),
]


def real_images(channels: int, count: int) -> np.ndarray:
    """The first `count` test images, normalised with the training set's mean/std, (N, C, H, W) float32."""
    from kdedge.data.types import normalize
    from kdedge.recipe import validate_recipe
    from kdedge.train.pipeline import prepare_data

    name = "mnist" if channels == 1 else "cifar10"
    recipe = validate_recipe(
        {
            "name": "families",
            "data": {"name": name, "test_limit": count},
            "student": {"model": "mlp"},
            "distillation": {"loss": "none"},
        }
    )
    bundle = prepare_data(recipe, os.environ.get("KDEDGE_DATA"))
    return normalize(bundle.test.images, bundle.mean, bundle.std).numpy()


def verdict(got: np.ndarray, expected: np.ndarray) -> str:
    """'ok rel 3e-07, 100 %' from logits (N, K) of a file and of PyTorch."""
    rel = float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12))
    agree = float((got.argmax(1) == expected.argmax(1)).mean())
    return f"{'ok' if rel <= 1e-4 else 'differs'}: rel {rel:.0e}, top-1 {100 * agree:.0f} %"


def first_line(err: BaseException) -> str:
    return consumers.first_line(err).removeprefix("ExportFailed: ")[:160]


def family_row(name: str, channels: int, size: int, kwargs: dict, images: np.ndarray, folder: Path) -> list[str]:
    """One table row: ncnn, MNN, then each ONNX consumer."""
    from kdedge.export import mnn_convert, ncnn_convert

    torch.manual_seed(0)
    model = build_model(name, 10, channels, size, kwargs).eval()
    with torch.inference_mode():
        expected = model(torch.from_numpy(images)).numpy()
    cells = []
    for convert, runner, suffix in (
        (ncnn_convert.convert, NcnnRunner, ".fp32.ncnn"),
        (mnn_convert.convert, MnnRunner, ".fp32.mnn"),
    ):
        path = folder / f"{name}{suffix}"
        started = time.perf_counter()
        try:
            convert(ConvertJob(model, (channels, size, size), "fp32", np.zeros(0, np.float32), path))
            cells.append(f"{verdict(runner(path).predict(images), expected)} ({time.perf_counter() - started:.0f} s)")
        except Exception as err:  # noqa: BLE001 - the cell records whatever the converter or runtime said
            cells.append(f"failed: {first_line(err)}")
    onnx_file = folder / f"{name}.onnx"
    export_fp32(model, (channels, size, size), onnx_file, 20)
    tidy_onnx(onnx_file)
    for consumer in consumers.CONSUMERS:
        try:
            cells.append(verdict(consumers.logits_of(consumer, onnx_file, images), expected))
        except Exception as err:  # noqa: BLE001
            cells.append(f"refused: {first_line(err)}")
    return [name, f"{channels}x{size}x{size}", *cells]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(f[0] for f in FAMILIES))
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    wanted = args.families.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="arm-families-") as folder:
        for name, channels, size, kwargs in [f for f in FAMILIES if f[0] in wanted]:
            rows.append(family_row(name, channels, size, kwargs, real_images(channels, args.images), Path(folder)))
            print(" | ".join(rows[-1]), flush=True)
    command = "python bench/arm_families.py" + (f" --families {args.families}" if len(wanted) < len(FAMILIES) else "")
    table = {
        "title": "Every model family through NCNN, MNN and the ONNX consumers",
        "experiment": "bench/arm_families.py",
        "order": 85,
        "headline": f"{sum('ok' in r[2] for r in rows)}/{len(rows)} families convert to NCNN, "
        f"{sum('ok' in r[3] for r in rows)}/{len(rows)} to MNN; OpenCV DNN agrees on "
        f"{sum(r[6].startswith('ok') for r in rows)}/{len(rows)} fp32 ONNX files",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, one thread, load average "
        f"{os.getloadavg()[0]:.1f}",
        "commands": [f"taskset -c 1 env OMP_NUM_THREADS=1 KDEDGE_DATA=../shared/data {command}"],
        "source": "bench/arm_families.py (this table is its output)",
        "columns": ["family", "input", "ncnn fp32", "MNN fp32", *[f"ONNX fp32: {c}" for c in consumers.CONSUMERS]],
        "rows": rows,
        "notes": [
            f"seeded random weights, {args.images} real test images (MNIST or CIFAR-10); 'ok' = max |file - PyTorch|"
            " / max |PyTorch| <= 1e-4 (the export's fp32_rtol); top-1 = agreement with PyTorch",
            "ONNX files as `kdedge export` writes them (dynamo exporter, opset 20, HardSigmoid without its default"
            " beta); pnnx 20261020, ncnn 1.0.20261020, MNN 3.6.1, OpenCV 5.1.0, tract 0.23.9",
        ],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "arm_families_table.json").write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
