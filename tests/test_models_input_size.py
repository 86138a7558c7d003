"""Any name timm.list_models() knows is a model, and its input-size constraints are checked before a run
writes anything (kdedge.models.builders.check_input_size): a patch model's patches must tile the image (ViT,
DeiT, BEiT: built for the data's size), a network must not shrink the image to nothing (ConvNeXt below
32 px); the line names the nearest size above that fits. Swin's windows: tests/test_retinamnist.py."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import timm
import torch
from cli_helpers import one_error_line, run_kdedge, write_recipe

from kdedge.errors import InputError
from kdedge.models.builders import build_model, check_input_size
from kdedge.recipe import load_recipe, parse_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# the module itself: the package re-exports a function of that name
timm_names = importlib.import_module("kdedge.models.timm_names")


def test_any_timm_name_is_a_model_and_a_typo_gets_timms_names() -> None:
    recipe = load_recipe("hinton_mnist", parse_set(["teacher.model=resnet34", "student.model=regnetx_002"]))
    assert (recipe.teacher.model, recipe.student.model) == ("resnet34", "regnetx_002")
    with pytest.raises(InputError, match="unknown model 'resnet3', did you mean 'resnet34'"):
        load_recipe("hinton_mnist", parse_set(["student.model=resnet3"]))


def test_the_timm_name_snapshot_is_the_installed_timms_list() -> None:
    """kdedge/models/timm_models.txt answers for the installed timm without importing it; when timm is
    upgraded this fails until `python -m kdedge.models.timm_names` rewrites the snapshot."""
    import timm

    assert timm_names.snapshot_version() == timm.__version__ == timm_names._installed_timm()
    assert timm_names.timm_names() == tuple(timm.list_models())


def test_a_name_the_snapshot_lacks_is_asked_of_timm_only_when_timm_is_another_version(monkeypatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(timm, "is_model", lambda name: asked.append(name) or name == "resnet_from_the_future")
    assert not timm_names.is_timm_name("resnet_19") and asked == []  # the snapshot's own timm: final answer
    monkeypatch.setattr(timm_names, "_installed_timm", lambda: "99.0")
    assert timm_names.is_timm_name("resnet_from_the_future") and asked == ["resnet_from_the_future"]
    assert timm_names.is_timm_name("resnet18") and asked == ["resnet_from_the_future"]  # in the snapshot


@pytest.mark.parametrize(
    ("name", "size", "why", "fits"),
    [
        ("vit_tiny_patch16_224", 28, "its 16-px patches do not tile 28 px", 32),
        ("deit_tiny_patch16_224", 40, "its 16-px patches do not tile 40 px", 48),
        ("convnext_tiny", 16, "Kernel size can't be greater than actual input size", 32),
        ("convnext_tiny", 28, "Kernel size can't be greater than actual input size", 32),
    ],
)
def test_a_size_the_model_cannot_take_is_one_line_naming_one_that_fits(name, size, why, fits) -> None:
    with pytest.raises(InputError) as err:
        check_input_size(name, size, {}, 3)
    message = str(err.value)
    assert message.startswith(f"model '{name}': cannot take {size}x{size} images (") and why in message
    assert f"the nearest size above it takes is {fits} px; set data.image_size" in message
    check_input_size(name, fits, {}, 3)  # and that size is taken


@pytest.mark.parametrize(("name", "size"), [("vit_tiny_patch16_224", 32), ("resnet18", 28), ("mobilenetv2_050", 28)])
def test_a_size_the_model_takes_builds_and_runs(name: str, size: int) -> None:
    """A fixed-size model (ViT) is built for the data's size, not timm's default 224."""
    check_input_size(name, size, {}, 1)
    model = build_model(name, 5, 1, size).eval()
    with torch.inference_mode():
        assert model(torch.randn(2, 1, size, size)).shape == (2, 5)


def test_distill_refuses_the_size_before_writing_anything(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "vit.yaml", student={"model": "vit_tiny_patch16_224", "model_kwargs": {}})
    out = tmp_path / "run"
    code, _, err = run_kdedge("distill", recipe, "--out", out, "-q")
    line = one_error_line(err)
    assert code == 2 and "model 'vit_tiny_patch16_224': cannot take 28x28 images" in line and "32 px" in line
    assert not out.exists()
