"""Reading a recipe: find it (a path or a packaged name), safe_load its YAML, apply `--set` overrides, validate
it into a Recipe with every problem in one line. Relative paths in a recipe are relative to its folder."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from kdedge.errors import InputError, did_you_mean
from kdedge.recipe import overrides as _overrides
from kdedge.recipe.overrides import schema_children
from kdedge.recipe.schema import Recipe


def packaged_recipes() -> dict[str, Path]:
    """Recipes shipped inside the package: name -> path."""
    folder = resources.files("kdedge") / "recipes"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def find_recipe(path_or_name: str) -> Path:
    """A path to a YAML file, or the name of a packaged recipe ('hinton_mnist')."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    shipped = packaged_recipes()
    if path_or_name in shipped:
        return shipped[path_or_name]
    if path.suffix in (".yaml", ".yml") or "/" in path_or_name:
        raise InputError(
            f"recipe file not found: {path_or_name} (give an existing YAML file or a packaged "
            "recipe name; `kdedge recipes` lists them)"
        )
    hint = did_you_mean(path_or_name, shipped)
    raise InputError(f"no recipe file or packaged recipe named '{path_or_name}';{hint} see `kdedge recipes`")


def read_yaml(path: Path) -> dict[str, Any]:
    """safe_load a YAML mapping; a python tag or a syntax error is one InputError naming the file."""
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise InputError(f"{path}:{where} invalid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read recipe {path}: {err}") from None
    if not isinstance(content, dict):
        raise InputError(f"{path}: a recipe must be a YAML mapping (got {type(content).__name__})")
    return _overrides.plain(content, str(path))  # JSON types only: the recipe is hashed and saved as JSON


def check_key(key: str) -> None:
    """Raise InputError unless the dotted key names a recipe field (free-form below model_kwargs/grid)."""
    _overrides.check_key(key, Recipe)


def apply_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a deep copy of config with each dotted key set; keys are checked against the schema."""
    return _overrides.apply_overrides(config, overrides, Recipe)


def _format_error(error: dict[str, Any], source: str) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "recipe"
    if error["type"] == "extra_forbidden":
        parent: type[BaseModel] | None = Recipe
        for part in error["loc"][:-1]:
            parent = schema_children(parent).get(str(part)) if parent else None
        hint = did_you_mean(str(error["loc"][-1]), schema_children(parent)) if parent else ""
        return f"{source}: unknown key '{where}'{',' + hint if hint else ''}"
    message = error["msg"].removeprefix("Value error, ")
    got = "" if error["type"] in ("missing", "value_error") else f" (got {error.get('input')!r})"
    return f"{source}: {where}: {message}{got}"


def validate_recipe(config: dict[str, Any], source: str = "recipe", overrides: dict[str, Any] | None = None) -> Recipe:
    """dict -> Recipe; every problem is collected into ONE InputError line, each with its key path. A
    problem at (or under) a key given in `overrides` names that `--set`, not the recipe file."""
    try:
        return Recipe.model_validate(config)
    except ValidationError as err:
        raise InputError(
            "; ".join(_format_error(e, _blame(e["loc"], source, overrides or {})) for e in err.errors())
        ) from None


def _blame(loc: tuple, source: str, overrides: dict[str, Any]) -> str:
    """`--set KEY=VALUE` when the error's key path is (under) an overridden key, else the file. A section
    -level error (alpha and hard_weight together) blames a --set of one of its keys."""
    where = ".".join(str(p) for p in loc)
    for key, value in overrides.items():
        if where == key or where.startswith(key + ".") or (where and key.startswith(where + ".")):
            return f"--set {key}={value}"
    return source


def _one_soft_weight(config: dict[str, Any], overrides: dict[str, Any]) -> str | None:
    """A command-line alpha replaces the recipe's hard_weight and vice versa (one number said two ways);
    returns the note to print once, or None."""
    section = config.get("distillation")
    if not isinstance(section, dict):
        return None
    for given, other in (("hard_weight", "alpha"), ("alpha", "hard_weight")):
        key = f"distillation.{given}"
        if key in overrides and f"distillation.{other}" not in overrides and section.get(other) is not None:
            old = section.pop(other)
            return f"note: --set {key}={overrides[key]} replaces the recipe's {other}: {old}"
    return None


def _resolve_paths(config: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative checkpoint / pretrained / data.path paths in a recipe file are relative to its folder."""
    data = config.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        if not Path(data["path"]).expanduser().is_absolute():
            data["path"] = str((base / data["path"]).resolve())
    for stage in ("teacher", "student"):
        section = config.get(stage)
        if not isinstance(section, dict):
            continue
        for key in ("checkpoint", "pretrained"):
            value = section.get(key)
            if isinstance(value, str) and not Path(value).expanduser().is_absolute():
                section[key] = str((base / value).resolve())
    return config


def weight_paths(recipe: Recipe) -> dict[str, str]:
    """{'teacher.checkpoint': '/abs/path', ...}: the files a recipe will read, for the CLI to show."""
    paths = {}
    for stage in ("teacher", "student"):
        cfg = getattr(recipe, stage)
        for key in ("checkpoint", "pretrained"):
            value = getattr(cfg, key, None) if cfg is not None else None
            if isinstance(value, str):
                paths[f"{stage}.{key}"] = value
    return paths


def load_recipe(path_or_name: str, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read, override (`--set`) and validate a recipe given by path or packaged name."""
    path = find_recipe(path_or_name)
    config = _resolve_paths(read_yaml(path), path.parent)
    overrides = overrides or {}
    note = _one_soft_weight(config, overrides)
    for key, value in overrides.items():  # a bad --set key is the command line's fault, not the file's
        try:
            check_key(key)
        except InputError as err:
            raise InputError(f"--set {key}={value}: {err}") from None
    recipe = validate_recipe(apply_overrides(config, overrides), str(path), overrides)
    if note:
        from kdedge.ui.console import error_console

        error_console.print(note, markup=False, highlight=False, soft_wrap=True)
    return recipe
