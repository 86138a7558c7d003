"""Training-time augmentation of uint8 image batches, on the tensors' own device (no per-sample Python).

kinds: 'none', 'jitter' (Hinton's MNIST shifts of up to 2 px), 'affine' (jitter + rotation + zoom), 'elastic'
(affine + Simard et al. 2003's elastic distortion) and 'crop_flip' (the CIFAR pad-4 random crop + horizontal
flip). Jitter has only 25 outcomes per image, which lets the training loop cache a teacher's logits for every
one of them (kdedge.train.teacher_cache.teacher_logits_for).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

JITTER_PX = 2  # Hinton's MNIST jitter: shifts of up to 2 pixels in each direction
JITTER_VARIANTS = (2 * JITTER_PX + 1) ** 2  # 25 distinct jittered copies of an image
ELASTIC_MNIST = (34.0, 4.0)  # Simard et al. 2003's (alpha, sigma) in pixels, for 28x28 digits


def shift_images(
    images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, max_shift: int, mirrored: torch.Tensor | None = None
) -> torch.Tensor:
    """Shift image i by (dy[i] - max_shift, dx[i] - max_shift) pixels, zero fill; mirror it horizontally
    where mirrored[i]. images (N, C, H, W); dy, dx (N,) int64 in [0, 2 * max_shift]; same shape out."""
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, :]  # (N, 1, W)
    if mirrored is not None:
        cols = torch.where(mirrored[:, None, None], cols.flip(-1), cols)
    batch_index = torch.arange(n, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch_index, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator, flip: bool = False) -> torch.Tensor:
    """Shift each image by its own random (dy, dx) in [-max_shift, max_shift], zero fill; optional random
    horizontal flip. (N, C, H, W) -> same shape; vectorised, no per-sample Python."""
    dy, dx = _random_offsets(images, max_shift, generator)
    mirrored = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device) if flip else None
    return shift_images(images, dy, dx, max_shift, mirrored)


def _random_offsets(
    images: torch.Tensor, max_shift: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (dy, dx), each (N,) int64 in [0, 2 * max_shift] on the images' device (dy drawn first)."""
    n = images.shape[0]
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator).to(images.device)
    return dy, dx


def jitter_variant(images: torch.Tensor, variant: int) -> torch.Tensor:
    """Every image shifted by jitter variant `variant` in [0, JITTER_VARIANTS): dy = variant // 5,
    dx = variant % 5 (offsets from -2). (N, C, H, W) -> same shape."""
    side = 2 * JITTER_PX + 1
    dy = torch.full((images.shape[0],), variant // side, device=images.device)
    dx = torch.full((images.shape[0],), variant % side, device=images.device)
    return shift_images(images, dy, dx, JITTER_PX)


def random_affine(
    images: torch.Tensor,
    generator: torch.Generator,
    degrees: float = 10.0,
    scale: float = 0.1,
    max_shift: int = 2,
    elastic: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Per-image random rotation (+-degrees), zoom (1 +- scale) and integer shift (+-max_shift px), bilinear,
    zero fill; with elastic = (alpha, sigma) also an elastic distortion (elastic_offsets). uint8 (N, C, H, W)
    -> uint8, same shape; one batched grid_sample, no per-sample Python."""
    n, _, h, w = images.shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(degrees)
    zoom = 1 + (torch.rand(n, generator=generator) * 2 - 1) * scale
    shift = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator).float()
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # theta maps output to input coordinates in [-1, 1]: one pixel is 2 / size
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0] * 2 / w], 1), torch.stack([sin, cos, shift[:, 1] * 2 / h], 1)], 1
    ).to(images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    if elastic is not None:
        grid = grid + elastic_offsets(n, h, w, *elastic, generator).to(images.device)
    warped = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped.round_().clamp_(0, 255).to(torch.uint8)


def elastic_offsets(n: int, h: int, w: int, alpha: float, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Simard et al. 2003's elastic distortion as grid_sample offsets (N, H, W, 2) float32: a field uniform in
    [-1, 1] per pixel and axis, smoothed by a Gaussian of `sigma` px and scaled by `alpha` px (34 and 4 for
    MNIST: displacements of about 1.4 px that vary smoothly across the digit)."""
    field = torch.empty(n * 2 * h, w).uniform_(-1, 1, generator=generator)
    # separable Gaussian blur (zero beyond the border) as two plain matrix products, along rows then along
    # columns: on a CPU far faster than a 1-channel conv2d with a 25-tap kernel
    field = (field @ _gaussian_matrix(w, sigma)).view(n * 2, h, w).transpose(1, 2).reshape(n * 2 * w, h)
    field = (field @ _gaussian_matrix(h, sigma)).view(n, 2, w, h).permute(0, 3, 2, 1)  # (N, H, W, 2): x, y
    return field * torch.tensor([2 * alpha / w, 2 * alpha / h])  # pixels -> grid_sample's units (2 / size)


def _gaussian_matrix(size: int, sigma: float) -> torch.Tensor:
    """(size, size) float32: row i holds the normalised Gaussian weights of every pixel around pixel i,
    cut at 3 sigma."""
    radius = math.ceil(3 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    distance = torch.arange(size, dtype=torch.float32)[:, None] - torch.arange(size, dtype=torch.float32)
    weights = torch.exp(-(distance**2) / (2 * sigma**2)) * (distance.abs() <= radius)
    return weights / torch.exp(-(taps**2) / (2 * sigma**2)).sum()  # the full kernel's sum: zero beyond the border


def augment(images: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Training-time augmentation on a uint8 batch: 'none', 'jitter' (shift <= 2 px, Hinton's MNIST
    teacher), 'affine' (jitter plus rotation <= 10 degrees and zoom <= 10%, a stronger MNIST teacher),
    'elastic' (affine plus an elastic distortion, Simard et al. 2003) or 'crop_flip' (pad-4 random crop +
    horizontal flip, the CIFAR standard)."""
    return augment_with_variant(images, kind, generator)[0]


def augment_with_variant(
    images: torch.Tensor, kind: str, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`augment`, plus for 'jitter' which of the JITTER_VARIANTS each image became ((B,) int64, else None):
    jitter has only 25 outcomes, so a teacher's logits for all of them can be computed once and indexed."""
    if kind == "jitter":
        dy, dx = _random_offsets(images, JITTER_PX, generator)
        return shift_images(images, dy, dx, JITTER_PX), dy * (2 * JITTER_PX + 1) + dx
    if kind == "affine":
        return random_affine(images, generator), None
    if kind == "elastic":
        return random_affine(images, generator, elastic=ELASTIC_MNIST), None
    if kind == "crop_flip":
        return random_shift(images, 4, generator, flip=True), None
    return images, None
