"""kdedge.data.listing: a CSV's split column (data.split_column) is the data set's own train / val / test
split, used as it is instead of a seeded one; `kdedge init` finds a column called `split` and names it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_kdedge
from PIL import Image

from kdedge.data.load import load_data
from kdedge.errors import InputError

CLASSES = ("cat", "dog")
# the official split of each of the 20 images per class: rows 0-11 train, 12-14 val, 15-19 test, so a
# seeded stratified split (7 / 1 / 2 of 10 per class) could not produce it by chance
OFFICIAL = ["train"] * 12 + ["val"] * 3 + ["test"] * 5


def _csv(root: Path, splits: list[str] | None = None, column: str = "split") -> Path:
    """root/images/*.png and root/labels.csv (file,label,<column>) of 2 x 20 tiny RGB images."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = [f"file,label,{column}"]
    for label in CLASSES:
        for index, split in enumerate(splits or OFFICIAL):
            name = f"images/{label}{index:02d}.png"
            Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(root / name)
            rows.append(f"{name},{label},{split}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def _load(csv_path: Path, cache: Path, **options):
    return load_data("csv", None, 8, {"path": str(csv_path), "cache_dir": str(cache), **options})


def test_split_column_is_used_as_it_is(tmp_path: Path) -> None:
    csv_path = _csv(tmp_path / "set")
    bundle = _load(csv_path, tmp_path / "cache", split_column="split")
    expected = {
        name: [f"images/{label}{i:02d}.png" for label in CLASSES for i, s in enumerate(OFFICIAL) if s == name]
        for name in ("train", "val", "test")
    }
    assert list(bundle.train.ids) == expected["train"] and len(bundle.train) == 24
    assert list(bundle.val.ids) == expected["val"] and list(bundle.test.ids) == expected["test"]
    assert bundle.test.labels.tolist() == [0] * 5 + [1] * 5
    seeded = _load(csv_path, tmp_path / "cache")  # without it: the seeded 70 / 10 / 20 split as before
    assert (len(seeded.train), len(seeded.val), len(seeded.test)) == (28, 4, 8)


def test_split_column_values_are_case_and_space_blind_and_val_is_optional(tmp_path: Path) -> None:
    splits = [" Train"] * 15 + ["TEST "] * 5
    bundle = _load(_csv(tmp_path / "set", splits), tmp_path / "cache", split_column="split")
    assert (len(bundle.train), len(bundle.test), bundle.val) == (30, 10, None)


@pytest.mark.parametrize(
    ("splits", "options", "expected"),
    [
        (["train"] * 15 + ["training"] * 5, {"split_column": "split"}, "line 17: split 'training' in column 'split'"),
        (["train"] * 20, {"split_column": "split"}, "column 'split' (data.split_column) has no test rows"),
        (OFFICIAL, {"split_column": "fold"}, "no column 'fold' (data.split_column); columns: file, label, split"),
        (
            OFFICIAL,
            {"split_column": "split", "split": {"seed": 1}},
            "data.split: labels.csv has its own split (data.split_column 'split'); remove data.split",
        ),
    ],
    ids=["bad-value", "no-test-rows", "no-such-column", "with-data-split"],
)
def test_bad_split_column_is_one_clear_error(tmp_path: Path, splits, options, expected) -> None:
    with pytest.raises(InputError, match="allowed: train, val, test" if "training" in expected else None) as err:
        _load(_csv(tmp_path / "set", splits), tmp_path / "cache", **options)
    assert expected in str(err.value)


def test_init_names_a_split_column_and_the_recipe_keeps_the_split(tmp_path, monkeypatch) -> None:
    from kdedge.recipe import load_recipe

    csv_path = _csv(tmp_path / "set")
    monkeypatch.setenv("KDEDGE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "set.yaml"
    code, _, err = run_kdedge("init", str(csv_path), "--teacher", "small_cnn", "--student", "mlp", "--out", str(out))
    assert code == 0, err
    text = out.read_text()
    assert "# 2 classes; train 24 / val 6 / test 10 images." in text
    recipe = load_recipe(str(out))
    assert recipe.data.split_column == "split" and recipe.data.image_column == "file"
    bundle = load_data("csv", None, recipe.data.image_size, recipe.data.loader_options())
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (24, 6, 10)
