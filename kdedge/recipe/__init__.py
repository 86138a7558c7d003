"""The recipe: a frozen pydantic model of one experiment (schema.py), read from YAML with `--set` overrides
(load.py, overrides.py). Nothing here imports torch: checking a recipe's names reads the name tables of
kdedge.models, kdedge.data and kdedge.losses only."""

from kdedge.recipe.load import (
    apply_overrides,
    check_key,
    find_recipe,
    load_recipe,
    packaged_recipes,
    read_yaml,
    validate_recipe,
    weight_paths,
)
from kdedge.recipe.overrides import parse_set
from kdedge.recipe.schema import (
    DataConfig,
    DistillConfig,
    ExportConfig,
    Recipe,
    SplitConfig,
    StageConfig,
    SweepConfig,
)

__all__ = [
    "DataConfig",
    "DistillConfig",
    "ExportConfig",
    "Recipe",
    "SplitConfig",
    "StageConfig",
    "SweepConfig",
    "apply_overrides",
    "check_key",
    "find_recipe",
    "load_recipe",
    "packaged_recipes",
    "parse_set",
    "read_yaml",
    "validate_recipe",
    "weight_paths",
]
