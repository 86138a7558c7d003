"""Every registered model's output shape; the teacher stays in eval mode while a student learns from it;
device 'auto' picks CPU on a machine without CUDA and says so."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdedge.data.types import Split
from kdedge.errors import InputError
from kdedge.models import MODELS
from kdedge.models.builders import build_model, count_params, output_bias
from kdedge.recipe import DistillConfig, StageConfig
from kdedge.train.devices import describe_device, resolve_device
from kdedge.train.loop import Context, fit
from kdedge.train.teacher_cache import teacher_logits_for


@pytest.mark.parametrize("name", MODELS.names())
def test_every_registered_model_maps_images_to_logits(name: str) -> None:
    """(N, C, H, W) float32 -> (N, num_classes) at a small input, in eval mode (BatchNorm needs no batch)."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=7, in_channels=3, image_size=32).eval()
    with torch.inference_mode():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 7) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert count_params(model) > 0


def test_hinton_mlp_sizes() -> None:
    teacher = build_model("mlp", 10, 1, 28, {"hidden": [1200, 1200], "dropout": 0.5, "input_dropout": 0.2})
    student = build_model("mlp", 10, 1, 28, {"hidden": [30, 30]})
    assert count_params(teacher) == 784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10
    assert count_params(student) == 784 * 30 + 30 + 30 * 30 + 30 + 30 * 10 + 10
    assert sum(isinstance(m, nn.Dropout) for m in teacher.modules()) == 3
    assert output_bias(student).shape == (10,)


def test_bad_model_kwargs_are_bad_input() -> None:
    with pytest.raises(InputError, match="model 'mlp': bad model_kwargs"):
        build_model("mlp", 10, 1, 28, {"hiden": [3]})


def test_unknown_model_suggests_a_name() -> None:
    with pytest.raises(InputError, match="unknown model 'resnet81', did you mean 'resnet18'"):
        build_model("resnet81", 10, 3, 32)


