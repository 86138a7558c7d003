"""Property-based tests (hypothesis) over recipes: random YAML documents, random `--set` paths and values,
random types in every field. The only allowed outcomes are a valid Recipe or one InputError line (exit 2
through the CLI): never another exception, never a traceback, never a run directory left behind.

`make test` runs a bounded number of examples (KDEDGE_FUZZ_EXAMPLES, default 40 per property);
`make fuzz` runs 2,000 each.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import ENV, KDEDGE, REPO, TINY, one_error_line, run_kdedge

from kdedge.errors import InputError
from kdedge.recipe import Recipe, load_recipe, parse_set, validate_recipe
from kdedge.ui.console import one_line

hypothesis = pytest.importorskip("hypothesis", reason="pip install hypothesis (in kdedge[dev])")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("KDEDGE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=EXAMPLES <= 40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "mnist",
            "mlp",
            "hinton",
            "none",
            "cpu",
            "adam",
            "1e30",
            "2020-01-01",
            "!!python/name:os.system",
            "~",
            "-1",
        ]
    )
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _leaf_paths(config: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in config.items():
        path = f"{prefix}{key}"
        paths += _leaf_paths(value, f"{path}.") if isinstance(value, dict) and value else [path]
    return paths


# every field of a full recipe (defaults included), so each one gets random types
FULL = validate_recipe(TINY).to_dict()
FIELDS = sorted(set(_leaf_paths(FULL)) | {"sweep", "export", "teacher", "student", "distillation", "data"})


def _outcome(call) -> str:
    """'ok' for a Recipe, 'error' for one InputError line; anything else fails the test."""
    try:
        assert isinstance(call(), Recipe)
        return "ok"
    except InputError as err:
        text = one_line(str(err))  # what the CLI prints: control characters in values escaped
        assert text and "\n" not in text and "\x1b" not in text and "Traceback" not in text, text
        return "error"


def _set_path(config: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node, *parents = config, *path.split(".")[:-1]
    for part in path.split(".")[:-1]:
        node = node.setdefault(part, {}) if isinstance(node.get(part), dict) else node.setdefault(part, {})
    node[path.split(".")[-1]] = value
    del parents
    return config


@FUZZ
@given(text=st.text(max_size=200))
def test_random_yaml_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "r.yaml"
    path.write_text(text)
    _outcome(lambda: load_recipe(str(path)))


@FUZZ
@given(document=st.dictionaries(st.sampled_from([*FULL, "studnet", "x"]), values, max_size=6))
def test_random_yaml_documents(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("fuzz") / "r.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    _outcome(lambda: load_recipe(str(path)))


@FUZZ
@given(field=st.sampled_from(FIELDS), value=values)
def test_random_type_in_every_field(field, value):
    config = _set_path(yaml.safe_load(yaml.safe_dump(FULL)), field, value)
    _outcome(lambda: validate_recipe(config))


@FUZZ
@given(
    key=st.sampled_from(FIELDS)
    | st.text(max_size=20)
    | st.builds("{}.{}".format, st.sampled_from(FIELDS), st.text(max_size=6)),
    raw=st.text(max_size=30) | st.sampled_from(["[1, 2", "{a: 1}", "!!binary AAAA", "2020-01-01", "1e999"]),
)
def test_random_set_paths_and_values(tmp_path_factory, key, raw):
    path = tmp_path_factory.mktemp("fuzz") / "r.yaml"
    path.write_text(yaml.safe_dump(TINY))
    _outcome(lambda: load_recipe(str(path), parse_set([f"{key}={raw}"])))


@settings(FUZZ, max_examples=max(EXAMPLES // 2, 10))
@given(field=st.sampled_from(FIELDS), value=values)
def test_the_cli_says_one_line_and_leaves_no_run_directory(tmp_path_factory, field, value):
    """In-process CLI with an empty --data-root: a valid recipe stops at the data (exit 2) too, so every
    example ends before training; none may leave a run directory."""
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "empty").mkdir()
    recipe = tmp / "r.yaml"
    recipe.write_text(yaml.safe_dump(_set_path(yaml.safe_load(yaml.safe_dump(TINY)), field, value)))
    code, _, err = run_kdedge("distill", recipe, "-q", "--out", tmp / "run", "--data-root", tmp / "empty")
    assert code == 2 and one_error_line(err).startswith("error: "), err
    assert not (tmp / "run").exists()


SLOW = pytest.mark.slow  # a process start costs seconds: one in `make test`, the rest in `make test-all`
HANDFUL = [  # documents the fuzzing found or that stress the YAML parser
    "student: {epochs: [1, {a: 2020-01-01}]}",
    "data: !!binary AAAA",
    "teacher: ~\nstudent: ~\n",
    "? [1, 2]\n: 3",
    "name: 1e999\n" * 3,
    "student:\n  model_kwargs: {hidden: [-5]}\n",
]


def _handful_recipe(folder: Path, document: str) -> Path:
    recipe = folder / "r.yaml"
    recipe.write_text(yaml.safe_dump({k: v for k, v in TINY.items() if k not in document}) + document)
    return recipe


@pytest.mark.parametrize("document", HANDFUL)
def test_a_handful_through_the_cli(tmp_path, document):
    """Each document through the CLI in this process: exit 2, one line, no run directory."""
    recipe = _handful_recipe(tmp_path, document)
    code, _, err = run_kdedge("distill", recipe, "-q", "--out", tmp_path / "run", "--data-root", tmp_path)
    assert code == 2 and one_error_line(err).startswith("error: "), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("document", [HANDFUL[0], *(pytest.param(d, marks=SLOW) for d in HANDFUL[1:])])
def test_a_handful_through_the_real_entry_point(tmp_path, document):
    """The same through `python -m kdedge` (a real process's warnings and logging count too)."""
    recipe = _handful_recipe(tmp_path, document)
    command = [
        *KDEDGE,
        "distill",
        str(recipe),
        "-q",
        "--out",
        str(tmp_path / "run"),
        "--data-root",
        str(tmp_path),
    ]
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and one_error_line(result.stderr).startswith("error: "), result.stderr
    assert not (tmp_path / "run").exists()


def test_fields_cover_every_section():
    assert {"data.name", "student.lr", "distillation.alpha", "teacher.model_kwargs.hidden"} <= set(FIELDS)
    assert Path(REPO / "Makefile").read_text().count("KDEDGE_FUZZ_EXAMPLES") >= 1


def test_control_characters_in_a_value_stay_one_harmless_line(tmp_path):
    """Found by the fuzzing: a newline or terminal escape inside a --set value split the error line."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    code, _, err = run_kdedge("distill", recipe, "--set", "student.epochs=\x1b[31mred\nline")
    line = one_error_line(err)
    assert code == 2 and "\\x1b[31mred\\nline" in line and "\x1b" not in err, line
