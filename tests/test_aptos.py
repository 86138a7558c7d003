"""APTOS 2019: Kaggle-layout loader, fundus crop, versioned cache, QWK, pretrained weights, end to end.

Every image here is generated (tests/aptos_fixture.py); no APTOS photo is ever committed.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from kdedge.data import aptos, imagecache
from kdedge.data.load import load_data
from kdedge.errors import InputError
from kdedge.runtime import imaging
from kdedge.runtime.metrics import quadratic_weighted_kappa

sys.path.insert(0, str(Path(__file__).parent))
from aptos_fixture import FOLDER, make_aptos  # noqa: E402

# Small versions of the real architectures keep the end-to-end test in seconds on 2 shared cores.
TINY_CONVNEXT = "{depths: [1, 1, 1, 1], dims: [16, 32, 64, 128]}"
# at 32 px Swin's token grids are 8, 4, 2, 1: windows of 4 tile them (timm's 7 is refused before training)
TINY_SWIN = "{embed_dim: 16, depths: [1, 1, 1, 1], num_heads: [1, 1, 2, 2], window_size: 4}"


@pytest.fixture(scope="module")
def kaggle_root(tmp_path_factory) -> Path:
    """A 60-image Kaggle-layout data set (read-only by convention: tests that break it copy it first)."""
    root = tmp_path_factory.mktemp("aptos")
    make_aptos(root, count=60, seed=0, max_side=120)
    return root


@pytest.fixture
def broken_copy(kaggle_root, tmp_path) -> Path:
    shutil.copytree(kaggle_root, tmp_path / "data")
    return tmp_path / "data"


def _load(root: Path, cache: Path, size: int = 32, split: dict | None = None):
    options = {"cache_dir": str(cache)} | ({"split": split} if split else {})
    return load_data("aptos", str(root), size, options)


def _rows(root: Path) -> list[list[str]]:
    return list(csv.reader((root / FOLDER / "train.csv").open()))


def _write_rows(root: Path, rows: list[list[str]]) -> None:
    with (root / FOLDER / "train.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_loader_reads_kaggle_layout_and_splits_by_grade(kaggle_root, tmp_path):
    bundle = _load(kaggle_root, tmp_path / "cache", split={"seed": 0, "val": 0.1, "test": 0.2})
    assert bundle.class_names == aptos.CLASS_NAMES and bundle.image_size == 32 and bundle.in_channels == 3
    splits = {"train": bundle.train, "val": bundle.val, "test": bundle.test}
    ids = {name: set(s.ids) for name, s in splits.items()}
    assert sum(len(s) for s in splits.values()) == 60
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"] and not ids["val"] & ids["test"]
    all_grades = np.array([int(r[1]) for r in _rows(kaggle_root)[1:]])
    for grade in range(5):  # stratified: each grade's share of the test split is its share overall, +-1 image
        in_test = int((bundle.test.labels == grade).sum())
        assert abs(in_test - 0.2 * (all_grades == grade).sum()) <= 1
    by_id = {r[0]: int(r[1]) for r in _rows(kaggle_root)[1:]}
    assert [by_id[i] for i in bundle.test.ids] == bundle.test.labels.tolist()


def test_split_is_seeded_and_independent_of_csv_order(kaggle_root, broken_copy, tmp_path):
    first = _load(kaggle_root, tmp_path / "cache").test.ids
    assert _load(kaggle_root, tmp_path / "cache").test.ids == first
    assert set(_load(kaggle_root, tmp_path / "cache", split={"seed": 1}).test.ids) != set(first)
    header, *rows = _rows(broken_copy)
    _write_rows(broken_copy, [header, *reversed(rows)])
    assert set(_load(broken_copy, tmp_path / "cache2").test.ids) == set(first)


def test_crop_retina_removes_the_black_border():
    canvas = Image.fromarray(np.random.default_rng(0).integers(0, 6, (200, 320, 3), dtype=np.uint8))
    ImageDraw.Draw(canvas).ellipse((90, 30, 230, 170), fill=(200, 90, 30))  # disc at x 90..230
    out = aptos.crop_retina(canvas, 32)
    assert out.shape == (3, 32, 32) and out.dtype == np.uint8
    assert out[0, 16, 1] > 150 and out[0, 16, 30] > 150  # the disc now touches the left and right edges
    assert out[0, 16, 16] > 150 and out[:, 0, 0].max() < 20  # ... and the corners stay black
    assert aptos.crop_retina(Image.new("RGB", (50, 40)), 8).max() == 0  # all black: whole frame, no crash


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("no_csv", "APTOS 2019 not found"),
        ("missing_image", "image listed in train.csv is missing"),
        ("bad_diagnosis", "line 4 (id_code"),
        ("text_diagnosis", "diagnosis 'severe' is not one of 0..4"),
        ("corrupt_png", "not a readable image"),
        ("duplicate_id", "duplicate id_code"),
        ("bad_header", "expected a header 'id_code,diagnosis'"),
    ],
)
def test_bad_input_is_one_input_error_naming_the_file(broken_copy, tmp_path, damage, expected):
    folder = broken_copy / FOLDER
    header, *rows = _rows(broken_copy)
    victim = folder / "train_images" / f"{rows[5][0]}.png"
    if damage == "no_csv":
        (folder / "train.csv").unlink()
    elif damage == "missing_image":
        victim.unlink()
    elif damage == "corrupt_png":
        victim.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    elif damage in ("bad_diagnosis", "text_diagnosis"):
        rows[2][1] = "7" if damage == "bad_diagnosis" else "severe"
        _write_rows(broken_copy, [header, *rows])
    elif damage == "duplicate_id":
        _write_rows(broken_copy, [header, *rows, rows[0]])
    else:
        _write_rows(broken_copy, [["id", "grade"], *rows])
    with pytest.raises(InputError) as caught:
        _load(broken_copy, tmp_path / "cache")
    message = str(caught.value)
    assert expected in message and "\n" not in message
    if damage in ("missing_image", "corrupt_png"):
        assert victim.name in message


def test_cli_bad_input_exits_2_with_one_line(broken_copy, tmp_path, monkeypatch, capsys):
    from kdedge.cli import main

    missing = next((broken_copy / FOLDER / "train_images").iterdir())
    missing.unlink()
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "kdedge",
            "distill",
            "aptos_mobile",
            "--data-root",
            str(broken_copy),
            "--out",
            str(tmp_path / "run"),
            "--set",
            f"data.cache_dir={tmp_path}/c",
            "--set",
            "teacher.pretrained=false",
            "--quiet",
        ],
    )
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and missing.name in err and "Traceback" not in err


def test_cache_is_built_once_reused_and_rebuilt_when_settings_change(kaggle_root, broken_copy, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = _load(broken_copy, cache).train.images
    files = sorted(cache.glob("*.npy"))
    assert len(files) == 1 and "32px" in files[0].name
    built = {"count": 0}
    real_decode = imagecache.decode_all  # the one image cache APTOS shares with the folder / csv sources

    def counting(*args, **kwargs):
        built["count"] += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(imagecache, "decode_all", counting)
    assert (_load(broken_copy, cache).train.images == first).all() and built["count"] == 0  # reused
    _load(broken_copy, cache, size=24)  # another size: its own file, the 32 px one kept
    assert built["count"] == 1 and len(list(cache.glob("*.npy"))) == 2
    image = next((broken_copy / FOLDER / "train_images").iterdir())
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))  # an edited image
    _load(broken_copy, cache)
    assert built["count"] == 2 and not files[0].exists()  # rebuilt; the stale 32 px file pruned
    monkeypatch.setattr(imaging, "PREPROCESS_VERSION", imaging.PREPROCESS_VERSION + 1)  # new decoding
    _load(broken_copy, cache)
    assert built["count"] == 3 and len(list(cache.glob("*.npy"))) == 2
    cache_files = list(cache.glob("*32px*.npy"))
    cache_files[0].write_bytes(b"truncated")  # a damaged cache file is rebuilt, not trusted
    assert (_load(broken_copy, cache).train.images == first).all() and built["count"] == 4


def test_parallel_decoding_gives_the_same_pixels(kaggle_root, tmp_path, monkeypatch):
    serial = _load(kaggle_root, tmp_path / "serial").train.images
    monkeypatch.setattr(imagecache, "PARALLEL_FROM", 10)  # 60 images -> the process pool used for real data
    assert (_load(kaggle_root, tmp_path / "parallel").train.images == serial).all()


def test_split_and_cache_options_are_refused_by_other_data_sets():
    with pytest.raises(InputError, match="data.split: not used by data set 'mnist_embedded'"):
        load_data("mnist_embedded", None, None, {"split": {"seed": 1}})


def test_quadratic_weighted_kappa_matches_hand_computed_values():
    # O = [[1,0,0],[0,1,0],[0,1,1]], W_ij = (i-j)^2/4, E = outer(rows [1,1,2], cols [1,2,1]) / 4:
    # sum(W*O) = 0.25, sum(W*E) = 0.375 + 0.125 + 0.75 = 1.25 -> kappa = 1 - 0.25/1.25 = 0.8
    assert quadratic_weighted_kappa(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3) == pytest.approx(0.8)
    # grades 0 and 4 swapped: sum(W*O) = 2, sum(W*E) = 1 -> -1
    assert quadratic_weighted_kappa(np.array([4, 0]), np.array([0, 4]), 5) == pytest.approx(-1.0)
    assert quadratic_weighted_kappa(np.array([0, 2, 3]), np.array([0, 2, 3]), 5) == pytest.approx(1.0)
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    labels, predicted = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    predicted[:120] = labels[:120]
    expected = cohen_kappa_score(labels, predicted, weights="quadratic")
    assert quadratic_weighted_kappa(predicted, labels, 5) == pytest.approx(expected)


def test_pretrained_local_safetensors_loads_and_a_mismatch_is_one_line(tmp_path):
    import timm
    import torch
    from safetensors.torch import save_file

    from kdedge.models.weights import build_stage_model
    from kdedge.recipe import StageConfig

    info = {"num_classes": 5, "in_channels": 3, "image_size": 32}
    imagenet_like = timm.create_model("resnet18", num_classes=1000)  # stands in for hub weights
    save_file({k: v.contiguous() for k, v in imagenet_like.state_dict().items()}, str(tmp_path / "r18.st"))
    model = build_stage_model(StageConfig(model="resnet18", pretrained=str(tmp_path / "r18.st")), info)
    assert torch.equal(model.conv1.weight, imagenet_like.conv1.weight)  # backbone loaded
    assert model.fc.weight.shape == (5, 512)  # head kept fresh for 5 grades
    other = timm.create_model("mobilenetv3_small_100", num_classes=1000)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(tmp_path / "mnv3.st"))
    with pytest.raises(InputError, match="pretrained weights .* do not fit model 'resnet18'"):
        build_stage_model(StageConfig(model="resnet18", pretrained=str(tmp_path / "mnv3.st")), info)
    with pytest.raises(InputError, match="weights file not found"):
        build_stage_model(StageConfig(model="resnet18", pretrained=str(tmp_path / "absent.st")), info)


def test_aptos_recipes_validate_and_a_model_typo_gets_a_suggestion():
    from kdedge.recipe import load_recipe

    teacher = load_recipe("aptos_convnext_teacher").teacher
    assert (teacher.model, teacher.optimizer, teacher.epochs) == ("convnext_tiny", "adam", 50)
    assert teacher.lr == 1e-3 and teacher.class_weighted_loss
    assert (teacher.schedule, teacher.step_epochs, teacher.step_gamma) == ("step", 25, 0.5)
    swin = load_recipe("aptos_swin")
    assert swin.student.model == "swin_tiny_patch4_window7_224" and swin.distillation.soft_weight == 0.25
    assert swin.distillation.temperature == 11 and swin.teacher == teacher
    assert load_recipe("aptos_convnext_self").student.model == "convnext_tiny"
    assert load_recipe("aptos_mobile").student.model in ("mobilenetv3_large_100", "efficientnet_b0")
    with pytest.raises(InputError, match="did you mean 'swin_tiny_patch4_window7_224'"):
        load_recipe("aptos_swin", {"student.model": "swin_tiny_patch4_window7"})
    with pytest.raises(InputError, match="val \\+ test must be < 1"):
        load_recipe("aptos_swin", {"data.split.test": 0.5, "data.split.val": 0.5})


@pytest.mark.slow
def test_distill_aptos_swin_end_to_end(kaggle_root, tmp_path, monkeypatch, capsys):
    from kdedge.cli import main
    from kdedge.commands.evaluate import evaluate_run_dir

    run = tmp_path / "run"
    sets = [
        "data.image_size=32",
        f"data.cache_dir={tmp_path}/cache",
        "teacher.epochs=2",
        "student.epochs=1",
        "teacher.pretrained=false",
        "student.pretrained=false",
        "teacher.batch_size=16",
        "student.batch_size=16",
        f"teacher.model_kwargs={TINY_CONVNEXT}",
        f"student.model_kwargs={TINY_SWIN}",
    ]
    argv = [
        "kdedge",
        "distill",
        "recipes/aptos_swin.yaml",
        "--data-root",
        str(kaggle_root),
        "--out",
        str(run),
        "--quiet",
        *[arg for s in sets for arg in ("--set", s)],
    ]
    monkeypatch.chdir(Path(__file__).parents[1])
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 0
    summary = json.loads((run / "summary.json").read_text())
    split = json.loads((run / "split.json").read_text())
    assert len(split["test"]) == summary["teacher"]["test_count"] == summary["data"]["test_images"]
    assert not set(split["train"]) & set(split["test"])
    assert summary["data"]["image_size"] == 32 and summary["data"]["class_names"][4] == "proliferative"
    assert np.asarray(summary["student"]["test_confusion"]).sum() == len(split["test"])
    from kdedge.report.markdown import write_report

    write_report(run)  # `kdedge report RUN`: the confusion matrix PNG from summary.json
    assert Image.open(run / "student_confusion.png").size[0] > 100
    for stage, model in (("teacher", "convnext_tiny"), ("student", "swin_tiny_patch4_window7_224")):
        assert summary[stage]["model"] == model and -1.0 <= summary[stage]["test_qwk"] <= 1.0
    again = evaluate_run_dir(run, str(kaggle_root))  # same seeded split and cache -> the same numbers
    assert again["student"]["test_accuracy"] == summary["student"]["test_accuracy"]
    leaky = [
        *argv[:2],
        "recipes/aptos_mobile.yaml",
        *argv[3:5],
        "--out",
        str(tmp_path / "leak"),
        "--quiet",
        "--set",
        f"teacher.checkpoint={run}",
        "--set",
        "data.split.seed=1",
        "--set",
        sets[1],
        "--set",
        "data.image_size=32",
        "--set",
        "student.pretrained=false",
    ]
    monkeypatch.setattr(sys, "argv", leaky)  # a teacher from another split would have seen our test images
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2 and "trained on" in capsys.readouterr().err


def test_pretrained_true_without_network_is_one_line_at_once(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    from kdedge.models import weights
    from kdedge.recipe import StageConfig

    monkeypatch.setattr(weights, "_hub_resolvable", lambda host="huggingface.co": False)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))  # an empty local cache
    info = {"num_classes": 5, "in_channels": 3, "image_size": 32}
    before = hub.HF_HUB_OFFLINE
    with pytest.raises(InputError, match="huggingface.co is unreachable .* or pretrained: false"):
        weights.build_stage_model(StageConfig(model="mobilenetv3_small_100", pretrained=True), info)
    assert hub.HF_HUB_OFFLINE == before  # the offline switch is restored for the rest of the process
