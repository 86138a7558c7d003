"""The user's own images: `data.name: folder` (ImageFolder layout) and `data.name: csv` (image, label).

    folder:  PATH/<class>/<image>                  -> a seeded stratified train/val/test split
             PATH/train|val|test/<class>/<image>   -> the user's split (val optional)
    csv:     a CSV with an image column (paths relative to the CSV's folder, or absolute) and a label
             column (class names or integers); default: the first two columns

Class names are sorted folder names (or label values). Images go through kdedge.imagecache: decoded
once, converted to `in_channels`, resized to data.image_size, memory-mapped. Each split is a contiguous
slice of that map (rows are written train, val, test), so training never copies the whole set.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kdedge import imagecache
from kdedge.errors import InputError

if TYPE_CHECKING:  # kdedge.data registers these sources: imported at call time, not at import
    from kdedge.data import DataBundle

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm")
IGNORED_FILES = ("thumbs.db", "desktop.ini")  # with dot files: what file managers leave in folders
SPLITS = ("train", "val", "test")
DEFAULT_SIZE = 224
DEFAULT_RESIZE = {"folder": "center_crop", "csv": "center_crop", "aptos": "retina_crop"}  # data.resize unset


class SplitRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = 0
    val: Annotated[float, Field(ge=0, lt=1)] = 0.1
    test: Annotated[float, Field(gt=0, lt=1)] = 0.2


class ImageSetOptions(BaseModel):
    """data.* keys a file-based source reads (typed; anything else is refused by name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str | None = None
    in_channels: Literal[1, 3] | None = None  # None: inferred (all gray -> 1, all colour -> 3, mixed: error)
    resize: Literal["center_crop", "squash", "pad", "retina_crop"] = DEFAULT_RESIZE["folder"]
    mean: list[float] | None = None
    std: list[float] | None = None
    split: SplitRule | None = None
    cache_dir: str | None = None
    skip_bad_images: bool = False
    run_dir: str | None = None  # where the cache falls back to when cache_dir is not writable
    data_root: str | None = None  # --data-root: replaces data.path (a run's data moved)


class CsvOptions(ImageSetOptions):
    image_column: str | None = None
    label_column: str | None = None
    class_names: list[str] | None = None


def parse_options(model: type[ImageSetOptions], source: str, options: dict) -> ImageSetOptions:
    """dict -> typed options; an unknown key or bad value is one InputError naming data.<key>."""
    try:
        return model.model_validate(options)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            raise InputError(f"data.{key}: not used by data set '{source}'") from None
        raise InputError(f"data.{key}: {first['msg']} (got {first.get('input')!r})") from None


@dataclass
class Listing:
    """Files and labels in split order. paths/ids/labels: (N,); bounds: {split: (start, stop)} rows when
    the user split the data, else None (kdedge splits it); bad: files skipped before decoding."""

    paths: list[Path]
    ids: list[str]
    labels: np.ndarray
    class_names: tuple[str, ...]
    bounds: dict[str, tuple[int, int]] | None = None
    bad: list[tuple[str, str]] | None = None


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _class_files(folder: Path, skip_bad: bool, bad: list) -> list[Path]:
    """Image files of one class folder (recursively); a non-image file is an error unless skip_bad."""
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name.startswith(".") or path.name.lower() in IGNORED_FILES:
            continue
        if is_image_name(path):
            files.append(path)
        elif skip_bad:
            bad.append((str(path), f"{path}: not an image file"))
        else:
            raise InputError(f"{path}: not an image file (allowed: {', '.join(IMAGE_SUFFIXES)}); remove "
                             "it or pass --skip-bad-images")  # fmt: skip
    return files


def _classes_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"data.path: {folder} is not a folder (expected PATH/<class>/<image>)")
    loose = [p for p in folder.iterdir() if p.is_file() and is_image_name(p)]
    if loose:
        raise InputError(f"{loose[0]}: image directly in {folder} (and {len(loose) - 1} more); put each "
                         f"image in {folder}/<class name>/")  # fmt: skip
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_folder(root: Path, skip_bad: bool = False) -> Listing:
    """PATH/<class>/<image> or PATH/train|val|test/<class>/<image> -> a Listing (class names sorted)."""
    parts = {name: root / name for name in SPLITS if (root / name).is_dir()}
    user_split = "train" in parts and "test" in parts
    tops = parts if user_split else {"all": root}
    bad: list[tuple[str, str]] = []
    classes = [p.name for p in _classes_in(tops.get("train", root))]
    if not classes:
        raise InputError(f"data.path: {root} has no class folders (expected {root}/<class>/<image> or "
                         f"{root}/train/<class>/<image>)")  # fmt: skip
    if len(classes) < 2:
        raise InputError(f"data.path: {root} has only one class ('{classes[0]}'); a classifier needs >= 2")
    paths, ids, labels, bounds = [], [], [], {}
    for split, top in tops.items():
        start = len(paths)
        for folder in _classes_in(top):
            if folder.name not in classes:
                raise InputError(f"{folder}: class '{folder.name}' is not in the class list of "
                                 f"{tops.get('train', root)} ({', '.join(classes)})")  # fmt: skip
            files = _class_files(folder, skip_bad, bad)
            if not files and split in ("train", "all"):
                raise InputError(f"{folder}: class folder has no images ({', '.join(IMAGE_SUFFIXES)})")
            paths += files
            ids += [f.relative_to(root).as_posix() for f in files]
            labels += [classes.index(folder.name)] * len(files)
        bounds[split] = (start, len(paths))
    return Listing(paths, ids, np.asarray(labels, dtype=np.int64), tuple(classes),
                   bounds if user_split else None, bad)  # fmt: skip


