"""Write real images (MNIST, the CIFAR-10 subset) as files in the layouts users have: for the own-images
tests and for bench/own_images_cifar.py, which compares a folder to the built-in loader.

    write_images(images, labels, class_names, out, layout)   layout: folder | split | csv
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _save(pixels: np.ndarray, path: Path) -> None:
    """(C, H, W) uint8 -> a lossless PNG (grayscale for C == 1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    Image.fromarray(np.ascontiguousarray(array)).save(path)


def write_images(
    splits: dict[str, tuple[np.ndarray, np.ndarray]], class_names: tuple[str, ...], out: Path, layout: str
) -> Path:
    """splits: {"train": (images (N, C, H, W) uint8, labels (N,)), "test": ...}. Returns what data.path
    names: OUT (folder: every split mixed, kdedge splits it; split: OUT/train|test/<class>/) or OUT/labels.csv
    (csv, paths relative to it). File names keep the original index, so a folder lists them in order."""
    rows = ["image,label"]
    for split, (images, labels) in splits.items():
        for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            name = f"{split}{index:05d}.png"
            if layout == "split":
                relative = Path(split) / class_names[int(label)] / name
            elif layout == "folder":
                relative = Path(class_names[int(label)]) / name
            else:
                relative = Path("images") / name
                rows.append(f"{relative.as_posix()},{class_names[int(label)]}")
            _save(pixels, out / relative)
    if layout == "csv":
        (out / "labels.csv").write_text("\n".join(rows) + "\n")
        return out / "labels.csv"
    return out


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first `per_class` images of every class (a small stratified real subset)."""
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]))
