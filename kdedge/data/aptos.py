"""APTOS 2019 Blindness Detection (Kaggle): 5 grades of diabetic retinopathy from colour fundus photos.

Layout, as Kaggle's zip unpacks (`kaggle competitions download -c aptos2019-blindness-detection`):

    ROOT/aptos2019-blindness-detection/train.csv             id_code,diagnosis (0..4)
    ROOT/aptos2019-blindness-detection/train_images/<id>.png

(ROOT itself may also be that folder.) Only train.csv is labelled, so a seeded stratified rule splits it
into train / val / test. Pre-processing, done once per (version, size, file list + mtimes) and cached on
disk as one uint8 .npy of (N, 3, S, S): crop the black border around the retina (gray-level threshold),
pad to a square with black so the retina stays round, resize to S x S. Normalisation is the models'
ImageNet mean/std, applied per batch by the training loop like every other data set.
"""

from __future__ import annotations

import csv
import hashlib
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict

from kdedge.console import warn
from kdedge.data.types import DEFAULT_CACHE, DataBundle, Split
from kdedge.errors import InputError
from kdedge.fsguard import DiskFull, NotWritable, check_writable, disk_full_as_error

FOLDER = "aptos2019-blindness-detection"
CLASS_NAMES = ("no_dr", "mild", "moderate", "severe", "proliferative")
PREPROCESS_VERSION = 1  # bump whenever crop_retina's output changes: old cache files stop matching
BLACK_LEVEL = 10  # gray level <= this is border (Kaggle photos have JPEG-ish noise of a few levels there)
MIN_BRIGHT_FRACTION = 0.01  # a row/column belongs to the retina when >= 1% of it is brighter than that
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_SIZE = 224
PARALLEL_FROM = 64  # below this many images a process pool costs more than it saves


def find_folder(root: Path) -> Path:
    """ROOT/aptos2019-blindness-detection, or ROOT itself when it holds train.csv."""
    for folder in (root / FOLDER, root):
        if (folder / "train.csv").is_file():
            return folder
    raise InputError(f"APTOS 2019 not found: no {root / FOLDER / 'train.csv'} (nor {root / 'train.csv'}); "
                     f"download it from Kaggle (kaggle competitions download -c {FOLDER}), unzip it into "
                     f"{root / FOLDER} and point --data-root or KDEDGE_DATA at {root}")  # fmt: skip


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
            raise InputError(f"{csv_path} line {line} (id_code {id_code}): diagnosis '{grade}' is not one of "
                             f"0..{len(CLASS_NAMES) - 1}")  # fmt: skip
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
    rgb = image.convert("RGB")
    gray = rgb.convert("L")
    factor = max(1, max(gray.size) // 512)  # find the border on a reduced copy: same box, 10-100x faster
    bright = np.asarray(gray.reduce(factor) if factor > 1 else gray) > BLACK_LEVEL
    rows = np.flatnonzero(bright.mean(1) >= MIN_BRIGHT_FRACTION)
    cols = np.flatnonzero(bright.mean(0) >= MIN_BRIGHT_FRACTION)
    if len(rows) and len(cols):  # an all-black image keeps its full frame
        width, height = rgb.size
        box = (cols[0] * factor, rows[0] * factor,
               min((cols[-1] + 1) * factor, width), min((rows[-1] + 1) * factor, height))  # fmt: skip
        rgb = rgb.crop(box)
    side = max(rgb.size)
    square = Image.new("RGB", (side, side))  # photos often cut the disc top and bottom: pad, don't stretch
    square.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
    resized = square.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(resized).transpose(2, 0, 1).copy()


def _preprocess_file(job: tuple[Path, int]) -> np.ndarray | str:
    """One file -> (3, S, S) uint8, or the one-line reason it could not be read (runs in a worker)."""
    path, size = job
    try:
        with Image.open(path) as image:
            return crop_retina(image, size)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        return f"{path}: not a readable PNG image ({type(err).__name__}: {str(err).splitlines()[0][:100]})"


def cache_key(paths: list[Path], size: int) -> str:
    """Hash of everything the cached pixels depend on: pre-processing version and constants, size, and
    each file's name, byte size and mtime (a replaced or edited image changes the key)."""
    digest = hashlib.sha256(f"v{PREPROCESS_VERSION}|{BLACK_LEVEL}|{MIN_BRIGHT_FRACTION}|{size}".encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"|{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def cache_file(cache_dir: Path, folder: Path, paths: list[Path], size: int) -> Path:
    """<cache>/aptos-<data folder hash>-<size>px-<key>.npy; the folder hash lets stale files be pruned."""
    where = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]
    return cache_dir / f"aptos-{where}-{size}px-{cache_key(paths, size)}.npy"


def preprocess_all(paths: list[Path], size: int) -> np.ndarray:
    """(N, 3, size, size) uint8 for all files, decoded in parallel processes when there are many."""
    from kdedge.console import console, make_progress

    jobs = [(path, size) for path in paths]
    workers = min(os.cpu_count() or 1, 8) if len(paths) >= PARALLEL_FROM else 1
    images = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    console.print(f"APTOS: pre-processing {len(paths)} images to {size}x{size} (once; cached on disk)")
    with make_progress(quiet=len(paths) < PARALLEL_FROM) as progress:
        task = progress.add_task("APTOS crop + resize", total=len(paths))
        pool = ProcessPoolExecutor(workers) if workers > 1 else _Serial()
        try:
            for index, result in enumerate(pool.map(_preprocess_file, jobs, chunksize=8)):
                if isinstance(result, str):
                    raise InputError(result)
                images[index] = result
                progress.advance(task)
        finally:
            pool.shutdown(cancel_futures=True)  # a bad file stops the run now, not after decoding the rest
    return images


class _Serial:
    """The executor interface without processes, for small sets (and tests)."""

    def map(self, fn, jobs, chunksize: int = 1):
        return map(fn, jobs)

    def shutdown(self, cancel_futures: bool = False) -> None:
        return None


def load_images(folder: Path, paths: list[Path], size: int, cache_dir: Path) -> np.ndarray:
    """The cached (N, 3, size, size) uint8 array, built first when the key changed; writes are atomic."""
    target = cache_file(cache_dir, folder, paths, size)
    if target.is_file():
        try:
            cached = np.load(target, allow_pickle=False)
            if cached.shape == (len(paths), 3, size, size) and cached.dtype == np.uint8:
                return cached
        except (OSError, ValueError):
            pass  # unreadable cache file (disk trouble, foreign file): rebuild it
    try:  # checked before the minutes of decoding, so the fallback is said up front
        check_writable(cache_dir, "APTOS data cache")
    except NotWritable as err:
        warn(f"{err}; pre-processing in memory for this run only (data.cache_dir or $KDEDGE_CACHE: a "
             "writable folder keeps the result)")  # fmt: skip
        return preprocess_all(paths, size)
    images = preprocess_all(paths, size)
    try:
        _save_cache(cache_dir, target, images)
    except DiskFull as err:  # only a cache: this run goes on with the images in memory
        warn(f"{err}; the pre-processed images were not cached")
    return images


def _save_cache(cache_dir: Path, target: Path, images: np.ndarray) -> None:
    """Write `images` to `target` atomically; older files of the same data folder and size are pruned."""
    with disk_full_as_error(target, images.nbytes + 4096):
        cache_dir.mkdir(parents=True, exist_ok=True)
        for stale in cache_dir.glob(target.name.rsplit("-", 1)[0] + "-*.npy"):
            stale.unlink(missing_ok=True)  # same data folder and size, older file list: never read again
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=cache_dir)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, images, allow_pickle=False)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)


