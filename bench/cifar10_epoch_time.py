"""Training speed of the CIFAR-10 models on this machine: ms per image for one SGD step (forward, backward,
update) at batch 64 on 32x32 inputs, and the epoch time that implies for the subset and the full set.

    .venv/bin/python bench/cifar10_epoch_time.py

Prints the 1-minute load average too: on a shared machine the numbers scale with it.
"""

from __future__ import annotations

import os
import time

import torch

from kdedge.models.builders import build_model

MODELS = ("small_cnn", "alexnet_cifar", "cifar_resnet18", "cifar_resnet50")


def ms_per_image(name: str, batch: int = 64, steps: int = 3) -> float:
    """Median over `steps` timed SGD steps (after one warm-up step) of step time / batch, in ms."""
    torch.manual_seed(0)
    model = build_model(name, 10, 3, 32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, labels = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    timings = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        timings.append(time.perf_counter() - started)
    return 1000 * sorted(timings[1:])[len(timings[1:]) // 2] / batch


def main() -> None:
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, 1-min load average {load:.1f}")
    print("| model | train ms/img | s/epoch at 3,500 images (subset) | s/epoch at 50,000 (full) |")
    print("| --- | ---: | ---: | ---: |")
    for name in MODELS:
        ms = ms_per_image(name)
        print(f"| {name} | {ms:.1f} | {ms * 3.5:.0f} | {ms * 50:.0f} |", flush=True)


if __name__ == "__main__":
    main()