# -- the teacher is always in eval / inference mode during distillation --------------------------------
class _Spy(nn.Module):
    """Wraps a teacher; records (training flag, output) of every forward pass."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.inner(images)
        self.calls.append((self.training, images.detach().clone(), logits.detach().clone()))
        return logits


def _tiny_mnist_like(n: int = 64) -> Split:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=generator)
    return Split(images, torch.randint(0, 10, (n,), generator=generator))


@pytest.mark.parametrize("cache", [False, True], ids=["per-batch", "cached"])
def test_dropout_teacher_is_fixed_during_distillation(cache: bool) -> None:
    """A teacher with heavy dropout handed over in TRAINING mode: every forward it makes while the student
    learns is in eval mode, and its logits for an image are the same every time it sees it."""
    torch.manual_seed(0)
    teacher = _Spy(build_model("mlp", 10, 1, 8, {"hidden": [32], "dropout": 0.5, "input_dropout": 0.5}))
    teacher.train()
    student = build_model("mlp", 10, 1, 8, {"hidden": [8]})
    split = _tiny_mnist_like()
    cfg = StageConfig(model="mlp", epochs=2, batch_size=16, lr=0.01)
    ctx = Context(device=torch.device("cpu"), mean=(0.5,), std=(0.25,), num_classes=10)
    fit(
        student,
        split,
        cfg,
        ctx,
        teacher=teacher,
        distill=DistillConfig(loss="kl", alpha=0.9, cache_teacher_logits=cache),
    )
    assert teacher.calls, "the teacher was never run"
    assert all(not training for training, _, _ in teacher.calls), "teacher ran in training mode (dropout active)"
    assert not teacher.training
    again = teacher_logits_for(teacher, split, cfg, DistillConfig(cache_teacher_logits=True), ctx)
    with torch.inference_mode():
        for _, images, logits in list(teacher.calls):
            # the same images through the teacher once more give the same logits: no dropout noise
            torch.testing.assert_close(teacher(images), logits)
    assert torch.equal(again, teacher_logits_for(teacher, split, cfg, DistillConfig(cache_teacher_logits=True), ctx))


def test_a_dropout_teacher_in_train_mode_would_be_random() -> None:
    """Control for the test above: the same teacher in training mode does give different logits."""
    torch.manual_seed(0)
    teacher = build_model("mlp", 10, 1, 8, {"hidden": [32], "dropout": 0.5}).train()
    images = torch.randn(4, 1, 8, 8)
    assert not torch.equal(teacher(images), teacher(images))


# -- device: auto -----------------------------------------------------------------------------------
def test_auto_device_is_cpu_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert describe_device("auto") == "device: cpu (auto: no CUDA device found)"
    with pytest.raises(InputError, match="'cuda' requested but no CUDA device"):
        resolve_device("cuda")


def test_auto_device_is_cuda_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")
    assert resolve_device("auto") == torch.device("cuda")
    assert describe_device("auto") == "device: cuda (auto: CUDA found: Fake GPU)"
    assert describe_device("cpu") == "device: cpu (from the recipe)"


FAMILY_EXAMPLES = {  # one timm model of each family kdedge.models.quantisation names
    "mobilenetv3": "mobilenetv3_small_100",
    "tf_mobilenetv3": "tf_mobilenetv3_small_100",
    "lcnet": "lcnet_050",
    "fbnetv3": "fbnetv3_b",
    "hardcorenas": "hardcorenas_a",
    "efficientvit": "efficientvit_b0",
    "levit": "levit_128s",
    "ghostnet": "ghostnet_100",
    "repghostnet": "repghostnet_050",
    "efficientnet_b": "efficientnet_b0",
    "tf_efficientnet_b": "tf_efficientnet_b0",
    "efficientnetv2": "efficientnetv2_rw_t",
    "tf_efficientnetv2": "tf_efficientnetv2_b0",
    "mixnet": "mixnet_s",
    "tf_mixnet": "tf_mixnet_s",
    "semnasnet": "semnasnet_100",
    "tinynet": "tinynet_a",
    "rexnet": "rexnet_100",
    "regnety": "regnety_002",
}


def _int8_unfriendly_layers(name: str) -> set[str]:
    """Which of hard-swish / squeeze-excite a timm model has (built on the meta device: no memory)."""
    import timm

    with torch.device("meta"):
        model = timm.create_model(name, num_classes=3)
    kinds = {type(module).__name__ for module in model.modules()}
    found = {"hard-swish"} if kinds & {"Hardswish", "HardSwish", "HardSwishMe"} else set()
    return found | ({"squeeze-excite"} if kinds & {"SqueezeExcite", "SEModule"} else set())


@pytest.mark.parametrize("family", sorted(FAMILY_EXAMPLES))
def test_families_said_to_quantise_badly_have_those_layers(family: str) -> None:
    from kdedge.models.quantisation import HARD_SWISH_OR_SE, int8_trouble

    assert set(FAMILY_EXAMPLES) == set(HARD_SWISH_OR_SE)
    name = FAMILY_EXAMPLES[family]
    assert int8_trouble(name) == HARD_SWISH_OR_SE[family]
    assert _int8_unfriendly_layers(name) == set(HARD_SWISH_OR_SE[family].split(" and "))


def test_students_said_to_quantise_well_have_neither_layer() -> None:
    from kdedge.models.quantisation import INT8_FRIENDLY_STUDENTS, int8_trouble

    for name in INT8_FRIENDLY_STUDENTS:
        assert int8_trouble(name) is None and _int8_unfriendly_layers(name) == set()
    assert int8_trouble("efficientnet_lite0") is None and int8_trouble("mlp") is None  # not efficientnet_b*


def test_alexnet_keeps_its_signal_through_eight_layers() -> None:
    """PyTorch's default init shrinks a ReLU net's activations ~2x per layer: without batch norm the
    AlexNet's logits were ~1/50 of its input's scale and SGD never left the uniform guess."""
    torch.manual_seed(0)
    net = build_model("alexnet_cifar", 10, 3, 32).eval()
    with torch.no_grad():
        features = net[:-1](torch.randn(64, 3, 32, 32))  # the input of the last layer
    assert 0.3 < float(features.std()) < 10
    assert all(float(m.bias.abs().max()) == 0 for m in net.modules() if isinstance(m, nn.Conv2d))