def stratified_split(ids: list[str], labels: np.ndarray, seed: int, val: float,
                     test: float) -> dict[str, np.ndarray]:  # fmt: skip
    """Indices per split: within each grade, ids sorted then shuffled by `seed`; the first round(n*test)
    go to test, the next round(n*val) to val. Depends only on the (id, grade) set, not the CSV order."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    by_id = np.argsort(np.asarray(ids))
    for grade in range(len(CLASS_NAMES)):
        members = rng.permutation(by_id[labels[by_id] == grade])
        n_test, n_val = int(len(members) * test + 0.5), int(len(members) * val + 0.5)
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def resolve_cache_dir(cache_dir: str | None) -> Path:
    """data.cache_dir, else $KDEDGE_CACHE, else ~/.cache/kdedge; never the (often read-only) data folder."""
    chosen = cache_dir or os.environ.get("KDEDGE_CACHE")
    return Path(chosen).expanduser() if chosen else DEFAULT_CACHE / "aptos"


class SplitRule(BaseModel):
    """data.split: fractions of train.csv per grade that go to val and test (the recipe checks ranges)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = 0
    val: float = 0.1
    test: float = 0.2


class AptosOptions(BaseModel):
    """The recipe's data.* keys APTOS reads: its split rule and where pre-processed images are cached."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    split: SplitRule = SplitRule()
    cache_dir: str | None = None


def load_aptos(root: Path, may_download: bool, image_size: int | None = None,
               options: AptosOptions | None = None) -> DataBundle:  # fmt: skip
    """APTOS 2019 train.csv split into train/val/test (options.split: {seed, val, test} fractions, default
    0 / 0.1 / 0.2), images pre-processed to image_size (default 224). Kaggle data cannot be downloaded
    without the user's account, so may_download changes nothing."""
    options = options or AptosOptions()
    folder = find_folder(root)
    ids, labels = read_labels(folder / "train.csv")
    size = image_size or DEFAULT_SIZE
    paths = image_paths(folder, ids)
    images = torch.from_numpy(load_images(folder, paths, size, resolve_cache_dir(options.cache_dir)))
    rule = options.split
    index = stratified_split(ids, labels, rule.seed, rule.val, rule.test)
    if len(index["test"]) == 0 or len(index["train"]) == 0:
        raise InputError(f"data.split {rule.model_dump()} leaves the train or test split of {len(ids)} "
                         "images empty")  # fmt: skip
    labels_t = torch.from_numpy(labels)

    def part(name: str) -> Split:
        chosen = torch.from_numpy(index[name])
        return Split(images[chosen], labels_t[chosen], tuple(ids[i] for i in index[name]))

    val = part("val") if len(index["val"]) else None
    return DataBundle("aptos", part("train"), part("test"), CLASS_NAMES, IMAGENET_MEAN, IMAGENET_STD, val)
