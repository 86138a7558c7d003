"""Data sets by name: the table. Each source is one module here (mnist, cifar10, aptos, retinamnist, folder,
csv) with a `SOURCE` (a kdedge.data.types.DataSource); this file lists them by name, imported on first use,
as timm's models/__init__.py lists its models, so a recipe's data.name is checked without importing torch.
kdedge.data.load.load_data loads one by name.

Adding a data source: write kdedge/data/<source>.py with a load function and its SOURCE (plus a pydantic
options model if it reads data.* keys of its own), then add one DATASETS.add line below.
"""

from __future__ import annotations

from kdedge.registry import Registry

__all__ = ["DATASETS", "ORDINAL", "is_ordinal"]

DATASETS: Registry = Registry("data set")
DATASETS.add("mnist", "kdedge.data.mnist:SOURCE")
DATASETS.add("mnist_embedded", "kdedge.data.mnist:EMBEDDED_SOURCE")
DATASETS.add("cifar10", "kdedge.data.cifar10:SOURCE")
DATASETS.add("aptos", "kdedge.data.aptos:SOURCE")
DATASETS.add("retinamnist", "kdedge.data.retinamnist:SOURCE")
DATASETS.add("folder", "kdedge.data.folder:SOURCE")
DATASETS.add("csv", "kdedge.data.csvfile:SOURCE")

# Data sets of ordered grades (diabetic retinopathy 0-4): quadratic weighted kappa means something there, and a
# teacher whose QWK is clearly above 0 is learning even when its accuracy is near the majority class's.
ORDINAL = frozenset({"aptos", "retinamnist"})


def is_ordinal(dataset: str) -> bool:
    """Whether `dataset` (a data.name, as summary.json and exported files record it) has ordered grades."""
    return str(dataset) in ORDINAL
