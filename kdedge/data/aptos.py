"""APTOS 2019 Blindness Detection (Kaggle): 5 grades of diabetic retinopathy from colour fundus photos.

Layout, as Kaggle's zip unpacks (`kaggle competitions download -c aptos2019-blindness-detection`):

    ROOT/aptos2019-blindness-detection/train.csv             id_code,diagnosis (0..4)
    ROOT/aptos2019-blindness-detection/train_images/<id>.png

(ROOT itself may also be that folder.) A thin use of the csv source's machinery (kdedge.data.images):
train.csv is checked row by row, split by the same seeded stratified rule into train / val / test, and
decoded once into the shared memory-mapped cache (kdedge.data.imagecache) with the `retina_crop`
pre-processing: crop the black border around the retina, pad square, resize to S x S. Normalisation is
the models' ImageNet mean/std, applied per batch by the training loop like every other data set.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from kdedge.data import images
from kdedge.data.types import DataBundle, DataSource
from kdedge.errors import InputError
from kdedge.runtime.imaging import Decode, transform

FOLDER = "aptos2019-blindness-detection"
CLASS_NAMES = ("no_dr", "mild", "moderate", "severe", "proliferative")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_SIZE = 224


def find_folder(root: Path) -> Path:
    """ROOT/aptos2019-blindness-detection, or ROOT itself when it holds train.csv."""
    for folder in (root / FOLDER, root):
        if (folder / "train.csv").is_file():
            return folder
    raise InputError(
        f"APTOS 2019 not found: no {root / FOLDER / 'train.csv'} (nor {root / 'train.csv'}); "
        f"download it from Kaggle (kaggle competitions download -c {FOLDER}), unzip it into "
        f"{root / FOLDER} and point --data-root or KDEDGE_DATA at {root}"
    )


def read_labels(csv_path: Path) -> tuple[list[str], np.ndarray]:
    """train.csv -> (id codes, grades (N,) int64); a bad row is one InputError naming the row."""
    try:
        with csv_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{csv_path}: cannot read ({err})") from None
    if not rows or not {"id_code", "diagnosis"} <= set(rows[0]):
        raise InputError(f"{csv_path}: expected a header 'id_code,diagnosis' and at least one row")
    ids, grades, seen = [], [], set()
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        id_code, grade = (row["id_code"] or "").strip(), (row["diagnosis"] or "").strip()
        if not id_code or "/" in id_code or id_code in seen:
            why = "duplicate" if id_code in seen else "empty or invalid"
            raise InputError(f"{csv_path} line {line}: {why} id_code '{id_code}'")
        if grade not in {str(g) for g in range(len(CLASS_NAMES))}:
            raise InputError(
                f"{csv_path} line {line} (id_code {id_code}): diagnosis '{grade}' is not one of "
                f"0..{len(CLASS_NAMES) - 1}"
            )
        seen.add(id_code)
        ids.append(id_code)
        grades.append(int(grade))
    return ids, np.asarray(grades, dtype=np.int64)


def image_paths(folder: Path, ids: list[str]) -> list[Path]:
    """train_images/<id>.png for every id; any absent file is an InputError naming the first one."""
    paths = [folder / "train_images" / f"{id_code}.png" for id_code in ids]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(f"{missing[0]}: image listed in train.csv is missing{more}")
    return paths


def crop_retina(image: Image.Image, size: int) -> np.ndarray:
    """PIL image of any size/mode -> (3, size, size) uint8: black border cropped, padded square, resized."""
    return transform(image, Decode(size, 3, "retina_crop"))


class AptosOptions(images.ImageSetOptions):
    """The data.* keys APTOS reads (split, cache_dir, skip_bad_images); channels (3), pre-processing
    (retina_crop) and normalisation (ImageNet) are fixed."""

    in_channels: None = None
    resize: str = "retina_crop"
    mean: None = None
    std: None = None


def load_aptos(
    root: Path, may_download: bool, image_size: int | None = None, options: AptosOptions | None = None
) -> DataBundle:
    """APTOS 2019 train.csv split into train/val/test (options.split: {seed, val, test} fractions, default
    0 / 0.1 / 0.2), images pre-processed to image_size (default 224). Kaggle data cannot be downloaded
    without the user's account, so may_download changes nothing."""
    opts = (options or AptosOptions()).model_copy(update={"in_channels": 3, "resize": "retina_crop"})
    folder = find_folder(root)
    ids, labels = read_labels(folder / "train.csv")
    listing = images.Listing(image_paths(folder, ids), ids, labels, CLASS_NAMES)
    return images.build_bundle(
        "aptos", listing, opts, image_size or DEFAULT_SIZE, folder, norm=(IMAGENET_MEAN, IMAGENET_STD)
    )


SOURCE = DataSource(load_aptos, options=AptosOptions)