def _read_rows(csv_path: Path) -> list[dict[str, str]]:
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{csv_path}: cannot read ({err})") from None
    if not rows or len(rows[0]) < 2:
        raise InputError(f"{csv_path}: expected a header with an image and a label column, and >= 1 row")
    return rows


def _label_index(values: list[str], given: list[str] | None, csv_path: Path) -> tuple[list[int], tuple]:
    """Labels as names (sorted, or data.class_names' order) or integers (0..max) -> (indices, names)."""
    names = given
    if names is None:
        if all(v.lstrip("-").isdigit() for v in values):
            top = max(int(v) for v in values)
            names = [str(i) for i in range(top + 1)]
        else:
            names = sorted(set(values))
    lookup = {name: i for i, name in enumerate(names)} | {str(i): i for i in range(len(names))}
    for line, value in enumerate(values, start=2):
        if value not in lookup:
            raise InputError(f"{csv_path} line {line}: label '{value}' is not in the class list "
                             f"({', '.join(names[:10])}{' ...' if len(names) > 10 else ''})")  # fmt: skip
    if len(names) < 2:
        raise InputError(f"{csv_path}: only one class ('{names[0]}'); a classifier needs >= 2")
    return [lookup[v] for v in values], tuple(names)


def list_csv(csv_path: Path, opts: CsvOptions) -> Listing:
    """The CSV's (image, label) rows -> a Listing; a missing file is named with how many others are."""
    if not csv_path.is_file():
        raise InputError(f"data.path: CSV file {csv_path} not found")
    rows = _read_rows(csv_path)
    columns = list(rows[0])
    image_col, label_col = opts.image_column or columns[0], opts.label_column or columns[1]
    for key, column in (("image_column", image_col), ("label_column", label_col)):
        if column not in columns:
            raise InputError(f"{csv_path}: no column '{column}' (data.{key}); columns: {', '.join(columns)}")
    ids = [(row[image_col] or "").strip() for row in rows]
    labels, names = _label_index([(row[label_col] or "").strip() for row in rows], opts.class_names, csv_path)
    paths = [Path(i) if Path(i).is_absolute() else csv_path.parent / i for i in ids]
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    bad = [(str(paths[i]), f"{paths[i]}: listed in {csv_path.name} line {i + 2} does not exist")
           for i in missing]  # fmt: skip
    if missing and not opts.skip_bad_images:
        more = f" (and {len(missing) - 1} other listed files)" if len(missing) > 1 else ""
        raise InputError(f"{bad[0][1]}{more}; fix the paths or pass --skip-bad-images")
    keep = sorted(set(range(len(paths))) - set(missing))
    return Listing([paths[i] for i in keep], [ids[i] for i in keep],
                   np.asarray([labels[i] for i in keep], dtype=np.int64), names, None, bad)  # fmt: skip


