"""Models by name: builders (kdedge.models.builders, registered in MODELS) and weights in and out of them
(kdedge.models.weights: safe loading, pretrained backbones, a run's trained model)."""

from kdedge.models.builders import (
    MODELS,
    TIMM_MODELS,
    build_model,
    check_input_size,
    count_params,
    output_bias,
)
from kdedge.models.weights import (
    build_stage_model,
    load_pretrained,
    load_pretrained_from_hub,
    load_run_model,
    load_state,
    load_weights_into,
    weights_path,
)

__all__ = [
    "MODELS",
    "TIMM_MODELS",
    "build_model",
    "build_stage_model",
    "check_input_size",
    "count_params",
    "load_pretrained",
    "load_pretrained_from_hub",
    "load_run_model",
    "load_state",
    "load_weights_into",
    "output_bias",
    "weights_path",
]
