"""Where a run trains: device resolution ('auto' | 'cpu' | 'cuda') and mixed-precision autocast."""

from __future__ import annotations

import contextlib

import torch

from kdedge.errors import InputError


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present else CPU; an explicit 'cuda' without a GPU is bad input."""
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device: 'cuda' requested but no CUDA device is present (use device=auto or cpu)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def describe_device(name: str) -> str:
    """The one line a run prints about where it trains, e.g. 'device: cpu (auto: no CUDA device found)'."""
    device = resolve_device(name)
    if name != "auto":
        return f"device: {device.type} (from the recipe)"
    found = "no CUDA device found" if device.type == "cpu" else f"CUDA found: {torch.cuda.get_device_name(0)}"
    return f"device: {device.type} (auto: {found})"


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 / fp16 autocast on CUDA for amp 'bf16' / 'fp16'; nothing on a CPU or with amp 'off'."""
    if amp == "off" or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
