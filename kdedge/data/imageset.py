"""What the file-based sources share (folder, csv, APTOS), without torch: typed data.* options, the file
listing, the seeded stratified split (or the data's own), the set decoded into the image cache
(kdedge.data.imagecache) and per-channel statistics. `kdedge init` runs on this alone and so starts at once;
kdedge.data.images turns a decoded set into the training DataBundle.

Rows of the cache are written train, then val, then test, so each split is a contiguous slice of the
memory map (a view, never a copy): training never holds the whole set in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kdedge.data import imagecache
from kdedge.errors import InputError
from kdedge.runtime.imaging import Decode

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm")
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
    own_split: str = "the folder has its own train/test folders"  # where bounds come from, said in errors


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def stratified_split(ids: list[str], labels: np.ndarray, num_classes: int, rule: SplitRule) -> dict[str, np.ndarray]:
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
    chosen = cache_dir or os.environ.get("KDEDGE_CACHE")
    return Path(chosen).expanduser() if chosen else imagecache.DEFAULT_CACHE / "images"


def split_order(listing: Listing, rule: SplitRule | None) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """Row order (train, val, test; each sorted by id) and each split's (start, stop) in it."""
    if listing.bounds is not None:
        if rule is not None:
            raise InputError(f"data.split: {listing.own_split}; remove data.split")
        return np.arange(len(listing.paths)), {s: listing.bounds.get(s, (0, 0)) for s in SPLITS}
    index = stratified_split(listing.ids, listing.labels, len(listing.class_names), rule or SplitRule())
    order, bounds = [], {}
    for name in SPLITS:
        chosen = sorted(index[name].tolist(), key=lambda i: listing.ids[i])
        bounds[name] = (len(order), len(order) + len(chosen))
        order += chosen
    return np.asarray(order, dtype=np.int64), bounds


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean / std on the 0..1 scale of (N, C, H, W) uint8, in chunks (bounded memory)."""
    channels = images.shape[1]
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    for start in range(0, len(images), 512):
        values = np.asarray(images[start : start + 512], dtype=np.float64) / 255.0
        values = values.transpose(1, 0, 2, 3).reshape(channels, -1)
        total += values.sum(1)
        squares += np.square(values).sum(1)
        count += values.shape[1]
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(squares / max(count, 1) - np.square(mean), 1e-12))
    return tuple(round(float(v), 4) for v in mean), tuple(round(max(float(v), 1e-3), 4) for v in std)


@dataclass(frozen=True)
class DecodedSet:
    """A file-based data set decoded into the image cache, in split order. images: (N, C, S, S) uint8 (a
    memory map); labels: (N,) int64; ids: (N,) file ids; rows: {split: (start, stop)}; skipped: (file,
    reason) of the files left out."""

    images: np.ndarray
    labels: np.ndarray
    ids: list[str]
    rows: dict[str, tuple[int, int]]
    class_names: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]] | None:
        """(images, labels, ids) of one split, views of the cache; None when it is empty."""
        start, stop = self.rows[name]
        return (self.images[start:stop], self.labels[start:stop], tuple(self.ids[start:stop])) if stop > start else None

    def class_counts(self) -> dict[str, list[int]]:
        """split -> images per class (in class order)."""
        return {
            name: np.bincount(self.labels[start:stop], minlength=len(self.class_names)).tolist()
            for name, (start, stop) in self.rows.items()
        }


def decode_set(name: str, listing: Listing, opts: ImageSetOptions, image_size: int | None, source: Path) -> DecodedSet:
    """Decode (or reuse) the cache of `listing` in split order; a split that leaves train or test empty is
    one InputError."""
    order, bounds = split_order(listing, opts.split)
    if bounds["train"][0] == bounds["train"][1] or bounds["test"][0] == bounds["test"][1]:
        raise InputError(
            f"data: the split of {len(order)} images of {source} leaves train or test empty; "
            "add images or change data.split"
        )
    paths = [listing.paths[i] for i in order]
    fallback = Path(opts.run_dir) / "cache" if opts.run_dir else None
    what = "APTOS data cache" if name == "aptos" else "image cache"
    folder = imagecache.usable_cache_dir(resolve_cache_dir(opts.cache_dir), fallback, what)
    memo = imagecache.channels_memo(folder, name, source, paths)
    channels = opts.in_channels or imagecache.infer_channels(paths, memo)
    spec = Decode(image_size or DEFAULT_SIZE, channels, opts.resize)
    cached = imagecache.load_cached(paths, spec, folder, tag=name, source=source, skip_bad=opts.skip_bad_images)
    kept_rows = np.zeros(len(order), dtype=bool)
    kept_rows[cached.kept] = True
    before = np.cumsum(np.concatenate([[0], kept_rows]))  # before[i]: kept rows before position i
    rows = {split: (int(before[start]), int(before[stop])) for split, (start, stop) in bounds.items()}
    if rows["train"][0] == rows["train"][1] or rows["test"][0] == rows["test"][1]:
        raise InputError(f"data: every image of the train or test split of {source} was unreadable")
    labels = listing.labels[order][cached.kept]
    ids = [listing.ids[i] for i in order[cached.kept]]
    skipped = tuple((listing.bad or []) + cached.bad)
    return DecodedSet(cached.images, labels, ids, rows, listing.class_names, skipped)


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
