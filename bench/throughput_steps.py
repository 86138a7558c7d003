"""What bench/cifar10_train_throughput.py times: one model's full SGD steps per setting (memory layout,
precision, torch.compile mode, batch), built from a kdedge recipe's model, input size and batch, and timed
interleaved (one step of each setting per round) so that every setting sees the same load."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from kdedge.data.types import normalize
from kdedge.models.builders import build_model
from kdedge.recipe.load import load_recipe
from kdedge.train.augment import augment

CLASSES = {"cifar10": 10, "retinamnist": 5}  # the classes of the recipes' data sets (the head's width)
RECIPES = {"cifar_resnet18": "cifar10_resnet18", "convnext_tiny": "retina_convnext_teacher"}
LARGER_BATCH = 4  # the "larger batch" setting: this many times the recipe's batch
WARM_UP_STEPS = 2  # untimed: oneDNN picks its kernels, torch.compile compiles (forward, then backward)


@dataclass(frozen=True)
class Workload:
    """One model as its recipe trains it: (batch, 3, size, size) float inputs, `classes` logits."""

    model: str
    recipe: str
    classes: int
    image_size: int
    batch: int
    augment: str


@dataclass(frozen=True)
class Setting:
    """How a step runs: layout, bf16 autocast or fp32, torch.compile mode (None: eager), batch multiple."""

    channels_last: bool
    bf16: bool
    compile_mode: str | None = None  # "default" or "max-autotune-no-cudagraphs"
    batch_factor: int = 1

    @property
    def label(self) -> str:
        """E.g. 'fp32 channels_last compiled (default)'."""
        words = ["bf16 autocast" if self.bf16 else "fp32", "channels_last" if self.channels_last else "NCHW"]
        words.append("eager" if self.compile_mode is None else f"compiled ({self.compile_mode})")
        return " ".join(words)


def workload(model: str) -> Workload:
    """The model's workload from its recipe (RECIPES): the teacher's batch, the data's input size."""
    if model not in RECIPES:
        raise SystemExit(f"error: unknown model {model!r}; choose from {', '.join(RECIPES)}")
    recipe = load_recipe(RECIPES[model])
    stage = recipe.teacher
    return Workload(
        model, recipe.name, CLASSES[recipe.data.name], recipe.data.image_size or 32, stage.batch_size, stage.augment
    )


def settings(bf16: bool, max_autotune: bool) -> list[Setting]:
    """The settings of one precision: eager NCHW, eager channels_last, compiled channels_last (inductor's
    default mode, and max-autotune-no-cudagraphs when asked), eager channels_last at LARGER_BATCH x."""
    chosen = [Setting(False, bf16), Setting(True, bf16), Setting(True, bf16, "default")]
    if max_autotune:
        chosen.append(Setting(True, bf16, "max-autotune-no-cudagraphs"))
    return [*chosen, Setting(True, bf16, batch_factor=LARGER_BATCH)]


def _conv_backward_flops(
    grad_out_shape,
    x_shape,
    w_shape,
    _bias,
    stride,
    padding,
    dilation,
    transposed,
    _output_padding,
    groups,
    output_mask,
    out_shape=None,
) -> int:
    """FLOPs of aten.convolution_backward: each gradient asked for (input, weight) costs one forward
    convolution. torch's own formula (torch.utils.flop_counter.conv_backward_flop, torch 2.14) ignores
    `groups` for the weight gradient and counts a depthwise convolution's backward ~groups x too high
    (97x the forward for a 96-channel 7x7 depthwise conv; ConvNeXt-T's training FLOPs came out 8.7x its
    forward instead of ~3x)."""
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def train_flops_per_image(work: Workload, batch: int = 4) -> float:
    """FLOPs (2 per multiply-add) of one forward + backward of the model on one image, counted by
    torch.utils.flop_counter with a convolution backward that respects groups (_conv_backward_flops)."""
    model = build_model(work.model, work.classes, 3, work.image_size)
    images = torch.randn(batch, 3, work.image_size, work.image_size)
    labels = torch.randint(0, work.classes, (batch,))
    mapping = {torch.ops.aten.convolution_backward: _conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        torch.nn.functional.cross_entropy(model(images), labels).backward()
    return counter.get_total_flops() / batch


def make_step(work: Workload, setting: Setting) -> Callable[[], None]:
    """A closure doing one SGD step (forward, backward, nesterov update, as kdedge's loop does them) of a
    freshly built, seeded model on a fixed random batch."""
    torch.manual_seed(0)
    model = build_model(work.model, work.classes, 3, work.image_size)
    batch = work.batch * setting.batch_factor
    images = torch.randn(batch, 3, work.image_size, work.image_size)
    labels = torch.randint(0, work.classes, (batch,))
    if setting.channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    mode = None if setting.compile_mode in (None, "default") else setting.compile_mode
    runner = model if setting.compile_mode is None else torch.compile(model, mode=mode)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16) if setting.bf16 else nullcontext():
            loss = torch.nn.functional.cross_entropy(runner(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def warm_up(step: Callable[[], None]) -> float:
    """Seconds of the WARM_UP_STEPS untimed steps (for a compiled setting: mostly its compilation)."""
    started = time.perf_counter()
    for _ in range(WARM_UP_STEPS):
        step()
    return time.perf_counter() - started


def interleaved_seconds(steps: list[Callable[[], None]], rounds: int) -> list[list[float]]:
    """Per step closure, its `rounds` step times (s), one step of each closure per round."""
    timings: list[list[float]] = [[] for _ in steps]
    for _ in range(rounds):
        for index, step in enumerate(steps):
            started = time.perf_counter()
            step()
            timings[index].append(time.perf_counter() - started)
    return timings


# ATen ops reported by op_breakdown: convolutions forward and backward, normalisation, the GEMMs of MLP blocks
BREAKDOWN_OPS = {
    "conv forward": ("aten::mkldnn_convolution", "aten::convolution_overrideable"),
    "conv backward": ("aten::convolution_backward",),
    "norm forward + backward": ("aten::native_batch_norm", "aten::native_batch_norm_backward",
                                "aten::native_layer_norm", "aten::native_layer_norm_backward"),
    "matmul (linear layers)": ("aten::mm", "aten::addmm", "aten::bmm"),
}  # fmt: skip


def op_breakdown(step: Callable[[], None], steps: int = 3) -> dict[str, float]:
    """Seconds per step in each BREAKDOWN_OPS group and in everything else (elementwise ops, copies, the
    optimiser), from torch.profiler's self CPU time over `steps` already warmed-up steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(steps):
            step()
    self_us = {event.key: event.self_cpu_time_total for event in profiler.key_averages()}
    total = sum(self_us.values())
    groups = {name: sum(self_us.get(op, 0.0) for op in ops) for name, ops in BREAKDOWN_OPS.items()}
    groups["everything else"] = total - sum(groups.values())
    return {name: round(us / 1e6 / steps, 4) for name, us in groups.items()}


def median(values: list[float]) -> float:
    """The middle value (the upper one of an even count)."""
    return sorted(values)[len(values) // 2]


def data_path_seconds(work: Workload, rounds: int = 5) -> float:
    """Median seconds to turn one uint8 batch into the step's inputs as kdedge's loop does (on the device:
    the recipe's augmentation, normalisation, channels_last), the part of a step the timed rows leave out."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (work.batch, 3, work.image_size, work.image_size), dtype=torch.uint8)
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        inputs = normalize(augment(images, work.augment, generator), (0.5,) * 3, (0.25,) * 3)
        inputs.contiguous(memory_format=torch.channels_last)
        seconds.append(time.perf_counter() - started)
    return median(seconds)