def stratified_split(ids: list[str], labels: np.ndarray, num_classes: int,
                     rule: SplitRule) -> dict[str, np.ndarray]:  # fmt: skip
    """Indices per split: within each class, ids sorted then shuffled by rule.seed; the first
    round(n * test) go to test, the next round(n * val) to val. Depends only on the (id, label) set."""
    rng = np.random.default_rng(rule.seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    by_id = np.argsort(np.asarray(ids))
    for label in range(num_classes):
        members = rng.permutation(by_id[labels[by_id] == label])
        n_test, n_val = int(len(members) * rule.test + 0.5), int(len(members) * rule.val + 0.5)
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def resolve_cache_dir(cache_dir: str | None) -> Path:
    """data.cache_dir, else $KDEDGE_CACHE, else ~/.cache/kdedge; never the (often read-only) data folder."""
    import os

    chosen = cache_dir or os.environ.get("KDEDGE_CACHE")
    return Path(chosen).expanduser() if chosen else imagecache.DEFAULT_CACHE / "images"


def _split_order(listing: Listing, rule: SplitRule | None) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """Row order (train, val, test; each sorted by id) and each split's (start, stop) in it."""
    if listing.bounds is not None:
        if rule is not None:
            raise InputError("data.split: the folder has its own train/test folders; remove data.split")
        return np.arange(len(listing.paths)), {s: listing.bounds.get(s, (0, 0)) for s in SPLITS}
    index = stratified_split(listing.ids, listing.labels, len(listing.class_names), rule or SplitRule())
    order, bounds = [], {}
    for name in SPLITS:
        chosen = sorted(index[name].tolist(), key=lambda i: listing.ids[i])
        bounds[name] = (len(order), len(order) + len(chosen))
        order += chosen
    return np.asarray(order, dtype=np.int64), bounds


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean / std on the 0..1 scale of (N, C, H, W) uint8, in chunks (bounded memory)."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares, count = torch.zeros_like(total), 0
    for chunk in images.split(512):
        values = chunk.to(torch.float64).div_(255.0).transpose(0, 1).reshape(images.shape[1], -1)
        total += values.sum(1)
        squares += values.square().sum(1)
        count += values.shape[1]
    mean = total / max(count, 1)
    std = (squares / max(count, 1) - mean.square()).clamp_min(1e-12).sqrt()
    return tuple(round(float(v), 4) for v in mean), tuple(round(max(float(v), 1e-3), 4) for v in std)


def build_bundle(name: str, listing: Listing, opts: ImageSetOptions, image_size: int | None, source: Path,
                 norm: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> DataBundle:  # fmt: skip
    """Decode (or reuse) the cache of `listing` and cut it into train / val / test views."""
    from kdedge.data import DataBundle, Split

    order, bounds = _split_order(listing, opts.split)
    if bounds["train"][0] == bounds["train"][1] or bounds["test"][0] == bounds["test"][1]:
        raise InputError(f"data: the split of {len(order)} images of {source} leaves train or test empty; "
                         "add images or change data.split")  # fmt: skip
    paths = [listing.paths[i] for i in order]
    fallback = Path(opts.run_dir) / "cache" if opts.run_dir else None
    what = "APTOS data cache" if name == "aptos" else "image cache"
    folder = imagecache.usable_cache_dir(resolve_cache_dir(opts.cache_dir), fallback, what)
    memo = imagecache.channels_memo(folder, name, source, paths)
    channels = opts.in_channels or imagecache.infer_channels(paths, memo)
    spec = imagecache.Decode(image_size or DEFAULT_SIZE, channels, opts.resize)
    cached = imagecache.load_cached(paths, spec, folder, tag=name, source=source,
                                    skip_bad=opts.skip_bad_images)  # fmt: skip
    images = torch.from_numpy(cached.images)  # a memory map: rows are read from disk when a batch needs them
    kept_rows = np.zeros(len(order), dtype=bool)
    kept_rows[cached.kept] = True
    rows = np.cumsum(np.concatenate([[0], kept_rows]))  # rows[i]: kept rows before position i
    labels = torch.from_numpy(listing.labels[order][cached.kept])
    ids = [listing.ids[i] for i in order[cached.kept]]
    splits = {}
    for split, (start, stop) in bounds.items():
        a, b = int(rows[start]), int(rows[stop])
        splits[split] = Split(images[a:b], labels[a:b], tuple(ids[a:b])) if b > a else None
    if splits["train"] is None or splits["test"] is None:
        raise InputError(f"data: every image of the train or test split of {source} was unreadable")
    given = (opts.mean, opts.std) if opts.mean and opts.std else norm  # else measured on the training split
    mean, std = given or channel_stats(splits["train"].images)
    if len(mean) != channels or len(std) != channels:
        raise InputError(f"data.mean / data.std: need {channels} values each (in_channels {channels})")
    skipped = tuple((listing.bad or []) + cached.bad)
    return DataBundle(name, splits["train"], splits["test"], listing.class_names, tuple(mean), tuple(std),
                      splits["val"], root=str(source), skipped=skipped)  # fmt: skip


def source_path(opts: ImageSetOptions, source: str, is_csv: bool) -> Path:
    """data.path, or --data-root in its place (for a CSV: the same file name inside that folder)."""
    if opts.data_root:
        chosen = Path(opts.data_root).expanduser()
        if is_csv and chosen.is_dir() and opts.path:
            chosen = chosen / Path(opts.path).name
        return chosen.resolve()
    if not opts.path:
        kind = "CSV file" if is_csv else "folder of class folders"
        raise InputError(f"data.path: data set '{source}' needs data.path (a {kind})")
    return Path(opts.path).expanduser().resolve()


def load_folder(image_size: int | None = None, **options) -> DataBundle:
    """data.name: folder: see the module docstring."""
    opts = parse_options(ImageSetOptions, "folder", options)
    root = source_path(opts, "folder", is_csv=False)
    return build_bundle("folder", list_folder(root, opts.skip_bad_images), opts, image_size, root)


def load_csv(image_size: int | None = None, **options) -> DataBundle:
    """data.name: csv: see the module docstring."""
    opts = parse_options(CsvOptions, "csv", options)
    csv_path = source_path(opts, "csv", is_csv=True)
    return build_bundle("csv", list_csv(csv_path, opts), opts, image_size, csv_path)
