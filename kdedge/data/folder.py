"""data.name: folder: PATH/<class>/<image> (kdedge splits it: seeded, stratified) or
PATH/train|val|test/<class>/<image> (the user's split; val optional). Class names: the sorted folder names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdedge.data.images import (
    IMAGE_SUFFIXES,
    SPLITS,
    ImageSetOptions,
    Listing,
    build_bundle,
    is_image_name,
    source_path,
)
from kdedge.data.types import DataBundle, DataSource
from kdedge.errors import InputError

IGNORED_FILES = ("thumbs.db", "desktop.ini")  # with dot files: what file managers leave in folders

__all__ = ["ImageSetOptions", "list_folder", "load_folder"]


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
            raise InputError(
                f"{path}: not an image file (allowed: {', '.join(IMAGE_SUFFIXES)}); remove it or pass --skip-bad-images"
            )
    return files


def _classes_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"data.path: {folder} is not a folder (expected PATH/<class>/<image>)")
    loose = [p for p in folder.iterdir() if p.is_file() and is_image_name(p)]
    if loose:
        raise InputError(
            f"{loose[0]}: image directly in {folder} (and {len(loose) - 1} more); put each "
            f"image in {folder}/<class name>/"
        )
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_folder(root: Path, skip_bad: bool = False) -> Listing:
    """PATH/<class>/<image> or PATH/train|val|test/<class>/<image> -> a Listing (class names sorted)."""
    parts = {name: root / name for name in SPLITS if (root / name).is_dir()}
    user_split = "train" in parts and "test" in parts
    tops = parts if user_split else {"all": root}
    bad: list[tuple[str, str]] = []
    classes = [p.name for p in _classes_in(tops.get("train", root))]
    if not classes:
        raise InputError(
            f"data.path: {root} has no class folders (expected {root}/<class>/<image> or {root}/train/<class>/<image>)"
        )
    if len(classes) < 2:
        raise InputError(f"data.path: {root} has only one class ('{classes[0]}'); a classifier needs >= 2")
    paths, ids, labels, bounds = [], [], [], {}
    for split, top in tops.items():
        start = len(paths)
        for folder in _classes_in(top):
            if folder.name not in classes:
                raise InputError(
                    f"{folder}: class '{folder.name}' is not in the class list of "
                    f"{tops.get('train', root)} ({', '.join(classes)})"
                )
            files = _class_files(folder, skip_bad, bad)
            if not files and split in ("train", "all"):
                raise InputError(f"{folder}: class folder has no images ({', '.join(IMAGE_SUFFIXES)})")
            paths += files
            ids += [f.relative_to(root).as_posix() for f in files]
            labels += [classes.index(folder.name)] * len(files)
        bounds[split] = (start, len(paths))
    return Listing(paths, ids, np.asarray(labels, dtype=np.int64), tuple(classes), bounds if user_split else None, bad)


def load_folder(image_size: int | None, opts: ImageSetOptions) -> DataBundle:
    """data.name: folder (see the module docstring)."""
    root = source_path(opts, "folder", is_csv=False)
    return build_bundle("folder", list_folder(root, opts.skip_bad_images), opts, image_size, root)


SOURCE = DataSource(load_folder, options=ImageSetOptions, takes_path=True)
