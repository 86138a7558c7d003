"""Weights in and out of models: safe loading (safetensors, or torch.load(weights_only=True)), a stage's
model as the recipe describes it (pretrained backbone from a file or timm's hub), a run's trained model."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

from kdedge.errors import InputError
from kdedge.files.integrity import read_verified
from kdedge.models import is_timm_name
from kdedge.models.builders import build_model, timm_size_kwargs
from kdedge.runtime.check import check_model_file


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
            raise InputError(
                f"{path}: not a plain tensor checkpoint; torch.load(weights_only=True) refused "
                f"it ({reason[:100]}); kdedge loads tensors only, never pickled code"
            ) from None
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
            detail = (
                f"shape of '{wrong[0]}' is {tuple(state[wrong[0]].shape)}, model wants {tuple(own[wrong[0]].shape)}"
            )
        else:
            detail = (
                f"{len(missing)} of the model's tensors missing (e.g. '{(missing or ['?'])[0]}'), "
                f"{len(state)} in file vs {len(own)} in model"
            )
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


def build_stage_model(cfg, info: dict[str, Any]) -> nn.Module:
    """The recipe's model for one stage (StageConfig), with pretrained weights when the recipe asks."""
    model = build_model(cfg.model, info["num_classes"], info["in_channels"], info["image_size"], cfg.model_kwargs)
    if cfg.checkpoint:
        return model  # the stage's own checkpoint replaces every weight: no pretrained download needed
    if isinstance(cfg.pretrained, str):
        load_pretrained(model, Path(cfg.pretrained).expanduser(), cfg.model)
    elif cfg.pretrained:
        load_pretrained_from_hub(model, cfg.model, timm_size_kwargs(cfg.model, info["image_size"], cfg.model_kwargs))
    return model


def load_pretrained(model: nn.Module, path: Path, name: str) -> None:
    """Backbone weights from a local file; the classifier head is kept fresh when its class count differs."""
    load_fitting(model, load_state(path), str(path), name)


def load_fitting(model: nn.Module, state: dict[str, torch.Tensor], source: str, name: str) -> None:
    """Load the tensors of `state` whose name and shape fit `model` (all but a classifier head)."""
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    skipped = [k for k in own if k not in fitting]
    if not fitting or len(skipped) > 4:  # more than a classifier's weight+bias (x2 for distilled heads)
        raise InputError(
            f"pretrained weights {source} do not fit model '{name}': {len(fitting)} of "
            f"{len(own)} tensors match (first mismatch '{(skipped or ['?'])[0]}')"
        )
    model.load_state_dict(fitting, strict=False)


def load_pretrained_from_hub(model: nn.Module, name: str, size_kwargs: dict | None = None) -> None:
    """timm's pretrained weights (needs internet, or timm's/HF's local cache); size_kwargs: the img_size a
    fixed-size model was built for (timm resamples the position embeddings to it)."""
    if not is_timm_name(name):
        raise InputError(f"pretrained: true is only available for timm models, not '{name}'; use a file path or false")
    import huggingface_hub.constants as hub
    import timm

    offline = not _hub_resolvable()  # then only HF's local cache is tried: fails at once, not after retries
    was_offline, hub.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE or offline
    try:
        reference = timm.create_model(name, pretrained=True, **(size_kwargs or {}))
    except Exception as err:  # noqa: BLE001 - network / hub failures all mean the same to the user
        why = (
            f"could not be downloaded ({type(err).__name__})"
            if not offline
            else "huggingface.co is unreachable and they are not in the local Hugging Face cache"
        )
        raise InputError(
            f"pretrained weights for '{name}': {why}; give a local .safetensors file with "
            "pretrained: PATH, or pretrained: false"
        ) from None
    finally:
        hub.HF_HUB_OFFLINE = was_offline
    load_fitting(model, reference.state_dict(), f"timm's '{name}'", name)


def _hub_resolvable(host: str = "huggingface.co") -> bool:
    """Whether the hub's name resolves (no network: fails at once, unlike the hub client's retries)."""
    import socket

    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True
