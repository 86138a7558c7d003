"""Where a run trains: device resolution ('auto' | 'cpu' | 'cuda') and mixed-precision autocast.

`amp` resolves once per run to the precision actually used ('bf16' | 'fp16' | 'off'): 'auto' picks bf16
(or fp16 on CUDA GPUs without bf16) only where the hardware computes it natively: a CUDA GPU, or a CPU
with AMX / AVX512-BF16 (oneDNN's bf16 kernels). Elsewhere bf16 autocast is emulated and much slower
than fp32 (measured 7x slower for ResNet18 on an AVX2-only CPU), so those CPUs run fp32.
"""

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


def describe_device(name: str, amp: str | None = None) -> str:
    """The one line a run prints about where it trains, e.g. 'device: cpu (auto: no CUDA device found)',
    with `amp` also in which precision ('; precision: fp32 (...)', see describe_amp)."""
    device = resolve_device(name)
    precision = "" if amp is None else f"; {describe_amp(amp, device)}"
    if name != "auto":
        return f"device: {device.type} (from the recipe){precision}"
    found = "no CUDA device found" if device.type == "cpu" else f"CUDA found: {torch.cuda.get_device_name(0)}"
    return f"device: {device.type} (auto: {found}){precision}"


def cpu_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AMX tiles or AVX512-BF16), as PyTorch's cpuinfo sees them."""
    probes = getattr(torch, "cpu", None)  # torch.cpu._is_amx_tile_supported etc. (cpuinfo)
    return any(
        bool(getattr(probes, name, lambda: False)()) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    )


def resolve_amp(amp: str, device: torch.device) -> tuple[str, str]:
    """(precision used: 'bf16' | 'fp16' | 'off', why) for the recipe's amp on `device`.

    CUDA: 'auto' -> bf16 where the GPU has it (Ampere+), else fp16 (with loss scaling); bf16/fp16 as asked.
    CPU: 'auto' and 'bf16' -> bf16 only with native bf16, else fp32; fp16 autocast is never used on a CPU.
    """
    if amp == "off":
        return "off", "from the recipe"
    if device.type == "cuda":
        if amp != "auto":
            return amp, "from the recipe"
        native = torch.cuda.is_bf16_supported()
        return ("bf16", "auto: the GPU computes bf16") if native else ("fp16", "auto: GPU without bf16")
    if device.type == "cpu" and amp in ("auto", "bf16") and cpu_native_bf16():
        return "bf16", f"{amp}: this CPU has native bf16 (AMX / AVX512-BF16)"
    if device.type == "cpu" and amp in ("auto", "bf16"):
        return "off", f"{amp}: fp32, this CPU has no native bf16 (emulated bf16 is slower than fp32)"
    return "off", f"{amp}: fp32, no {amp} autocast on {device.type}"


def describe_amp(amp: str, device: torch.device) -> str:
    """The one line a run prints about its precision, e.g. 'precision: bf16 autocast (auto: ...)'."""
    used, why = resolve_amp(amp, device)
    return f"precision: {'fp32' if used == 'off' else used + ' autocast'} ({why})"


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast for a RESOLVED amp ('bf16' | 'fp16' | 'off', see resolve_amp) on `device`."""
    if amp == "off" or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
