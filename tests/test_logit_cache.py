"""The teacher-logit cache (train.teacher_cache.teacher_logits_for): used when valid (jittered input included: one
row per shift), never for random crops/warps or when the teacher's weights (or data) changed, and invisible in
the result: a cached run trains the same student as an uncached one."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch
from torch import nn

from kdedge.data.load import load_data
from kdedge.data.types import Split, normalize
from kdedge.models.builders import build_model
from kdedge.recipe import DistillConfig, StageConfig
from kdedge.train.augment import JITTER_VARIANTS, jitter_variant
from kdedge.train.loop import Context, fit
from kdedge.train.teacher_cache import teacher_logits_for, teacher_logits_key

KD = DistillConfig(loss="kl", alpha=0.7, temperature=4.0, cache_teacher_logits=True)


class ImageCounter:
    """Counts the images a module's forward sees (a forward hook; the module itself is untouched)."""

    def __init__(self, module: nn.Module) -> None:
        self.images = 0
        module.register_forward_hook(self._count)

    def _count(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.images += inputs[0].shape[0]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mnist_subset() -> Split:
    """The first 1,000 real MNIST training images (uint8 (1000, 1, 28, 28))."""
    bundle = load_data("mnist", os.environ["KDEDGE_DATA"])
    return bundle.train.subset(torch.arange(1000))


def _context(**changes) -> Context:
    ctx = Context(device=torch.device("cpu"), mean=(0.1307,), std=(0.3081,), num_classes=10)
    return replace(ctx, **changes)


def _teacher(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", 10, 1, 28, {"hidden": [64], "dropout": 0.5}).eval()


def _fit_student(
    split: Split, teacher: nn.Module, cfg: StageConfig, ctx: Context, distill: DistillConfig = KD
) -> tuple[nn.Module, list[dict]]:
    torch.manual_seed(0)
    student = build_model("mlp", 10, 1, 28, {"hidden": [32]})
    records = fit(student, split, cfg, ctx, teacher=teacher, distill=distill)
    return student, records


def test_cache_runs_the_teacher_once_over_the_training_set(mnist_subset: Split) -> None:
    teacher = _teacher()
    counter = ImageCounter(teacher)
    cfg = StageConfig(model="mlp", epochs=3, batch_size=100, lr=0.05)
    _fit_student(mnist_subset, teacher, cfg, _context())
    assert counter.images == len(mnist_subset)  # one pass, not one per epoch


@pytest.mark.parametrize("why", ["affine", "crop_flip", "cache_off"])
def test_teacher_runs_per_batch_when_the_cache_is_not_valid(mnist_subset: Split, why: str) -> None:
    """Randomly warped/cropped student input: the teacher must see the SAME batch, and the outcomes are too
    many to precompute, so no cached logits."""
    teacher = _teacher()
    counter = ImageCounter(teacher)
    augment = "none" if why == "cache_off" else why
    cfg = StageConfig(model="mlp", epochs=2, batch_size=100, lr=0.05, augment=augment)
    distill = KD.model_copy(update={"cache_teacher_logits": False}) if why == "cache_off" else KD
    assert teacher_logits_for(teacher, mnist_subset, cfg, distill, _context()) is None
    _fit_student(mnist_subset, teacher, cfg, _context(), distill)
    assert counter.images == 2 * len(mnist_subset)  # every batch of every epoch


def test_saved_logits_are_reused_only_for_the_same_teacher_and_data(mnist_subset: Split, tmp_path) -> None:
    cfg = StageConfig(model="mlp", epochs=1, batch_size=100, lr=0.05)
    ctx = _context(teacher_logits_file=tmp_path / "teacher_logits.safetensors")
    teacher = _teacher()
    counter = ImageCounter(teacher)
    first = teacher_logits_for(teacher, mnist_subset, cfg, KD, ctx)
    assert counter.images == len(mnist_subset) and ctx.teacher_logits_file.is_file()
    again = teacher_logits_for(teacher, mnist_subset, cfg, KD, ctx)  # e.g. the next point of a sweep
    assert counter.images == len(mnist_subset), "valid saved logits were recomputed"
    assert torch.equal(first, again)

    with torch.no_grad():
        teacher[1].weight[0, 0] += 0.5  # the teacher changed (retrained, another checkpoint)
    changed = teacher_logits_for(teacher, mnist_subset, cfg, KD, ctx)
    assert counter.images == 2 * len(mnist_subset), "stale logits of the old teacher were used"
    assert not torch.equal(first, changed)

    other_data = mnist_subset.subset(torch.arange(len(mnist_subset)).flip(0))  # same images, other order
    teacher_logits_for(teacher, other_data, cfg, KD, ctx)
    assert counter.images == 3 * len(mnist_subset), "logits of other data were used"
    jittered = replace_stage(cfg, augment="jitter")
    per_shift = teacher_logits_for(teacher, mnist_subset, jittered, KD, ctx)  # another key: not plain logits
    assert per_shift.shape == (JITTER_VARIANTS, len(mnist_subset), 10)
    assert counter.images == (3 + JITTER_VARIANTS) * len(mnist_subset)


def test_jittered_input_uses_per_shift_logits_and_trains_the_same_student(mnist_subset: Split) -> None:
    """Jitter has 25 outcomes: the teacher runs once per shift (25 passes, whatever the epoch count), row v of
    the cache is the teacher on shift v, and the student matches one trained against a live teacher."""
    teacher = _teacher()
    counter = ImageCounter(teacher)
    cfg = StageConfig(model="mlp", epochs=3, batch_size=128, lr=0.05, augment="jitter")
    cached = teacher_logits_for(teacher, mnist_subset, cfg, KD, _context())
    variant = 7  # dy = 1, dx = 2: one pixel up, no horizontal shift
    live = teacher(normalize(jitter_variant(mnist_subset.images, variant), (0.1307,), (0.3081,))).detach()
    torch.testing.assert_close(cached[variant], live, rtol=1e-5, atol=1e-5)
    counter.images = 0
    student, records = _fit_student(mnist_subset, teacher, cfg, _context())
    assert counter.images == JITTER_VARIANTS * len(mnist_subset)
    uncached = KD.model_copy(update={"cache_teacher_logits": False})
    live_student, live_records = _fit_student(mnist_subset, teacher, cfg, _context(), uncached)
    assert counter.images == (JITTER_VARIANTS + 3) * len(mnist_subset)  # live: one pass per epoch
    for name, tensor in live_student.state_dict().items():
        torch.testing.assert_close(student.state_dict()[name], tensor, rtol=1e-4, atol=1e-5)
    assert records[-1]["train_loss"] == pytest.approx(live_records[-1]["train_loss"], rel=1e-5)


def replace_stage(cfg: StageConfig, **changes) -> StageConfig:
    return cfg.model_copy(update=changes)


def test_key_covers_weights_data_and_transform(mnist_subset: Split) -> None:
    cfg, ctx, teacher = StageConfig(model="mlp"), _context(), _teacher()
    key = teacher_logits_key(teacher, mnist_subset, cfg, ctx)
    assert key == teacher_logits_key(_teacher(), mnist_subset, cfg, _context())  # same inputs, new objects
    assert key != teacher_logits_key(_teacher(seed=2), mnist_subset, cfg, ctx)
    assert key != teacher_logits_key(teacher, mnist_subset.subset(torch.arange(999)), cfg, ctx)
    assert key != teacher_logits_key(teacher, mnist_subset, cfg, _context(mean=(0.5,)))
    assert key != teacher_logits_key(teacher, mnist_subset, replace_stage(cfg, augment="jitter"), ctx)


def test_cached_and_uncached_runs_train_the_same_student(mnist_subset: Split, tmp_path) -> None:
    """Cached logits come from batches of eval_batch_size (1024), per-batch ones from batches of 128: the
    same float32 math, but a BLAS may block it differently, so the students are compared to float tolerance
    (rtol 1e-4, atol 1e-5 after 2 epochs; measured: bit-identical on 1 thread, MKL, AMD EPYC). A run that
    reads the saved file is bit-identical to the cached run (same float32 logits)."""
    cfg = StageConfig(model="mlp", epochs=2, batch_size=128, lr=0.05, schedule="cosine")
    no_cache = KD.model_copy(update={"cache_teacher_logits": False})
    uncached, uncached_records = _fit_student(mnist_subset, _teacher(), cfg, _context(), no_cache)
    cached, cached_records = _fit_student(mnist_subset, _teacher(), cfg, _context())
    for name, tensor in uncached.state_dict().items():
        torch.testing.assert_close(cached.state_dict()[name], tensor, rtol=1e-4, atol=1e-5)
    assert cached_records[-1]["train_loss"] == pytest.approx(uncached_records[-1]["train_loss"], rel=1e-5)
    ctx = _context(teacher_logits_file=tmp_path / "t.safetensors")
    _fit_student(mnist_subset, _teacher(), cfg, ctx)  # computes and saves
    teacher = _teacher()
    counter = ImageCounter(teacher)
    from_file, _ = _fit_student(mnist_subset, teacher, cfg, ctx)  # reads the file
    assert counter.images == 0, "the saved logits were not reused"
    for name, tensor in cached.state_dict().items():
        assert torch.equal(from_file.state_dict()[name], tensor), name
