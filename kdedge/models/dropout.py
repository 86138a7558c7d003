"""Dropout whose keep-mask costs a fraction of PyTorch's on a CPU.

PyTorch's CPU dropout draws one Bernoulli sample per element (bernoulli_ with a scalar p), about 25 ns
each on one thread: on Hinton's 784-1200-1200-10 teacher (batch 128) its three dropout layers were 27 % of a
training step's time. `BitDropout` cuts each 63-bit word of the same generator (random_()) into three
16-bit levels and keeps an element where its level is at or above round(p * 2^16): a third of a draw per
element plus cheap integer compares. The drop rate is therefore round(p * 65536) / 65536 (exact for p = 0.5;
0.2 becomes 0.2000122) and the kept values are scaled by 1 / (1 - that rate), so the expected activation is
unchanged, as with nn.Dropout. The masks come from torch's global generator (a seed and a resumed run's
saved RNG state reproduce them), but they are not the masks nn.Dropout would draw: the same seed gives a
different run. On other devices (CUDA's fused dropout is already fast) it is nn.Dropout's F.dropout.
"""

from __future__ import annotations

import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = 1 << 16  # a keep decision compares a 16-bit random level with round(p * LEVELS)
# random_() on int64 draws from [0, 2^63): the top 16 bits of a word are not uniform, the other three
# 16-bit pieces are. Which int16 of a word's four those are depends on the byte order.
_UNIFORM_PIECES = slice(0, 3) if sys.byteorder == "little" else slice(1, 4)


def drop_rate(p: float) -> float:
    """The drop probability BitDropout realises for a requested p: p rounded to a multiple of 1 / 65536."""
    return round(p * LEVELS) / LEVELS


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A bool tensor of `shape` (on the CPU), each element True with probability 1 - drop_rate(p),
    independently: three 16-bit levels per 63-bit random word."""
    count = math.prod(shape)
    words = torch.empty(-(-count // 3), dtype=torch.int64).random_(generator=generator)
    levels = words.view(torch.int16).view(-1, 4)[:, _UNIFORM_PIECES]  # (words, 3), each uniform over int16
    threshold = -(LEVELS // 2) + round(p * LEVELS)  # level >= threshold: 65536 - round(p * 65536) of 65536
    return (levels >= threshold).reshape(-1)[:count].view(shape)


class BitDropout(nn.Module):
    """nn.Dropout(p) with cheaper CPU masks (module docstring): (*) float -> (*) of the same dtype, the
    identity in eval mode."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0 or drop_rate(p) >= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        scale = 1.0 / (1.0 - drop_rate(self.p))
        return x * keep_mask(x.shape, self.p).to(x.dtype).mul_(scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"
