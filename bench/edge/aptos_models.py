"""Random-weight APTOS-sized models (224x224, 5 grades) as kdedge ONNX files, for `kdedge bench` speed rows.

APTOS photos cannot be redistributed, so there is no test set here: these files carry the APTOS metadata
(dataset aptos, ImageNet mean/std, 5 class names) and bench times them; their accuracy column stays empty.
Uses kdedge's own exporter (torch.onnx dynamo, opset 20) and int8 quantiser (QDQ, u8 activations, s8
per-channel weights) with random calibration images: the int8 ranges are meaningless, the speed is real.

    .venv/bin/python bench/edge/aptos_models.py runs/edge_bench/aptos224 \
        --models convnext_tiny:teacher,swin_tiny_patch4_window7_224:student,mobilenetv3_large_100:student
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from kdedge.data.aptos import CLASS_NAMES, IMAGENET_MEAN, IMAGENET_STD
from kdedge.export import INT8_SCHEMES
from kdedge.export.convert import export_fp32, to_int8
from kdedge.models.builders import build_model
from kdedge.runtime.onnx_meta import build_metadata, set_metadata


def write(model_name: str, stage: str, out: Path, size: int, scheme: str) -> None:
    torch.manual_seed(0)
    model = build_model(model_name, len(CLASS_NAMES), 3, size).eval()
    base = {
        "model": model_name,
        "stage": stage,
        "input_size": (size, size),
        "in_channels": 3,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "class_names": CLASS_NAMES,
        "dataset": "aptos",
        "weights": "random (speed only)",
    }
    with tempfile.TemporaryDirectory() as folder:
        fp32 = Path(folder) / f"{model_name}.fp32.onnx"
        export_fp32(model, (3, size, size), fp32, opset=20)
        calibration = np.random.default_rng(0).standard_normal((16, 3, size, size), dtype=np.float32)
        int8 = Path(folder) / f"{model_name}.int8.onnx"
        to_int8(fp32, int8, calibration, scheme, Path(folder))
        for precision, file in (("fp32", fp32), ("int8", int8)):
            proto = onnx.load(str(file))
            extra = {"int8_scheme": scheme} if precision == "int8" else {}
            set_metadata(proto, build_metadata(base | {"precision": precision} | extra))
            onnx.save(proto, str(out / f"{model_name}.{precision}.onnx"))
            print(out / f"{model_name}.{precision}.onnx", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--models", default="convnext_tiny:teacher,swin_tiny_patch4_window7_224:student,mobilenetv3_large_100:student"
    )
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--int8-scheme", default="u8s8", choices=INT8_SCHEMES)  # see bench/int8_settings.py
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for item in args.models.split(","):
        name, stage = item.split(":")
        write(name, stage, args.out, args.size, args.int8_scheme)


if __name__ == "__main__":
    main()
