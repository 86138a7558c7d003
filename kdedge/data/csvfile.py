"""data.name: csv: a CSV with an image column (paths relative to the CSV's folder, or absolute) and a label
column (class names or integers); default: the first two columns. Class names: data.class_names, else the
sorted labels, else 0..max when every label is an integer.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from kdedge.data.images import ImageSetOptions, Listing, build_bundle, source_path
from kdedge.data.types import DataBundle, DataSource
from kdedge.errors import InputError


class CsvOptions(ImageSetOptions):
    image_column: str | None = None
    label_column: str | None = None
    class_names: list[str] | None = None


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
    bad = [(str(paths[i]), f"{paths[i]}: listed in {csv_path.name} line {i + 2} does not exist") for i in missing]
    if missing and not opts.skip_bad_images:
        more = f" (and {len(missing) - 1} other listed files)" if len(missing) > 1 else ""
        raise InputError(f"{bad[0][1]}{more}; fix the paths or pass --skip-bad-images")
    keep = sorted(set(range(len(paths))) - set(missing))
    return Listing(
        [paths[i] for i in keep],
        [ids[i] for i in keep],
        np.asarray([labels[i] for i in keep], dtype=np.int64),
        names,
        None,
        bad,
    )


def load_csv(image_size: int | None, opts: CsvOptions) -> DataBundle:
    """data.name: csv (see the module docstring)."""
    csv_path = source_path(opts, "csv", is_csv=True)
    return build_bundle("csv", list_csv(csv_path, opts), opts, image_size, csv_path)


SOURCE = DataSource(load_csv, options=CsvOptions, takes_path=True)
