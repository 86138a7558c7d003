"""The run directory: weights (safetensors) + the recipe that made them + metrics, and its lock. Every
write is atomic (temp file in the same folder, then os.replace), so a crash never leaves a half-written file.

RUN/recipe.yaml          the resolved recipe
RUN/teacher.safetensors  RUN/student.safetensors
RUN/metrics.jsonl        one JSON line per epoch per stage
RUN/summary.json         {"teacher": {"test_accuracy", "test_errors", "params", ...}, "student": {...}}, written
                         once, when the run finishes

A stage's weights file also carries, in its safetensors header (RESULTS_KEY), the summary entries known when
it was written ({"data": ..., "<stage>": ...}): a stopped run's finished stages are resumed from them.
RunDir.load_model(stage) rebuilds a stage's trained model (kdedge.models builds, kdedge.models.weights loads).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kdedge.errors import InputError
from kdedge.files.atomic import atomic_write_text, save_state
from kdedge.files.fsguard import disk_full_as_error
from kdedge.losses import LOSSES, describe_weights
from kdedge.recipe import Recipe, validate_recipe
from kdedge.ui.console import warn

if TYPE_CHECKING:  # torch only for the hints: reading a run's recipe or summary needs no torch
    from torch import nn

RESULTS_KEY = "kdedge.results"  # in a stage's weights file: the summary entries of that stage, as JSON


class RunDir:
    """A self-describing run directory; only the process that holds its lock writes to it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # -- creation and locking -------------------------------------------------------------------
    def open_for_writing(self, force: bool) -> RunDir:
        """Create (or, with force, reuse) the folder and take its lock; a finished run needs force."""
        if self.read_summary().get("finished") and not force:
            raise InputError(
                f"{self.path} already holds a finished run; pass --force to overwrite or choose another --out"
            )
        lock = self.path / ".lock"
        with disk_full_as_error(lock):  # a read-only folder or a full disk: one line, nothing written
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = lock.read_text().strip()
                if _lock_is_live(lock):
                    raise InputError(
                        f"{self.path} is being written by another kdedge process "
                        f"(pid {owner}); wait for it or choose another --out"
                    ) from None
                warn(f"{lock}: took over the lock of process {owner or '?'}, which no longer runs")
                lock.unlink(missing_ok=True)  # stale lock of a killed run
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
        return self

    def release(self) -> None:
        lock = self.path / ".lock"
        if lock.exists() and lock.read_text().strip() == str(os.getpid()):
            lock.unlink()

    # -- contents -------------------------------------------------------------------------------
    def write_recipe(self, recipe: Recipe) -> None:
        d = recipe.distillation  # the loss convention, said where a reader of the run looks
        header = (
            f"# loss convention: distillation.alpha = weight of the SOFT (teacher) term; this run used "
            f"alpha = {d.soft_weight:g} (hard-label term {1 - d.soft_weight:g})\n"
        )
        if "alpha" not in LOSSES.get(d.loss).inputs:
            header = f"# loss {d.loss}: {describe_weights(d.loss, d.soft_weight, d.temperature, d.loss_kwargs)}\n"
        body = yaml.safe_dump(recipe.to_dict(), sort_keys=False)
        atomic_write_text(self.path / "recipe.yaml", header + body)

    def read_recipe(self) -> Recipe:
        from kdedge.recipe import read_yaml

        file = self.path / "recipe.yaml"
        if not file.is_file():
            raise InputError(f"{self.path} is not a kdedge run directory (no recipe.yaml)")
        return validate_recipe(read_yaml(file), source=str(file))

    def weights(self, stage: str) -> Path:
        return self.path / f"{stage}.safetensors"

    def save_weights(self, stage: str, model: nn.Module, recipe: Recipe, results: dict | None = None) -> None:
        """RUN/<stage>.safetensors; `results`: the summary entries these weights stand for, kept in the
        file's header so that a resumed run knows them without summary.json."""
        state = unwrapped(model).state_dict()
        metadata = {"stage": stage, "recipe_sha": recipe.fingerprint()}
        if results is not None:
            metadata[RESULTS_KEY] = json.dumps(results)
        save_state(self.weights(stage), state, metadata)

    def stage_results(self, stage: str) -> dict[str, Any]:
        """The summary entries kept in RUN/<stage>.safetensors' header ({} when it has none: a file written
        before kdedge kept them). An unreadable header is bad input, said with the file's name."""
        from safetensors import SafetensorError, safe_open

        path = self.weights(stage)
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            return json.loads(metadata.get(RESULTS_KEY, "{}"))
        except (SafetensorError, OSError, ValueError) as err:
            raise InputError(f"{path}: not a valid safetensors file ({err})") from None

    def data_entry(self, stage: str = "teacher") -> dict[str, Any]:
        """summary.json's "data" entry; for a run stopped before it finished, the one kept with its weights
        (`stage`'s, else the other stage's); {} when there is neither."""
        if data := self.read_summary().get("data"):
            return data
        for name in dict.fromkeys((stage, "teacher", "student")):
            if self.weights(name).is_file():
                return self.stage_results(name).get("data", {})
        return {}

    def load_model(self, stage: str) -> tuple[nn.Module, dict[str, Any]]:
        """(the trained `stage` model in eval mode, the data info of summary.json) for 'teacher' or 'student'."""
        from kdedge.models.builders import build_model
        from kdedge.models.weights import load_weights_into

        recipe = self.read_recipe()
        cfg = getattr(recipe, stage)
        info = self.data_entry(stage) if self.weights(stage).is_file() else None
        if cfg is None or not info:
            raise InputError(f"{self.path} has no trained {stage} (missing {self.weights(stage).name})")
        model = build_model(cfg.model, info["num_classes"], info["in_channels"], info["image_size"], cfg.model_kwargs)
        load_weights_into(model, self.weights(stage), stage)
        return model.eval(), info

    def append_metrics(self, record: dict[str, Any]) -> None:
        file = self.path / "metrics.jsonl"
        previous = file.read_text() if file.exists() else ""
        atomic_write_text(file, previous + json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        file = self.path / "metrics.jsonl"
        return [json.loads(line) for line in file.read_text().splitlines() if line] if file.exists() else []

    def read_summary(self) -> dict[str, Any]:
        file = self.path / "summary.json"
        return json.loads(file.read_text()) if file.exists() else {}

    def write_summary(self, summary: dict[str, Any]) -> None:
        """RUN/summary.json, once, when the run has finished (kdedge.train.pipeline.run_recipe)."""
        atomic_write_text(self.path / "summary.json", json.dumps(summary, indent=2))

    def update_summary(self, stage: str, values: dict[str, Any]) -> None:
        """Set one entry of summary.json (for tools that assemble a run folder by hand, e.g. tests)."""
        summary = self.read_summary()
        summary[stage] = values
        atomic_write_text(self.path / "summary.json", json.dumps(summary, indent=2))


def unwrapped(model: nn.Module) -> nn.Module:
    """The plain module inside DDP / torch.compile wrappers (their state-dict keys carry prefixes)."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _lock_is_live(lock: Path) -> bool:
    try:
        pid = int(lock.read_text().strip() or 0)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, FileNotFoundError):
        return False
    except PermissionError:
        return True
    return pid != 0


def data_info(bundle) -> dict[str, Any]:
    """What export, bench and predict need to rebuild a model and pre-process its input, without the data."""
    return {
        "dataset": bundle.name,
        "num_classes": bundle.num_classes,
        "in_channels": bundle.in_channels,
        "image_size": bundle.image_size,
        "mean": list(bundle.mean),
        "std": list(bundle.std),
        "class_names": list(bundle.class_names),
    }


def remembered_data_root(summary: dict[str, Any], data_root: str | None) -> str | None:
    """--data-root when given, else the folder (or CSV) the run read its data from when it still exists,
    else None ($KDEDGE_DATA): export / eval / bench of a run need no environment variable."""
    root = summary.get("data", {}).get("root")
    if data_root or not root or not Path(root).exists():
        return data_root
    return root
