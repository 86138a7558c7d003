"""The file lists of your own images, without torch (`kdedge init` reads them too):

- data.name: folder: PATH/<class>/<image> (kdedge splits it: seeded, stratified) or
  PATH/train|val|test/<class>/<image> (the user's split; val optional). Class names: the sorted folders.
- data.name: csv: an image column (paths relative to the CSV's folder, or absolute) and a label column
  (class names or integers); default: the first two columns. Class names: data.class_names, else the
  sorted labels, else 0..max when every label is an integer. data.split_column names a column of
  train / val / test values: the data set's own split, used as it is (val optional).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from kdedge.data.imageset import IMAGE_SUFFIXES, SPLITS, ImageSetOptions, Listing, is_image_name
from kdedge.errors import InputError

IGNORED_FILES = ("thumbs.db", "desktop.ini")  # with dot files: what file managers leave in folders


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


class CsvOptions(ImageSetOptions):
    image_column: str | None = None
    label_column: str | None = None
    class_names: list[str] | None = None
    split_column: str | None = None  # a column of train / val / test: the data set's own split


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
            raise InputError(
                f"{csv_path} line {line}: label '{value}' is not in the class list "
                f"({', '.join(names[:10])}{' ...' if len(names) > 10 else ''})"
            )
    if len(names) < 2:
        raise InputError(f"{csv_path}: only one class ('{names[0]}'); a classifier needs >= 2")
    return [lookup[v] for v in values], tuple(names)


def _row_splits(rows: list[dict[str, str]], column: str, csv_path: Path) -> list[str]:
    """data.split_column: each row's split, train / val / test (case and surrounding spaces ignored)."""
    values = []
    for line, row in enumerate(rows, start=2):
        value = (row[column] or "").strip()
        if value.lower() not in SPLITS:
            raise InputError(
                f"{csv_path} line {line}: split '{value}' in column '{column}' (data.split_column); "
                f"allowed: {', '.join(SPLITS)}"
            )
        values.append(value.lower())
    if missing := [name for name in ("train", "test") if name not in values]:
        raise InputError(
            f"{csv_path}: column '{column}' (data.split_column) has no {' and no '.join(missing)} rows; "
            "it needs train and test rows (val is optional)"
        )
    return values


def _in_split_order(keep: list[int], splits: list[str]) -> tuple[list[int], dict[str, tuple[int, int]]]:
    """Rows regrouped train, val, test (CSV order within each) and each split's (start, stop) among them."""
    order: list[int] = []
    bounds = {}
    for name in SPLITS:
        chosen = [i for i in keep if splits[i] == name]
        bounds[name] = (len(order), len(order) + len(chosen))
        order += chosen
    return order, bounds


def list_csv(csv_path: Path, opts: CsvOptions) -> Listing:
    """The CSV's (image, label[, split]) rows -> a Listing; a missing file is named with how many others
    are."""
    if not csv_path.is_file():
        raise InputError(f"data.path: CSV file {csv_path} not found")
    rows = _read_rows(csv_path)
    columns = list(rows[0])
    image_col, label_col = opts.image_column or columns[0], opts.label_column or columns[1]
    named = (("image_column", image_col), ("label_column", label_col), ("split_column", opts.split_column))
    for key, column in named:
        if column is not None and column not in columns:
            raise InputError(f"{csv_path}: no column '{column}' (data.{key}); columns: {', '.join(columns)}")
    ids = [(row[image_col] or "").strip() for row in rows]
    labels, names = _label_index([(row[label_col] or "").strip() for row in rows], opts.class_names, csv_path)
    splits = _row_splits(rows, opts.split_column, csv_path) if opts.split_column else None
    paths = [Path(i) if Path(i).is_absolute() else csv_path.parent / i for i in ids]
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    bad = [(str(paths[i]), f"{paths[i]}: listed in {csv_path.name} line {i + 2} does not exist") for i in missing]
    if missing and not opts.skip_bad_images:
        more = f" (and {len(missing) - 1} other listed files)" if len(missing) > 1 else ""
        raise InputError(f"{bad[0][1]}{more}; fix the paths or pass --skip-bad-images")
    keep, bounds = sorted(set(range(len(paths))) - set(missing)), None
    if splits is not None:
        keep, bounds = _in_split_order(keep, splits)
    chosen = np.asarray([labels[i] for i in keep], dtype=np.int64)
    own_split = f"{csv_path.name} has its own split (data.split_column '{opts.split_column}')"
    return Listing([paths[i] for i in keep], [ids[i] for i in keep], chosen, names, bounds, bad, own_split)
