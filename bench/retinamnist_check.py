"""Independent check of a RetinaMNIST run: its exported fp32 ONNX student, run by onnxruntime on the 400
official test images read straight from the npz, must give exactly summary.json's test accuracy and QWK.

Independent of kdedge's data and metric code: the npz is read with numpy, upsampled with the documented
pre-processing (bilinear, antialiased, rounded to uint8: what data.image_size means), normalised with the
mean / std the ONNX file carries in its metadata, and QWK is scikit-learn's cohen_kappa_score. Exits 1 on
any mismatch.

    python bench/retinamnist_check.py RUN [RUN ...]    (each RUN exported: kdedge export RUN)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from sklearn.metrics import cohen_kappa_score

OFFICIAL_MD5 = "bd4c0672f1bba3e3a89f0e4e876791e4"


def test_images(data_root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (400, 28, 28, 3) uint8, labels (400,)) of the official file (md5 checked here too)."""
    import hashlib

    path = next(p for p in (data_root / "retinamnist.npz", data_root / "medmnist" / "retinamnist.npz") if p.is_file())
    assert hashlib.md5(path.read_bytes()).hexdigest() == OFFICIAL_MD5, f"{path}: not the official file"
    with np.load(path) as npz:
        return npz["test_images"], npz["test_labels"].reshape(-1)


def onnx_predictions(model: Path, images: np.ndarray) -> np.ndarray:
    """Top-1 class (N,) of the ONNX file on (N, 28, 28, 3) uint8 images, pre-processed as its metadata
    says, one image at a time (batch 1, as deployed)."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    height, width = (int(v) for v in meta["kdedge.input_size"].split(","))
    mean = np.asarray(json.loads(meta["kdedge.mean"]), dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(json.loads(meta["kdedge.std"]), dtype=np.float32).reshape(1, -1, 1, 1)
    chw = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32))
    resized = F.interpolate(chw, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    pixels = resized.round().clamp(0, 255).numpy().astype(np.float32)
    inputs = (pixels / 255.0 - mean) / std
    name = session.get_inputs()[0].name
    logits = np.concatenate([session.run(None, {name: inputs[i : i + 1]})[0] for i in range(len(inputs))])
    return logits.argmax(1)


def check(run: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    """{'run', 'summary_accuracy', 'onnx_accuracy', 'summary_qwk', 'onnx_qwk', 'equal'} for one run."""
    summary = json.loads((run / "summary.json").read_text())["student"]
    predicted = onnx_predictions(run / "export" / "student.fp32.onnx", images)
    accuracy = float((predicted == labels).mean())
    qwk = float(cohen_kappa_score(labels, predicted, weights="quadratic"))
    equal = (
        round(accuracy * len(labels)) == len(labels) - summary["test_errors"] and abs(qwk - summary["test_qwk"]) < 1e-9
    )
    return {
        "run": str(run),
        "summary_accuracy": summary["test_accuracy"],
        "onnx_accuracy": accuracy,
        "summary_qwk": summary["test_qwk"],
        "onnx_qwk": qwk,
        "equal": equal,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("KDEDGE_DATA", ".")))
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    images, labels = test_images(args.data_root)
    rows = [check(run, images, labels) for run in args.runs]
    for row in rows:
        print(
            f"{'ok  ' if row['equal'] else 'DIFF'} {row['run']}: summary acc {row['summary_accuracy']:.4f} "
            f"qwk {row['summary_qwk']:.4f} | onnxruntime acc {row['onnx_accuracy']:.4f} "
            f"qwk {row['onnx_qwk']:.4f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(row["equal"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
