"""Training one candidate for one rung of the search: the recipe's student section with the candidate's model,
input size and epochs, distilled from the search's one teacher into an ordinary run directory
(SEARCH/candidates/<name>/e<epochs>/: recipe.yaml, student.safetensors, summary.json, metrics.jsonl), so
`kdedge export`, `bench` and `predict` take it as they take any run.

The teacher keeps its own input size: a candidate at another size trains on the images resized to its
size, and the teacher sees those same images resized back to the size it was trained on (TeacherView), so
both look at the same picture. Its logits are computed once per input size and kept in
SEARCH/teacher_logits/<size>px.safetensors for every candidate of that size (kdedge.train.teacher_cache).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdedge.errors import InputError
from kdedge.experiments.search.space import Candidate
from kdedge.files.rundir import RunDir
from kdedge.recipe import Recipe, validate_recipe


@dataclass(frozen=True)
class TeacherSource:
    """The search's teacher: its weights file, the input side it was trained at and its normalisation."""

    weights: str
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class CandidateJob:
    """Everything a worker (here or on Ray) needs to train one candidate at one rung; plain data."""

    name: str
    epochs: int
    config: dict[str, Any]  # the candidate's resolved recipe
    run_dir: str
    teacher: TeacherSource | None
    logits_file: str | None
    data_root: str | None
    threads: int | None = None  # torch threads in a worker (None: leave as is)


class TeacherView(nn.Module):
    """The teacher fed what the student sees: images normalised for the student (N, C, s, s) are
    un-normalised, resized (bilinear) to the teacher's side and normalised for the teacher; logits (N, K)."""

    def __init__(self, teacher: nn.Module, side: int, student_norm: tuple, teacher_norm: tuple) -> None:
        super().__init__()
        self.teacher, self.side = teacher, side
        as_buffer = lambda values: torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)  # noqa: E731
        self.register_buffer("student_mean", as_buffer(student_norm[0]))
        self.register_buffer("student_std", as_buffer(student_norm[1]))
        self.register_buffer("teacher_mean", as_buffer(teacher_norm[0]))
        self.register_buffer("teacher_std", as_buffer(teacher_norm[1]))

    def extra_repr(self) -> str:
        return f"side={self.side}"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images * self.student_std + self.student_mean
        if pixels.shape[-1] != self.side or pixels.shape[-2] != self.side:
            pixels = nn.functional.interpolate(pixels, size=(self.side, self.side), mode="bilinear", antialias=True)
        return self.teacher((pixels - self.teacher_mean) / self.teacher_std)


class DataMemo:
    """Data sets loaded once per (data section, seed, data root) in this process: a search asks for the same
    data for every candidate of an input size, and some sources take seconds to parse."""

    def __init__(self) -> None:
        self._bundles: dict[str, Any] = {}

    def __call__(self, recipe: Recipe, data_root: str | None):
        """prepare_data(recipe, data_root), from memory the second time (a DataBundle; nothing changes it)."""
        from kdedge.train.prepare import prepare_data

        key = json.dumps([recipe.data.model_dump(mode="json"), recipe.seed, data_root], sort_keys=True)
        if key not in self._bundles:
            self._bundles[key] = prepare_data(recipe, data_root)
        return self._bundles[key]


def candidate_recipe(
    base: Recipe,
    candidate: Candidate,
    epochs: int,
    teacher_weights: str | None,
    val_size: int | None,
    seed: int | None = None,
) -> Recipe:
    """The base recipe with the candidate's student model, input side and epochs, the search's teacher
    weights, and (when the data has no validation split) data.val_size; no sweep, no bias fix. `seed`:
    another seed for the whole run (--seeds)."""
    config = base.to_dict() | ({"seed": seed} if seed is not None else {})
    student = config["student"] | {"model": candidate.model, "model_kwargs": candidate.model_kwargs, "epochs": epochs}
    if not candidate.own:
        student["pretrained"] = False  # the recipe's pretrained weights belong to its own student's model
    config |= {"student": student, "sweep": None}
    config["data"] = config["data"] | {"image_size": candidate.image_size}
    if val_size:
        config["data"]["val_size"] = val_size
    if teacher_weights and config.get("teacher"):
        config["teacher"] = config["teacher"] | {"checkpoint": teacher_weights}
    config["distillation"] = config["distillation"] | {"bias_fix": None}
    return validate_recipe(config, source=f"search candidate {candidate.name}")


