"""The search space: a YAML file of model families, each tried at a few input sizes (`kdedge search
--space FILE`, `--show-space`). The packaged one is spaces/edge.yaml; a space names models only (timm or
kdedge names, checked without torch), never code.

A candidate is one (family, input size): `mobilenetv3_small_050@24`. The recipe's own student at the
recipe's own size is always a candidate too (marked `own`), so the table shows what it costs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kdedge.errors import InputError
from kdedge.models import check_model_name

PACKAGED = "edge"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HalvingConfig(_Strict):
    """Successive halving: each rung keeps the best 1/eta (never fewer than `finalists`) and gives them
    eta times the epochs, up to the recipe's own student.epochs for the finalists."""

    eta: Annotated[int, Field(ge=2)] = 3
    finalists: Annotated[int, Field(ge=1)] = 3
    val_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.1  # when the data has no validation split


class Family(_Strict):
    """One architecture (a timm or kdedge model name with its keyword arguments) at several input sizes."""

    model: str
    name: str | None = None  # how the table names it (default: the model name)
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    scales: list[Annotated[float, Field(gt=0, le=8)]] | None = None  # relative to the recipe's image size
    sizes: list[Annotated[int, Field(ge=8, le=1024)]] | None = None  # input sides in pixels
    min_size: Annotated[int, Field(ge=1)] | None = None
    max_size: Annotated[int, Field(ge=1)] | None = None

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        return check_model_name(name)

    @model_validator(mode="after")
    def _one_kind_of_size(self) -> Family:
        if self.scales is not None and self.sizes is not None:
            raise ValueError("give scales or sizes, not both")
        return self

    @property
    def label(self) -> str:
        return self.name or self.model


class SpaceFile(_Strict):
    """A search-space YAML file."""

    name: str
    description: str = ""
    scales: list[Annotated[float, Field(gt=0, le=8)]] | None = None
    sizes: list[Annotated[int, Field(ge=8, le=1024)]] | None = None
    halving: HalvingConfig = Field(default_factory=HalvingConfig)
    families: list[Family] = Field(min_length=1)

    @model_validator(mode="after")
    def _checked(self) -> SpaceFile:
        if self.scales is not None and self.sizes is not None:
            raise ValueError("give scales or sizes, not both")
        labels = [f.label for f in self.families]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"family names must differ; give `name:` to tell apart {', '.join(twice)}")
        return self


@dataclass(frozen=True)
class Candidate:
    """One student to try: a model (with keyword arguments) at one input side."""

    family: str
    model: str
    image_size: int
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    own: bool = False  # the recipe's own student

    @property
    def name(self) -> str:
        return f"{self.family}@{self.image_size}"

    def key(self) -> str:
        """What the cost cache knows it by: the model, its arguments and its input side."""
        return json.dumps([self.model, self.model_kwargs, self.image_size], sort_keys=True)


def packaged_space_path() -> Path:
    return Path(str(resources.files("kdedge.experiments.search") / "spaces" / f"{PACKAGED}.yaml"))


def load_space(path: Path | None = None) -> SpaceFile:
    """The space in `path` (default: the packaged one); a bad file is one InputError naming the field."""
    path = path or packaged_space_path()
    try:
        content = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"--space {path}: cannot read it ({type(err).__name__}: {err})") from None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise InputError(f"--space {path}: invalid YAML: {problem}") from None
    if not isinstance(content, dict):
        raise InputError(f"--space {path}: a search space is a YAML mapping with `families:` (see --show-space)")
    try:
        return SpaceFile.model_validate(content)
    except ValidationError as err:
        problems = "; ".join(_problem(error) for error in err.errors())
        raise InputError(f"--space {path}: {problems}") from None


def _problem(error: dict[str, Any]) -> str:
    """'families.2.model: unknown model ...' for one pydantic error."""
    where = ".".join(str(part) for part in error["loc"]) or "space"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown key (allowed: {', '.join(_allowed(error['loc']))})"
    return f"{where}: {message}"


def space_text(path: Path | None = None) -> str:
    """`kdedge search --show-space`: the space file as written, comments included (checked first)."""
    load_space(path)
    return (path or packaged_space_path()).read_text()


def round_size(side: float) -> int:
    """An input side rounded to a multiple of 4 pixels, at least 8."""
    return max(8, int(side / 4 + 0.5) * 4)


def family_sizes(space: SpaceFile, family: Family, base_size: int) -> list[int]:
    """The input sides one family is tried at, ascending, within its min_size / max_size."""
    if family.sizes is not None or (family.scales is None and space.sizes is not None):
        sides = family.sizes if family.sizes is not None else space.sizes
    else:
        scales = family.scales or space.scales or [1.0]
        sides = [round_size(scale * base_size) for scale in scales]
    low, high = family.min_size or 0, family.max_size or 10**6
    return sorted({side for side in sides if low <= side <= high})


def candidates(space: SpaceFile, base_size: int, own: Candidate | None = None) -> list[Candidate]:
    """Every (family, size) of the space, family by family, smallest input first; the recipe's own student
    (`own`) is marked where the space has it, else added first."""
    found = [
        Candidate(family.label, family.model, size, dict(family.model_kwargs))
        for family in space.families
        for size in family_sizes(space, family, base_size)
    ]
    if own is None:
        return found
    same = [c for c in found if c.key() == own.key()]
    if same:
        return [Candidate(c.family, c.model, c.image_size, c.model_kwargs, own=c.key() == own.key()) for c in found]
    return [own, *found]


def _allowed(loc: tuple) -> list[str]:
    """The keys allowed where an unknown key was found (a space, a family or the halving section)."""
    if "families" in loc:
        return list(Family.model_fields)
    if "halving" in loc:
        return list(HalvingConfig.model_fields)
    return list(SpaceFile.model_fields)
