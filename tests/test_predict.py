"""kdedge predict: the same classes as PyTorch on real MNIST / CIFAR-10 images, in a process that never
imported torch; pre-processing from the file's metadata (mode, size); bad input is one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from cli_helpers import TORCH_FREE_PREDICT, run_kdedge
from export_helpers import make_exported_run
from PIL import Image

from kdedge.data.types import normalize
from kdedge.files.rundir import RunDir
from kdedge.train.pipeline import prepare_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exported(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{'mnist': run, 'cifar10': run}: briefly trained students exported to fp32."""
    runs = {}
    for dataset, model, kwargs in (
        ("mnist", "mlp", {"hidden": [64]}),
        ("cifar10", "small_cnn", {"width": 8}),
    ):
        runs[dataset], _ = make_exported_run(
            tmp_path_factory.mktemp(dataset) / "run",
            data_root,
            model,
            "fp32",
            dataset=dataset,
            model_kwargs=kwargs,
            train_steps=200,
            test_limit=24,
        )
    return runs


def _save_test_images(run: Path, data_root: Path, folder: Path) -> tuple[list[Path], np.ndarray]:
    """Write the run's real test images as PNG; return the files and PyTorch's classes for them."""
    bundle = prepare_data(RunDir(run).read_recipe(), str(data_root))
    model, _ = RunDir(run).load_model("student")
    with torch.inference_mode():
        classes = model(normalize(bundle.test.images, bundle.mean, bundle.std)).argmax(1).numpy()
    files = []
    for index, image in enumerate(bundle.test.images.numpy()):
        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        files.append(folder / f"{index:03d}.png")
        Image.fromarray(pixels).save(files[-1])
    return files, classes


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_predict_matches_pytorch_without_importing_torch(exported, dataset, data_root: Path, tmp_path: Path):
    files, torch_classes = _save_test_images(exported[dataset], data_root, tmp_path)
    model_file = exported[dataset] / "export" / "student.fp32.onnx"
    done = subprocess.run(
        [sys.executable, "-c", TORCH_FREE_PREDICT, str(model_file), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [r["image"] for r in results] == [str(f) for f in files]
    assert [r["top"][0]["index"] for r in results] == torch_classes.tolist()
    assert len(set(torch_classes.tolist())) > 3  # a trained model: not one constant class


def test_predict_converts_mode_and_resizes(exported, data_root: Path, tmp_path: Path):
    """MNIST digits given as 56x56 RGB files are converted to L and resized to 28x28 per the metadata."""
    files, torch_classes = _save_test_images(exported["mnist"], data_root, tmp_path)
    big = []
    for file in files:
        big.append(file.with_name(file.stem + "_rgb56.png"))
        Image.open(file).convert("RGB").resize((56, 56), Image.Resampling.NEAREST).save(big[-1])
    code, out, err = run_kdedge(
        "predict", exported["mnist"] / "export" / "student.fp32.onnx", *big, "--json", "--top-k", "3"
    )
    assert code == 0, err
    results = json.loads(out)
    assert all(len(r["top"]) == 3 and r["top"][0]["probability"] >= r["top"][1]["probability"] for r in results)
    same = np.mean([r["top"][0]["index"] == c for r, c in zip(results, torch_classes, strict=True)])
    assert same >= 0.9  # a 2x blow-up, shrunk back with an antialiasing filter, is nearly the same digit


def test_predict_text_output_names_classes(exported, data_root: Path, tmp_path: Path):
    files, torch_classes = _save_test_images(exported["cifar10"], data_root, tmp_path)
    code, out, err = run_kdedge("predict", exported["cifar10"] / "export" / "student.fp32.onnx", files[0])
    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    assert code == 0, err
    assert out.startswith(f"{files[0]}: {names[torch_classes[0]]} ")


def test_bad_input_is_one_line_exit_2(exported, tmp_path: Path):
    model_file = exported["mnist"] / "export" / "student.fp32.onnx"
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(image)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(model_file.read_bytes()[:5000])  # a truncated download
    foreign = tmp_path / "foreign.onnx"
    stripped = onnx.load(str(model_file))
    del stripped.metadata_props[:]
    onnx.save(stripped, str(foreign))
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")
    cases = [
        ((corrupt, image), "not a valid ONNX file"),
        ((tmp_path / "missing.onnx", image), "not found"),
        ((foreign, image), "not a kdedge export"),
        ((model_file, not_an_image), "not a readable image"),
        ((model_file, tmp_path / "missing.png"), "image not found"),
        ((model_file, image, "--top-k", "0"), "--top-k"),
    ]
    for args, message in cases:
        code, out, err = run_kdedge("predict", *args)
        assert code == 2 and message in err, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_predict_module_import_chain_is_torch_free():
    code = (
        "import sys, kdedge.cli, kdedge.runtime.predict, kdedge.runtime.onnx_meta; "
        "from kdedge.export import read_metadata; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_predict_takes_a_run_folder_and_a_folder_or_glob_of_images(exported, data_root, tmp_path):
    """`kdedge predict RUN FOLDER` and `RUN 'FOLDER/*.png'`: the run's fp32 student (said on stderr), one
    line / JSON entry per image, the same classes as naming the .onnx file and every image."""
    run = exported["mnist"]
    folder = tmp_path / "digits"
    folder.mkdir()
    files, torch_classes = _save_test_images(run, data_root, folder)
    (folder / "notes.txt").write_text("not an image: skipped in a folder")
    code, out, err = run_kdedge("predict", run, folder, "--json")
    assert code == 0 and err.strip() == f"model: {run / 'export' / 'student.fp32.onnx'}", err
    results = json.loads(out)
    assert [r["image"] for r in results] == [str(f) for f in files]
    assert [r["top"][0]["index"] for r in results] == torch_classes.tolist()
    code, out, err = run_kdedge("predict", run, str(folder / "00*.png"))
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 10 and lines[0].startswith(f"{files[0]}: ")
    (tmp_path / "empty").mkdir()
    cases = (
        ((run, tmp_path / "empty"), "a folder with no image files"),
        ((run, str(tmp_path / "none*.png")), "no file matches this pattern"),
        ((tmp_path / "empty", files[0]), "a folder without an exported student"),
    )
    for args, message in cases:
        code, _, err = run_kdedge("predict", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_skip_bad_images_predicts_the_readable_ones_and_lists_the_rest(exported, data_root, tmp_path):
    """One unreadable file among many: without --skip-bad-images one line naming the file and the flag (exit
    2); with it, every readable image predicted as before, one warning line (count, first files, '...'), the
    same in the Python API (result.skipped + one RuntimeWarning), torch never imported."""
    import kdedge

    run = exported["mnist"]
    folder = tmp_path / "digits"
    folder.mkdir()
    files, torch_classes = _save_test_images(run, data_root, folder)
    bad = [folder / f"bad{index}.png" for index in range(4)]
    bad[0].write_text("not a picture")
    code, out, err = run_kdedge("predict", run, folder)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(bad[0]) in err and "--skip-bad-images" in err
    code, out, err = run_kdedge("predict", run, folder, "--skip-bad-images", "--json")
    assert code == 0, err
    assert [r["top"][0]["index"] for r in json.loads(out)] == torch_classes.tolist()
    warning = [line for line in err.strip().splitlines() if line.startswith("warning:")]
    assert warning == [f"warning: skipped 1 of {len(files) + 1} images (unreadable): {bad[0]}"], err
    for path in bad[1:]:
        path.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.warns(RuntimeWarning, match=r"skipped 4 of \d+ images \(unreadable\): .*bad0.png, .*, \.\.\.$"):
        results = kdedge.predict(run / "export" / "student.fp32.onnx", folder, skip_bad_images=True)
    assert [r["image"] for r in results] == [str(f) for f in files]
    assert [s["image"] for s in results.skipped] == [str(p) for p in bad]
    assert "not a readable image" in results.skipped[0]["error"]
    code, _, err = run_kdedge("predict", run, *bad, "--skip-bad-images")
    assert code == 2 and "none of the 4 images is readable" in err and len(err.strip().splitlines()) == 1, err
    model_file = run / "export" / "student.fp32.onnx"
    done = subprocess.run(
        [sys.executable, "-c", TORCH_FREE_PREDICT, str(model_file), str(folder), "--skip-bad-images"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "skipped 4 of" in done.stderr, done.stderr
    assert len(json.loads(done.stdout)) == len(files)
