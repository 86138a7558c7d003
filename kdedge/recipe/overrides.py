"""`--set a.b=value`: parse the assignments, check each dotted key against a pydantic schema, apply them.

Values are YAML scalars here (`3`, `2.5`, `[64, 64]`, `{hidden: [16]}`); the schema types and bounds them
when the recipe is validated. The schema is a parameter, so this module knows nothing of kdedge.recipe
(which binds it to `Recipe`).
"""

from __future__ import annotations

import json
import typing
from typing import Any

import yaml
from pydantic import BaseModel

from kdedge.errors import InputError, did_you_mean


def plain(value: Any, where: str) -> Any:
    """`value` from yaml.safe_load as JSON types only: dates / times become their ISO text (a recipe means
    the string), mapping keys become strings; bytes (!!binary) and other YAML types are one InputError."""
    if isinstance(value, dict):
        return {str(key): plain(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item, where) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    kind = type(value).__name__
    raise InputError(f"{where}: a {kind} value is not allowed in a recipe (got {str(value)[:40]!r})")


def schema_children(model_cls: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """field name -> nested model class (or None for a leaf / free-form dict)."""
    children: dict[str, type[BaseModel] | None] = {}
    for name, field in model_cls.model_fields.items():
        nested = None
        for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nested = candidate
        children[name] = nested
    return children


def _is_free_form(model_cls: type[BaseModel], name: str) -> bool:
    """A dict-typed field (model_kwargs, sweep.grid): any key below it is the user's."""
    return typing.get_origin(model_cls.model_fields[name].annotation) is dict


def check_key(key: str, schema: type[BaseModel]) -> None:
    """Raise InputError unless the dotted key names a field of `schema` (free-form below dict fields)."""
    model_cls: type[BaseModel] | None = schema
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if model_cls is None:
            return  # below a free-form mapping such as model_kwargs
        children = schema_children(model_cls)
        if part not in children:
            where = ".".join(parts[:depth]) or "recipe"
            raise InputError(
                f"unknown key '{key}' in {where}:{did_you_mean(part, children)} valid: {', '.join(children)}"
            )
        parent, model_cls = model_cls, children[part]
        if model_cls is None and depth < len(parts) - 1 and not _is_free_form(parent, part):
            raise InputError(f"'{'.'.join(parts[: depth + 1])}' is a value, not a section (in '{key}')")


def apply_overrides(config: dict[str, Any], overrides: dict[str, Any], schema: type[BaseModel]) -> dict[str, Any]:
    """Return a deep copy of config with each dotted key set; keys are checked against `schema`."""
    result = json.loads(json.dumps(config))
    for key, value in overrides.items():
        check_key(key, schema)
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = value
    return result


def parse_set(assignments: list[str]) -> dict[str, Any]:
    """['a.b=3', 'c=x'] -> {'a.b': 3, 'c': 'x'}; values are YAML scalars, typed later by the schema."""
    overrides: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set '{item}': expected KEY=VALUE, e.g. student.epochs=5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
            overrides[key.strip()] = plain(value, f"--set {key.strip()}")
        except yaml.constructor.ConstructorError:  # e.g. !!python/object: never constructed, never a string
            raise InputError(f"--set '{key.strip()}': YAML tags are not allowed (got {raw[:40]!r})") from None
        except yaml.YAMLError:
            overrides[key.strip()] = raw
    return overrides
