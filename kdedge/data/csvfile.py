"""data.name: csv: a CSV with an image column (paths relative to the CSV's folder, or absolute) and a label
column (class names or integers); default: the first two columns. Class names: data.class_names, else the
sorted labels, else 0..max when every label is an integer. data.split_column: a column of train / val /
test values, the data set's own split (used as it is instead of a seeded one). The listing itself is
kdedge.data.listing (torch-free).
"""

from __future__ import annotations

from kdedge.data.images import build_bundle, source_path
from kdedge.data.listing import CsvOptions, list_csv
from kdedge.data.types import DataBundle, DataSource

__all__ = ["CsvOptions", "list_csv", "load_csv"]


def load_csv(image_size: int | None, opts: CsvOptions) -> DataBundle:
    """data.name: csv (see the module docstring)."""
    csv_path = source_path(opts, "csv", is_csv=True)
    return build_bundle("csv", list_csv(csv_path, opts), opts, image_size, csv_path)


SOURCE = DataSource(load_csv, options=CsvOptions, takes_path=True)