def load_teacher(source: TeacherSource, recipe: Recipe, bundle, device: torch.device, channels_last: bool) -> nn.Module:
    """The teacher in eval mode on `device`, wrapped in a TeacherView when the student's input differs."""
    from kdedge.models.builders import build_model
    from kdedge.models.weights import load_weights_into

    cfg = recipe.teacher
    teacher = build_model(cfg.model, bundle.num_classes, bundle.in_channels, source.image_size, cfg.model_kwargs)
    load_weights_into(teacher, Path(source.weights), "teacher")
    same = bundle.image_size == source.image_size and (tuple(bundle.mean), tuple(bundle.std)) == (
        tuple(source.mean),
        tuple(source.std),
    )
    view = (
        teacher
        if same
        else TeacherView(teacher, source.image_size, (bundle.mean, bundle.std), (source.mean, source.std))
    )
    view = view.to(device)
    return (view.to(memory_format=torch.channels_last) if channels_last else view).eval()


def train_candidate(job: CandidateJob, load: Callable | None = None) -> dict[str, Any]:
    """Train (or, when its run directory finished already, read) one candidate with the pipeline's
    distill_student; returns its summary (written once, at the end, as `kdedge distill` writes it). A
    stopped training continues from its last checkpoint (kdedge.train.resume), bit for bit. `load(recipe,
    data_root)`: the data (default: loaded here; a search passes its DataMemo)."""
    from kdedge.train.pipeline import distill_student
    from kdedge.train.prepare import RunMetrics, data_record, make_context, prepare_data, write_run_files
    from kdedge.train.resume import Checkpointer

    run = RunDir(Path(job.run_dir))
    recipe = validate_recipe(job.config, source=job.run_dir)
    if run.read_summary().get("finished"):
        if not same_recipe(run.read_recipe(), recipe):  # a space edited between two runs of the search
            raise InputError(f"{run.path} holds a run of another recipe than {job.name}'s; delete it to retrain")
        return run.read_summary()
    if job.threads:
        torch.set_num_threads(job.threads)
    if job.teacher is None and recipe.distillation.loss != "none":
        raise InputError(f"{job.name}: the recipe distils from a teacher, and the search has none")
    run.open_for_writing(force=False)
    try:
        bundle = (load or prepare_data)(recipe, job.data_root)
        logits = Path(job.logits_file) if job.logits_file else None
        ctx = make_context(recipe, bundle, None, RunMetrics(run, False), logits)
        write_run_files(recipe, bundle, run)
        teacher = None
        if job.teacher is not None and recipe.distillation.loss != "none":
            teacher = load_teacher(job.teacher, recipe, bundle, ctx.device, ctx.channels_last)
        checkpointer = Checkpointer(run, recipe, resume=True)
        result = distill_student(recipe, bundle, teacher, run, ctx=ctx, checkpointer=checkpointer)
        summary = {"data": data_record(bundle)} | result.entries | {"finished": True}
        run.write_summary(summary)
    finally:
        run.release()
    return summary


def same_recipe(saved: Recipe, wanted: Recipe) -> bool:
    """The run's recipe.yaml is `wanted` (a run records the mean / std it measured where the recipe left them
    to be measured: not a difference)."""
    if wanted.data.mean is None and wanted.data.std is None:
        saved = saved.model_copy(update={"data": saved.data.model_copy(update={"mean": None, "std": None})})
    return saved.fingerprint() == wanted.fingerprint()
