"""The run directory: weights (safetensors) + the recipe that made them + metrics. Every write is
atomic (temp file in the same folder, then os.replace), so a crash never leaves a half-written file.

RUN/recipe.yaml          the resolved recipe
RUN/teacher.safetensors  RUN/student.safetensors
RUN/metrics.jsonl        one JSON line per epoch per stage
RUN/summary.json         {"teacher": {"test_accuracy", "test_errors", "params", ...}, "student": {...}}
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import nn

from kdedge.console import warn
from kdedge.errors import InputError
from kdedge.fsguard import disk_full_as_error
from kdedge.integrity import read_verified, with_checksum
from kdedge.model_check import check_model_file
from kdedge.recipe import Recipe, validate_recipe


def shared_mode(mode: int) -> int:
    """`mode` minus this process's umask: what an ordinary mkdir / open would have given."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def atomic_write(path: Path, write: Callable[[Path], None], needed: int | None = None) -> None:
    """Call write(tmp_path) on a temp file next to `path`, then rename it over `path` with the permissions
    a plain open() would give (mkstemp's owner-only 0600 would hide run files from a team's other users).
    A full disk is one DiskFull line naming `path` and the space it needs (`needed` bytes when known);
    the previous `path` is untouched either way."""
    with disk_full_as_error(path, needed):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            write(tmp)
            os.chmod(tmp, shared_mode(0o666))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text), len(text.encode()))


