"""Models by name: the table. kdedge's own builders (kdedge/models/builders.py) are listed here by name and
imported on first use; every architecture timm knows is a model too, by its timm name (timm_names.py). This
file imports neither torch nor timm, so a recipe's names are checked at once.

Building a model: kdedge.models.builders.build_model; weights in and out: kdedge.models.weights.
"""

from __future__ import annotations

from kdedge.models.timm_names import is_timm_name, timm_names
from kdedge.registry import Registry

__all__ = ["MODELS", "check_model_name", "is_model", "is_timm_name"]

MODELS: Registry = Registry("model")
# kdedge's own architectures (papers' MNIST / CIFAR nets); a new one: its builder in builders.py + its name here
MODELS.add_lazy(
    "kdedge.models.builders", ("mlp", "mnist_cnn", "small_cnn", "alexnet_cifar", "cifar_resnet18", "cifar_resnet50")
)


def is_model(name: str) -> bool:
    """A kdedge builder's name or any timm architecture name."""
    return name in MODELS or is_timm_name(name)


def check_model_name(name: str) -> str:
    """`name` when it is a model; else ValueError "unknown model 'x', did you mean 'y'? ..." (suggestions
    from kdedge's names and timm's)."""
    if not is_model(name):
        raise ValueError(MODELS.unknown_message(name, extra=timm_names()))
    return name
