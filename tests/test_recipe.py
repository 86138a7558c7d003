"""Recipes: every shipped file validates; overrides are typed by the schema; alpha vs hard_weight."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kdedge.errors import InputError
from kdedge.files.rundir import RunDir
from kdedge.recipe import (
    DistillConfig,
    Recipe,
    check_key,
    load_recipe,
    packaged_recipes,
    parse_set,
    read_yaml,
    validate_recipe,
)

REPO = Path(__file__).resolve().parents[1]
PACKAGE_RECIPES = sorted((REPO / "kdedge" / "recipes").glob("*.yaml"))


def test_recipes_exist_and_top_level_folder_is_the_package_folder() -> None:
    assert {p.stem for p in PACKAGE_RECIPES} >= {
        "quickstart_mnist",
        "hinton_mnist",
        "hinton_mnist_800",
        "cnn_to_mlp_mnist",
    }
    top = REPO / "recipes"
    assert top.is_symlink() and top.resolve() == (REPO / "kdedge" / "recipes").resolve()
    assert set(packaged_recipes()) == {p.stem for p in PACKAGE_RECIPES}


@pytest.mark.parametrize("path", PACKAGE_RECIPES, ids=lambda p: p.stem)
def test_every_recipe_file_validates(path: Path) -> None:
    recipe = load_recipe(str(path))
    assert recipe.name == path.stem, "a recipe's name should be its file name (runs/<name> is derived from it)"
    assert recipe.description.strip(), "`kdedge recipes` shows the description: write one"
    assert recipe.teacher is not None or recipe.student is not None
    # the resolved form (what recipe.yaml in a run holds) validates back to the same recipe
    assert validate_recipe(recipe.to_dict()) == recipe


@pytest.mark.parametrize("path", PACKAGE_RECIPES, ids=lambda p: p.stem)
def test_every_recipe_loads_by_name(path: Path) -> None:
    assert load_recipe(path.stem) == load_recipe(str(path))


def test_parse_set_types_values_through_yaml_and_schema() -> None:
    overrides = parse_set(
        [
            "student.epochs=3",
            "distillation.temperature=2.5",
            "teacher.model_kwargs.hidden=[8, 8]",
            "data.name=mnist",
            "tensorboard=true",
        ]
    )
    assert overrides == {
        "student.epochs": 3,
        "distillation.temperature": 2.5,
        "teacher.model_kwargs.hidden": [8, 8],
        "data.name": "mnist",
        "tensorboard": True,
    }
    recipe = load_recipe("hinton_mnist", overrides)
    assert recipe.student.epochs == 3 and recipe.teacher.model_kwargs["hidden"] == [8, 8] and recipe.tensorboard


def test_set_without_equals_is_bad_input() -> None:
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        parse_set(["student.epochs"])


@pytest.mark.parametrize(
    ("key", "hint"),
    [("student.epoch", "epochs"), ("studnet.epochs", "student"), ("distillation.temprature", "temperature")],
)
def test_unknown_override_key_suggests_the_right_one(key: str, hint: str) -> None:
    with pytest.raises(InputError, match=f"did you mean '{hint}'"):
        check_key(key)


def test_free_form_model_kwargs_accept_any_key() -> None:
    check_key("teacher.model_kwargs.anything_goes")


def _base() -> dict:
    return read_yaml(REPO / "kdedge" / "recipes" / "quickstart_mnist.yaml")


def test_errors_are_collected_into_one_line_with_key_paths() -> None:
    config = _base()
    config["student"]["epochs"] = -3
    config["teacher"]["lr"] = "fast"
    with pytest.raises(InputError) as err:
        validate_recipe(config, source="x.yaml")
    message = str(err.value)
    assert "\n" not in message
    assert "x.yaml: student.epochs" in message and "greater than 0" in message and "-3" in message
    assert "teacher.lr" in message and "'fast'" in message


def test_unknown_key_in_file_says_did_you_mean() -> None:
    config = _base()
    config["studnet"] = config.pop("student")
    with pytest.raises(InputError, match="unknown key 'studnet', did you mean 'student'"):
        validate_recipe(config, source="x.yaml")


def test_yaml_python_tags_are_refused(tmp_path: Path) -> None:
    """safe_load: a recipe can never construct Python objects."""
    bad = tmp_path / "evil.yaml"
    bad.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(InputError, match="evil.yaml.*invalid YAML"):
        read_yaml(bad)


# -- the loss convention: alpha weights the soft (teacher) term; hard_weight is the other convention --
def test_alpha_and_hard_weight_are_mutually_exclusive(capsys) -> None:
    with pytest.raises(ValueError, match="not both"):
        DistillConfig(alpha=0.7, hard_weight=0.3)
    both = r"^--set distillation\.(alpha|hard_weight)=0\.[36]: distillation.*not both"
    with pytest.raises(InputError, match=both):
        load_recipe("hinton_mnist", {"distillation.hard_weight": 0.3, "distillation.alpha": 0.6})
    # one given on the command line replaces the other in the file (hinton_mnist sets alpha: 0.7), said once
    capsys.readouterr()
    recipe = load_recipe("hinton_mnist", {"distillation.hard_weight": 0.3})
    assert recipe.distillation.alpha is None and recipe.distillation.soft_weight == pytest.approx(0.7)
    assert capsys.readouterr().err.strip() == (
        "note: --set distillation.hard_weight=0.3 replaces the recipe's alpha: 0.7"
    )


def test_hard_weight_is_one_minus_alpha() -> None:
    assert DistillConfig(hard_weight=0.3).soft_weight == pytest.approx(0.7)
    assert DistillConfig(alpha=0.7).soft_weight == pytest.approx(0.7)
    assert DistillConfig().soft_weight == 0.5
    torchdistill_style = load_recipe("hinton_mnist", {"distillation.alpha": None, "distillation.hard_weight": 0.3})
    assert torchdistill_style.distillation.soft_weight == pytest.approx(load_recipe("hinton_mnist").distillation.alpha)


def test_run_recipe_yaml_states_the_convention_and_reloads(tmp_path: Path) -> None:
    recipe = load_recipe("hinton_mnist", {"distillation.alpha": None, "distillation.hard_weight": 0.25})
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_recipe(recipe)
    text = (run.path / "recipe.yaml").read_text()
    assert text.startswith("# loss convention: distillation.alpha = weight of the SOFT (teacher) term")
    assert "alpha = 0.75 (hard-label term 0.25)" in text.splitlines()[0]
    assert run.read_recipe() == recipe
    assert yaml.safe_load(text)["distillation"]["hard_weight"] == 0.25


def test_recipe_is_frozen() -> None:
    recipe = load_recipe("quickstart_mnist")
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type varies across versions
        recipe.seed = 3  # type: ignore[misc]
    assert isinstance(recipe, Recipe)


def test_keep_is_typed_and_its_default_leaves_fingerprints_as_they_were() -> None:
    plain = load_recipe("hinton_mnist")
    assert plain.student.keep == "last" and "keep" not in plain.to_dict()["student"]  # runs saved before `keep`
    best = load_recipe("hinton_mnist", parse_set(["student.keep=best_val"]))
    assert best.to_dict()["student"]["keep"] == "best_val" and best.fingerprint() != plain.fingerprint()
    with pytest.raises(InputError, match=r"student.keep.*'last' or 'best_val'"):
        load_recipe("hinton_mnist", parse_set(["student.keep=best"]))


def test_ema_decay_is_bounded_and_its_default_leaves_fingerprints_as_they_were() -> None:
    plain = load_recipe("hinton_mnist")
    assert plain.teacher.ema_decay is None and "ema_decay" not in plain.to_dict()["teacher"]
    averaged = load_recipe("hinton_mnist", parse_set(["teacher.ema_decay=0.9998"]))
    assert averaged.to_dict()["teacher"]["ema_decay"] == 0.9998 and averaged.fingerprint() != plain.fingerprint()
    with pytest.raises(InputError, match=r"teacher.ema_decay"):
        load_recipe("hinton_mnist", parse_set(["teacher.ema_decay=1"]))
