"""The user's own images: folder and CSV sources, the shared memory-mapped image cache, every
common file format, each bad input as one line + exit 2, and `kdedge init`. Image sets are generated in
tmp folders (a few dozen tiny files), so these tests take seconds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_helpers import run_kdedge
from image_files import first_per_class, write_images
from PIL import Image

from kdedge.data import imagecache, images
from kdedge.data.load import load_data
from kdedge.errors import InputError
from kdedge.runtime import imaging

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CLASSES = ("cat", "dog", "owl")
COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "owl": (40, 40, 200)}


def colour_image(name: str, index: int, size: tuple[int, int] = (20, 14)) -> Image.Image:
    """A learnable image: the class colour with a little per-image noise."""
    rng = np.random.default_rng(index)
    base = np.asarray(COLOURS[name], dtype=np.int16)
    pixels = np.clip(base + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def make_folder(root: Path, per_class: int = 10, split: bool = False, suffix: str = ".png") -> Path:
    """root/<class>/<i>.png (or root/train|val|test/<class>/...) with `per_class` images per class."""
    for name in CLASSES:
        for i in range(per_class):
            part = ("train", "train", "train", "val", "test")[i % 5] if split else ""
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            colour_image(name, i).save(folder / f"{name}{i:02d}{suffix}")
    return root


def make_csv(root: Path, per_class: int = 10, int_labels: bool = False, absolute: bool = False) -> Path:
    """root/images/*.png and root/labels.csv (file,label) with relative (or absolute) paths."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = ["file,label"]
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            path = root / "images" / f"{name}{i}.png"
            colour_image(name, i).save(path)
            rows.append(f"{path if absolute else path.relative_to(root)},{c if int_labels else name}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def mapped_file(address: int) -> str:
    """The file memory-mapped at `address` in this process ('' for anonymous memory), from /proc/self/maps."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split()
        start, end = (int(x, 16) for x in parts[0].split("-"))
        if start <= address < end:
            return parts[5] if len(parts) > 5 else ""
    return ""


def load(source: str, path: Path, cache: Path, size: int = 8, **options):
    return load_data(source, None, size, {"path": str(path), "cache_dir": str(cache), **options})


def test_folder_layout_sorted_classes_stratified_split_memmap_and_stats(tmp_path):
    root = make_folder(tmp_path / "pets")
    bundle = load("folder", root, tmp_path / "cache")
    assert bundle.class_names == CLASSES and bundle.in_channels == 3 and bundle.image_size == 8
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (21, 3, 6)  # 7 / 1 / 2 per class
    assert sorted(bundle.test.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert mapped_file(bundle.train.images.data_ptr()).endswith(".npy")  # read from the cache file: a map
    assert mapped_file(bundle.test.images.data_ptr()) == mapped_file(bundle.train.images.data_ptr())
    assert bundle.root == str(root.resolve())
    ids = set(bundle.train.ids) | set(bundle.val.ids) | set(bundle.test.ids)
    assert len(ids) == 30 and all(i.split("/")[0] in CLASSES for i in ids)
    train = bundle.train.images.float().div(255)
    assert np.allclose(bundle.mean, train.mean((0, 2, 3)).tolist(), atol=1e-3)  # measured on train only
    again = load("folder", root, tmp_path / "cache", split={"seed": 0, "val": 0.1, "test": 0.2})
    assert again.test.ids == bundle.test.ids  # seeded: the same split for teacher and student runs
    other = load("folder", root, tmp_path / "cache", split={"seed": 5, "val": 0.1, "test": 0.2})
    assert other.test.ids != bundle.test.ids


def test_folder_with_user_split_keeps_it(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=5, split=True)
    bundle = load("folder", root, tmp_path / "cache")
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (9, 3, 3)
    assert all(i.startswith("test/") for i in bundle.test.ids)
    with pytest.raises(InputError, match="has its own train/test folders"):
        load("folder", root, tmp_path / "cache", split={"seed": 1})


@pytest.mark.parametrize("int_labels", [False, True])
@pytest.mark.parametrize("absolute", [False, True])
def test_csv_names_or_ints_relative_or_absolute(tmp_path, int_labels, absolute):
    csv_path = make_csv(tmp_path / "set", int_labels=int_labels, absolute=absolute)
    bundle = load("csv", csv_path, tmp_path / "cache")
    assert bundle.class_names == (("0", "1", "2") if int_labels else CLASSES)
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 30
    first = bundle.train.images[bundle.train.labels == 0].float().mean((0, 2, 3))
    assert first[0] > first[1] and first[0] > first[2]  # class 0 is the red one: labels follow the files


def test_every_common_format_and_mode_is_converted(tmp_path):
    """JPEG, PNG, BMP, WebP, TIFF; grayscale, RGBA, palette, 16-bit; EXIF orientation applied."""
    folder = tmp_path / "formats"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    red = colour_image("cat", 0)
    red.save(folder / "a" / "x.jpg")
    red.save(folder / "a" / "x.bmp")
    red.save(folder / "a" / "x.webp")
    red.save(folder / "a" / "x.tiff")
    red.convert("RGBA").save(folder / "a" / "rgba.png")
    red.convert("P").save(folder / "a" / "palette.png")
    red.convert("L").save(folder / "b" / "gray.png")
    Image.fromarray(np.full((14, 20), 40000, dtype=np.uint16)).save(folder / "b" / "deep.png")  # 16-bit
    wide = Image.new("RGB", (20, 10), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 10, 10))  # blue left half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    wide.save(folder / "b" / "rotated.jpg", exif=exif)
    spec = imaging.Decode(10, 3, "squash")
    rotated = imaging.decode_file((folder / "b" / "rotated.jpg", spec))
    assert rotated[2, 2, 5] > 200 and rotated[2, 8, 5] < 100  # blue now on top: orientation applied
    deep = imaging.decode_file((folder / "b" / "deep.png", imaging.Decode(4, 1, "squash")))
    assert abs(int(deep.mean()) - round(40000 * 255 / 65535)) <= 1  # 16-bit scaled, not clipped to 255
    bundle = load("folder", folder, tmp_path / "cache", in_channels=1, split={"val": 0.0, "test": 0.3})
    assert bundle.in_channels == 1 and len(bundle.train) + len(bundle.test) == 9
    with pytest.raises(InputError, match="mixed image modes: 2 grayscale and 7 colour"):
        load("folder", folder, tmp_path / "cache")


def test_cache_reused_rebuilt_on_change_and_unwritable_dir_falls_back(tmp_path, monkeypatch, capsys):
    root = make_folder(tmp_path / "pets")
    cache = tmp_path / "cache"
    first = load("folder", root, cache).train.images.clone()
    assert len(list(cache.glob("folder-*.npy"))) == 1
    calls = {"n": 0}
    real = imagecache.decode_all

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(imagecache, "decode_all", counting)
    assert (load("folder", root, cache).train.images == first).all() and calls["n"] == 0  # reused
    image = next((root / "cat").iterdir())
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))  # an edited file
    load("folder", root, cache)
    assert calls["n"] == 1 and len(list(cache.glob("folder-*.npy"))) == 1  # rebuilt, the stale one pruned
    load("folder", root, cache, resize="pad")  # other pre-processing: rebuilt
    assert calls["n"] == 2
    locked = tmp_path / "locked"
    locked.write_text("a file where the cache folder should be")  # mkdir fails even for root
    capsys.readouterr()
    bundle = load("folder", root, locked / "sub", run_dir=str(tmp_path / "run"))
    bundle = load("folder", root, locked / "sub", run_dir=str(tmp_path / "run"))
    err = capsys.readouterr().err
    assert err.count("caching in") == 1 and len(list((tmp_path / "run" / "cache").glob("*.npy"))) == 1
    assert len(bundle.train) == 21


def _damage(kind: str, tmp: Path) -> tuple[str, Path, str]:
    """(data name, path, expected message) of one bad input."""
    if kind == "empty":
        (tmp / "empty").mkdir()
        return "folder", tmp / "empty", "has no class folders"
    root = make_folder(tmp / "pets", per_class=5)
    if kind == "one_class":
        for name in CLASSES[1:]:
            for f in (root / name).iterdir():
                f.unlink()
            (root / name).rmdir()
        return "folder", root, "only one class ('cat')"
    if kind == "empty_class":
        for f in (root / "dog").iterdir():
            f.unlink()
        return "folder", root, "dog: class folder has no images"
    if kind == "corrupt":
        (root / "dog" / "dog03.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        return "folder", root, "dog03.png: not a readable image"
    if kind == "truncated":
        data = (root / "owl" / "owl01.png").read_bytes()
        (root / "owl" / "owl01.png").write_bytes(data[: len(data) // 2])
        return "folder", root, "owl01.png: not a readable image"
    if kind == "not_image":
        (root / "cat" / "notes.txt").write_text("hello")
        return "folder", root, "notes.txt: not an image file"
    if kind == "mixed":
        Image.new("L", (20, 14), 128).save(root / "cat" / "gray.png")
        return "folder", root, "mixed image modes"
    csv_path = make_csv(tmp / "set", per_class=4)
    lines = csv_path.read_text().splitlines()
    if kind == "csv_column":
        return "csv", csv_path, "no column 'path' (data.image_column)"
    if kind == "csv_label":
        lines[3] = lines[3].split(",")[0] + ",horse"
    elif kind == "csv_missing":
        lines[2] = "images/nope.png,cat"
        lines[5] = "images/gone.png,dog"
    csv_path.write_text("\n".join(lines) + "\n")
    expected = {
        "csv_label": "line 4: label 'horse' is not in the class list",
        "csv_missing": "nope.png: listed in labels.csv line 3 does not exist (and 1 other",
    }
    return "csv", csv_path, expected[kind]


BAD = [
    "empty",
    "one_class",
    "empty_class",
    "corrupt",
    "truncated",
    "not_image",
    "mixed",
    "csv_column",
    "csv_label",
    "csv_missing",
]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_is_one_line_exit_2_and_nothing_written(kind, tmp_path):
    name, path, expected = _damage(kind, tmp_path)
    recipe = {
        "name": "bad",
        "device": "cpu",
        "data": {"name": name, "path": str(path), "image_size": 8, "cache_dir": str(tmp_path / "c")},
        "student": {"model": "mlp", "model_kwargs": {"hidden": [8]}, "epochs": 1},
        "distillation": {"loss": "none"},
    }
    if kind == "csv_column":
        recipe["data"]["image_column"] = "path"
    if kind == "csv_label":  # the class list is the user's: a label outside it is a typo, not a new class
        recipe["data"]["class_names"] = list(CLASSES)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    code, _, err = run_kdedge("distill", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run"), "-q")
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()
    assert not list((tmp_path / "c").glob("*.npy")) if (tmp_path / "c").exists() else True


def test_skip_bad_images_warns_counts_and_lists(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=6)
    (root / "dog" / "dog03.png").write_bytes(b"broken")
    (root / "cat" / "readme.txt").write_text("not an image")
    recipe = {
        "name": "skip",
        "device": "cpu",
        "data": {"name": "folder", "path": str(root), "image_size": 8, "cache_dir": str(tmp_path / "c")},
        "student": {"model": "mlp", "model_kwargs": {"hidden": [8]}, "epochs": 1, "batch_size": 8},
        "distillation": {"loss": "none"},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    code, _, err = run_kdedge(
        "distill", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run"), "-q", "--skip-bad-images"
    )
    assert code == 0 and "skipped 2 unreadable images" in err
    listed = (tmp_path / "run" / "bad_images.txt").read_text().splitlines()
    assert len(listed) == 2 and any("dog03.png" in line for line in listed)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"]["skipped_images"] == 2 and summary["data"]["class_names"] == list(CLASSES)
    ran = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())["data"]  # measured mean/std recorded
    assert "mean" not in recipe["data"] and ran["mean"] == summary["data"]["mean"] and len(ran["std"]) == 3
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert sum(map(len, split.values())) == 17 and "dog/dog03.png" not in sum(split.values(), [])


def test_unknown_option_for_a_source_is_named(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=3)
    with pytest.raises(InputError, match="data.image_column: not used by data set 'folder'"):
        load("folder", root, tmp_path / "c", image_column="x")
    with pytest.raises(InputError, match="data.path: not used by data set 'mnist_embedded'"):
        load_data("mnist_embedded", None, None, {"path": "x"})


def test_init_model_typo_gets_a_suggestion(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=3)
    args = ["init", str(root), "--teacher", "resnet81", "--student", "mlp"]
    code, _, err = run_kdedge(*args)
    assert code == 2 and "did you mean 'resnet18'" in err and len(err.strip().splitlines()) == 1


def test_stratified_split_depends_only_on_the_set():
    ids = [f"f{i}" for i in range(40)]
    labels = np.asarray([i % 2 for i in range(40)])
    rule = images.SplitRule(seed=3)
    first = images.stratified_split(ids, labels, 2, rule)
    order = np.random.default_rng(0).permutation(40)
    second = images.stratified_split([ids[i] for i in order], labels[order], 2, rule)
    assert sorted(ids[i] for i in first["test"]) == sorted(ids[order[i]] for i in second["test"])


def _real_subset(data_root: Path, name: str, per_class: int) -> tuple[dict, tuple[str, ...]]:
    """{"train": (images, labels), "test": ...} of the first `per_class` real images of each class."""
    bundle = load_data(name, str(data_root))
    splits = {}
    for split, part in (("train", bundle.train), ("test", bundle.test)):
        index = first_per_class(part.labels.numpy(), per_class)
        splits[split] = (part.images.numpy()[index], part.labels.numpy()[index])
    return splits, bundle.class_names


@pytest.mark.parametrize(
    ("dataset", "layout"),
    [
        pytest.param("mnist", "folder", marks=pytest.mark.slow),
        ("cifar10", "split"),
        pytest.param("mnist", "csv", marks=pytest.mark.slow),
    ],
)
def test_real_images_as_files_through_init_distill_export_bench(dataset, layout, data_root, tmp_path, monkeypatch):
    """Real MNIST / CIFAR-10 images written as PNG files, in each layout, through the four commands; export
    and bench find the data without KDEDGE_DATA (the run remembers it)."""
    splits, names = _real_subset(data_root, dataset, per_class=8)
    path = write_images(splits, names, tmp_path / "images", layout)
    monkeypatch.delenv("KDEDGE_DATA", raising=False)
    monkeypatch.setenv("KDEDGE_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "mine.yaml"
    args = ["init", str(path), "--teacher", "small_cnn", "--student", "mlp", "--out", str(recipe)]
    code, _, err = run_kdedge(*args)
    assert code == 0, err
    written = yaml.safe_load(recipe.read_text())
    channels = 1 if dataset == "mnist" else 3
    assert written["data"]["in_channels"] == channels
    assert written["data"]["image_size"] == (28 if channels == 1 else 32)  # the images' own size
    assert len(written["data"]["mean"]) == channels
    run = tmp_path / "run"
    tiny = [
        "--set",
        "teacher.epochs=1",
        "--set",
        "student.epochs=1",
        "--set",
        "teacher.model_kwargs={width: 8}",
        "--set",
        "student.model_kwargs={hidden: [16]}",
    ]
    code, _, err = run_kdedge("distill", str(recipe), "--out", str(run), "-q", *tiny)
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"]["class_names"] == list(names)
    assert summary["data"]["root"] == str(path.resolve())  # remembered: export / bench need no KDEDGE_DATA
    assert summary["data"]["test_images"] == (80 if layout == "split" else 30)  # given split, or 3 of 16
    code, _, err = run_kdedge("export", str(run), "--model", "student", "--precision", "fp32", "-q")
    assert code == 0, err
    from kdedge.runtime.onnx_meta import model_card

    card = model_card(run / "export" / "student.fp32.onnx")
    assert card.class_names == tuple(names) and card.in_channels == channels
    assert card.mean == pytest.approx(summary["data"]["mean"]) and card.resize == "center_crop"
    picture = next(p for p in sorted(tmp_path.joinpath("images").rglob("*.png")))
    onnx_file = run / "export" / "student.fp32.onnx"
    code = run_kdedge("predict", str(onnx_file), str(picture)).returncode
    assert code == 0
    table = tmp_path / "bench.json"
    code, _, err = run_kdedge(
        "bench", str(run), "--runtimes", "onnxruntime", "--batch", "1", "--seconds", "0.05", "--json", str(table), "-q"
    )
    assert code == 0, err
    rows = [r for r in json.loads(table.read_text())["rows"] if r.get("precision") == "fp32"]
    assert rows and all(r["accuracy"] is not None for r in rows), rows  # scored on the run's own test images


def test_run_remembers_its_data_root_for_eval_and_export(data_root, tmp_path, monkeypatch):
    """`distill --data-root DIR` then `eval` / `export` without KDEDGE_DATA: the run's summary names DIR
    (before, export exited 2 with "not found" unless KDEDGE_DATA happened to point at DIR)."""
    monkeypatch.delenv("KDEDGE_DATA", raising=False)
    run = tmp_path / "run"
    tiny = [
        "--set",
        "data.train_limit=300",
        "--set",
        "data.test_limit=100",
        "--set",
        "teacher.epochs=1",
        "--set",
        "student.epochs=1",
        "--set",
        "teacher.model_kwargs.hidden=[16]",
    ]
    code, _, err = run_kdedge("distill", "hinton_mnist", "--data-root", str(data_root), "--out", str(run), "-q", *tiny)
    assert code == 0, err
    assert json.loads((run / "summary.json").read_text())["data"]["root"] == str(data_root)
    code, _, err = run_kdedge("eval", str(run), "--json")
    assert code == 0, err
    code, _, err = run_kdedge("export", str(run), "--model", "student", "--precision", "fp32", "-q")
    assert code == 0 and (run / "export" / "student.fp32.onnx").is_file(), err
    (tmp_path / "elsewhere").mkdir()
    code, _, err = run_kdedge("eval", str(run), "--data-root", str(tmp_path / "elsewhere"))
    assert code == 2 and "has no MNIST" in err  # --data-root still overrides what the run remembers


def test_init_warns_and_writes_a_recipe_that_validates(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "pets", per_class=12)
    for extra in range(30):  # 'owl' 42 vs 'cat' 12 ... and 'cat' loses images below: unbalanced + tiny
        colour_image("owl", 100 + extra).save(root / "owl" / f"more{extra}.png")
    for f in sorted((root / "cat").iterdir())[3:]:
        f.unlink()
    (root / "dog" / "dog05.png").write_bytes(b"not a png")
    monkeypatch.setenv("KDEDGE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "pets.yaml"
    code, _, err = run_kdedge("init", str(root), "--teacher", "small_cnn", "--student", "mlp", "--out", str(out))
    assert code == 0, err
    assert "tiny classes" in err and "'cat' (" in err and "unbalanced" in err and "1 unreadable" in err
    from kdedge.recipe import load_recipe

    recipe = load_recipe(str(out))
    assert recipe.data.name == "folder" and recipe.data.skip_bad_images and recipe.teacher.class_weighted_loss
    assert recipe.data.image_size == 14 and recipe.data.in_channels == 3  # the images' shorter side
    code, _, err = run_kdedge("init", str(root), "--teacher", "small_cnn", "--student", "mlp", "--out", str(out))
    assert code == 2 and "exists" in err  # never overwrites a recipe without --force


def test_nothing_filtered_means_no_copy(tmp_path):
    """A transfer set without omitted classes is the training split itself, still read from the map (a
    copy would pull a set larger than memory into RAM: the memory benchmark caught it)."""
    from kdedge.data.types import filter_classes

    bundle = load("folder", make_folder(tmp_path / "pets", per_class=5), tmp_path / "cache")
    assert filter_classes(bundle.train, [], None) is bundle.train
    assert len(filter_classes(bundle.train, [0], None)) == len(bundle.train) - 3


def test_init_defaults_to_a_pair_whose_student_quantises_well(tmp_path, monkeypatch):
    """No --teacher / --student: resnet18 -> mobilenetv2_100, a ReLU6 student whose int8 file agrees with fp32
    (`kdedge export` writes int8 by default); a MobileNetV3 student gets one warning line saying what to take."""
    root = make_folder(tmp_path / "pets", per_class=3)
    monkeypatch.setenv("KDEDGE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "pets.yaml"
    code, _, err = run_kdedge("init", str(root), "--out", str(out))
    assert code == 0, err
    assert "--student" not in err  # no int8 warning for the default
    written = yaml.safe_load(out.read_text())
    assert (written["teacher"]["model"], written["student"]["model"]) == ("resnet18", "mobilenetv2_100")
    assert "model: mobilenetv2_100   # ReLU / ReLU6, no squeeze-excite: quantises well to int8" in out.read_text()
    args = ["init", str(root), "--student", "mobilenetv3_small_100", "--out", str(out), "--force"]
    code, _, err = run_kdedge(*args)
    assert code == 0, err
    warning = [line for line in err.splitlines() if "--student mobilenetv3_small_100" in line]
    assert len(warning) == 1 and "hard-swish and squeeze-excite" in warning[0]
    assert "mobilenetv2_100, resnet18 or efficientnet_lite0" in warning[0]
    assert "# hard-swish and squeeze-excite: int8 may disagree with fp32" in out.read_text()