def save_state(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Tensors + string metadata as safetensors, atomically, with a sha256 checked on load (integrity)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    metadata = with_checksum(tensors, metadata)
    needed = sum(t.numel() * t.element_size() for t in tensors.values()) + len(json.dumps(metadata)) + 4096
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata), needed)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Weights from .safetensors (or a foreign .pt/.pth via torch.load(weights_only=True)); never unpickles
    code."""
    if not path.is_file():
        raise InputError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        check_model_file(path)  # an absurd header (sizes, offsets) is refused before safetensors reads it
    if path.suffix in (".pt", ".pth", ".bin"):
        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols on stderr: one line only
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any failure of an untrusted file is bad input
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            reason = next((line for line in lines if line.startswith("Unsupported")), (lines or [""])[0])
            raise InputError(f"{path}: not a plain tensor checkpoint; torch.load(weights_only=True) refused "
                             f"it ({reason[:100]}); kdedge loads tensors only, never pickled code") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise InputError(f"{path}: expected a mapping of parameter names to tensors")
        return state
    try:
        return read_verified(path)[0]  # a checksum kdedge wrote is checked before any tensor is used
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(f"{path}: not a valid safetensors file ({err})") from None


def load_weights_into(model: nn.Module, path: Path, what: str) -> None:
    """Load a state dict into `model`; a mismatch (other architecture / class count) is one clear line."""
    state = load_state(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong or len(state) != len(own):
        if wrong:
            detail = (f"shape of '{wrong[0]}' is {tuple(state[wrong[0]].shape)}, "
                      f"model wants {tuple(own[wrong[0]].shape)}")  # fmt: skip
        else:
            detail = (f"{len(missing)} of the model's tensors missing (e.g. '{(missing or ['?'])[0]}'), "
                      f"{len(state)} in file vs {len(own)} in model")  # fmt: skip
        raise InputError(f"{what} weights {path} do not fit the recipe's model: {detail}")
    model.load_state_dict(state)


def weights_path(checkpoint: str, stage: str) -> Path:
    """A weights file, or a run directory (its <stage>.safetensors, else the other stage's)."""
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        for name in (f"{stage}.safetensors", "teacher.safetensors", "student.safetensors"):
            if (path / name).is_file():
                return path / name
        raise InputError(f"{stage}.checkpoint: run directory {path} has no teacher/student .safetensors")
    if not path.exists():
        raise InputError(f"{stage}.checkpoint: {path} does not exist")
    return path


class RunDir:
    """A self-describing run directory; only the process that holds its lock writes to it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # -- creation and locking -------------------------------------------------------------------
    def open_for_writing(self, force: bool) -> RunDir:
        """Create (or, with force, reuse) the folder and take its lock; a finished run needs force."""
        if self.read_summary().get("finished") and not force:
            raise InputError(f"{self.path} already holds a finished run; pass --force to overwrite or choose "
                             "another --out")  # fmt: skip
        lock = self.path / ".lock"
        with disk_full_as_error(lock):  # a read-only folder or a full disk: one line, nothing written
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = lock.read_text().strip()
                if _lock_is_live(lock):
                    raise InputError(f"{self.path} is being written by another kdedge process "
                                     f"(pid {owner}); wait for it or choose another --out") from None
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
        alpha = recipe.distillation.soft_weight  # the loss convention, said where a reader of the run looks
        header = (f"# loss convention: distillation.alpha = weight of the SOFT (teacher) term; this run used "
                  f"alpha = {alpha:g} (hard-label term {1 - alpha:g})\n")  # fmt: skip
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

    def save_weights(self, stage: str, model: nn.Module, recipe: Recipe) -> None:
        state = _unwrapped(model).state_dict()
        save_state(self.weights(stage), state, {"stage": stage, "recipe_sha": recipe.fingerprint()})

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

    def update_summary(self, stage: str, values: dict[str, Any]) -> None:
        summary = self.read_summary()
        summary[stage] = values
        atomic_write_text(self.path / "summary.json", json.dumps(summary, indent=2))


def _unwrapped(model: nn.Module) -> nn.Module:
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
    return {"dataset": bundle.name, "num_classes": bundle.num_classes, "in_channels": bundle.in_channels,
            "image_size": bundle.image_size, "mean": list(bundle.mean), "std": list(bundle.std),
            "class_names": list(bundle.class_names)}  # fmt: skip


def build_stage_model(cfg, info: dict[str, Any]) -> nn.Module:
    """The recipe's model for one stage (StageConfig), with pretrained weights when the recipe asks."""
    from kdedge.models import build_model

    model = build_model(cfg.model, info["num_classes"], info["in_channels"], info["image_size"],
                        cfg.model_kwargs)  # fmt: skip
    if cfg.checkpoint:
        return model  # the stage's own checkpoint replaces every weight: no pretrained download needed
    if isinstance(cfg.pretrained, str):
        load_pretrained(model, Path(cfg.pretrained).expanduser(), cfg.model)
    elif cfg.pretrained:
        load_pretrained_from_hub(model, cfg.model)
    return model


def load_pretrained(model: nn.Module, path: Path, name: str) -> None:
    """Backbone weights from a local file; the classifier head is kept fresh when its class count differs."""
    state = load_state(path)
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    skipped = [k for k in own if k not in fitting]
    if not fitting or len(skipped) > 4:  # more than a classifier's weight+bias (x2 for distilled heads)
        raise InputError(f"pretrained weights {path} do not fit model '{name}': {len(fitting)} of "
                         f"{len(own)} tensors match (first mismatch '{(skipped or ['?'])[0]}')")  # fmt: skip
    model.load_state_dict(fitting, strict=False)


def load_pretrained_from_hub(model: nn.Module, name: str) -> None:
    """timm's pretrained weights (needs internet, or timm's/HF's local cache)."""
    from kdedge.models import TIMM_MODELS

    if name not in TIMM_MODELS:
        raise InputError(f"pretrained: true is only available for timm models ({', '.join(TIMM_MODELS)}), "
                         f"not '{name}'; use a file path or false")  # fmt: skip
    import huggingface_hub.constants as hub
    import timm

    offline = not _hub_resolvable()  # then only HF's local cache is tried: fails at once, not after retries
    was_offline, hub.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE or offline
    try:
        reference = timm.create_model(name, pretrained=True)
    except Exception as err:  # noqa: BLE001 - network / hub failures all mean the same to the user
        why = (f"could not be downloaded ({type(err).__name__})" if not offline
               else "huggingface.co is unreachable and they are not in the local Hugging Face cache")
        raise InputError(f"pretrained weights for '{name}': {why}; give a local .safetensors file with "
                         "pretrained: PATH, or pretrained: false") from None  # fmt: skip
    finally:
        hub.HF_HUB_OFFLINE = was_offline
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "weights.safetensors"
        save_state(file, reference.state_dict())
        load_pretrained(model, file, name)


def _hub_resolvable(host: str = "huggingface.co") -> bool:
    """Whether the hub's name resolves (no network: fails at once, unlike the hub client's retries)."""
    import socket

    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def load_run_model(run: RunDir, stage: str) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode with the run's weights, data info) for 'teacher' or 'student'."""
    recipe = run.read_recipe()
    info = run.read_summary().get("data")
    cfg = getattr(recipe, stage)
    if cfg is None or info is None or not run.weights(stage).is_file():
        raise InputError(f"{run.path} has no trained {stage} (missing {run.weights(stage).name})")
    from kdedge.models import build_model

    model = build_model(cfg.model, info["num_classes"], info["in_channels"], info["image_size"],
                        cfg.model_kwargs)  # fmt: skip
    load_weights_into(model, run.weights(stage), stage)
    return model.eval(), info
