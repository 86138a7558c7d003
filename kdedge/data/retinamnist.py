"""RetinaMNIST (MedMNIST v2, 28x28): real colour fundus photographs of the DeepDRiD challenge, graded 0-4
for diabetic retinopathy (the APTOS 2019 task, quadratic weighted kappa applies). License CC BY 4.0.

Cite: J. Yang et al., "MedMNIST v2", Scientific Data 10, 41 (2023); R. Liu et al., "DeepDRiD: Diabetic
Retinopathy - Grading and Image Quality Estimation Challenge", Patterns 3(6), 2022.

The official file `retinamnist.npz` (keys train/val/test _images (N, 28, 28, 3) uint8 RGB and _labels
(N, 1) uint8) is read from the data root or `medmnist/` under it, checked against the official md5 (the
one in the `medmnist` package's info.py), and used with its official split as is: 1,080 train /
120 val / 400 test. Nothing is downloaded: kdedge never fetches data into a folder the user chose.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import torch

from kdedge.data.types import DataBundle, DataSource, Split
from kdedge.errors import InputError

FILE = "retinamnist.npz"
MD5 = "bd4c0672f1bba3e3a89f0e4e876791e4"  # medmnist/info.py, "retinamnist" -> "MD5"
WHERE_TO_GET = (
    "get it from MedMNIST v2 (https://medmnist.org, Zenodo record 10519652, CC BY 4.0; "
    "`pip install medmnist` then medmnist.RetinaMNIST(split='train', download=True, root=DIR))"
)
CLASS_NAMES = ("grade0", "grade1", "grade2", "grade3", "grade4")
SPLITS = ("train", "val", "test")
# per-channel mean / std of the 1,080 official training images (x / 255), measured once on the file
MEAN = (0.3984, 0.2447, 0.1558)
STD = (0.2983, 0.2005, 0.1507)


def candidates(root: Path) -> list[Path]:
    """Where the file is looked for, in order: ROOT/retinamnist.npz, ROOT/medmnist/retinamnist.npz."""
    return [root / FILE, root / "medmnist" / FILE]


def find_file(root: Path) -> Path:
    """The first candidate that exists; none is one InputError naming both places and the source."""
    for path in candidates(root):
        if path.is_file():
            return path
    looked = " and ".join(str(p) for p in candidates(root))
    raise InputError(
        f"RetinaMNIST not found: no {looked}; {WHERE_TO_GET}, and point --data-root or KDEDGE_DATA at its folder"
    )


def file_md5(path: Path) -> str:
    """md5 hex digest of a file (3.3 MB: a few milliseconds, so no cache is kept)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_md5(path: Path) -> None:
    """Refuse any file but the official one: a truncated or edited file would silently change results."""
    found = file_md5(path)
    if found != MD5:
        raise InputError(
            f"{path}: md5 {found} is not the official RetinaMNIST md5 {MD5} (truncated, "
            f"edited or another file); {WHERE_TO_GET}"
        )


def read_arrays(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (images (N, 28, 28, 3) uint8, labels (N,) int64)}; plain arrays only (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {s: (npz[f"{s}_images"], npz[f"{s}_labels"].reshape(-1).astype(np.int64)) for s in SPLITS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: not a readable RetinaMNIST npz ({type(err).__name__}: {err})") from None
    for split, (images, labels) in arrays.items():
        if images.ndim != 4 or images.shape[3] != 3 or len(images) != len(labels) or images.dtype != np.uint8:
            raise InputError(
                f"{path}: {split}_images has shape {images.shape} {images.dtype}; expected "
                f"(N, H, W, 3) uint8 with N = len({split}_labels) = {len(labels)}"
            )
    return arrays


def split_of(name: str, images: np.ndarray, labels: np.ndarray) -> Split:
    """(N, H, W, 3) uint8 + (N,) -> Split of (N, 3, H, W) uint8 with ids 'train/0000' ... (file order)."""
    chw = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return Split(chw, torch.from_numpy(labels), tuple(f"{name}/{i:04d}" for i in range(len(labels))))


def load_retinamnist(root: Path, may_download: bool) -> DataBundle:
    """The official RetinaMNIST 28x28 file with its official train/val/test split (1,080 / 120 / 400).
    Never downloads (may_download is ignored): a missing or non-official file is an InputError."""
    path = find_file(root)
    check_md5(path)
    arrays = read_arrays(path)
    train, val, test = (split_of(s, *arrays[s]) for s in SPLITS)
    return DataBundle("retinamnist", train, test, CLASS_NAMES, MEAN, STD, val)


SOURCE = DataSource(load_retinamnist)
