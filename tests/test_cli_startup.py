"""Commands that train nothing start at once: `--help` (of every command), `--version`, `recipes`, `recipes
show`, `formats`, `init` and shell completion never import torch (predict on .onnx / .tflite: test_predict.py
and test_edge_formats.py, cli_helpers.TORCH_FREE_PREDICT). Each runs through the real entry point in one
fresh process that then lists the torch modules it holds; how long they take is bench/startup.py's job.

Bad input to the commands that do import torch (a misspelled recipe, a bad --set, a folder that is not a run,
a bad option value) is said before torch loads: one line, the usual exit code, in a second, not after
seconds of imports. The cases run one after the other in one fresh process too, each checked for torch
right after it: a case that imports torch is named (the first one stops the process). Each command's
`python -m kdedge` smoke test is tests/test_cli.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_error_line, write_recipe
from PIL import Image

# Runs each command of argv[1] (a JSON list of [env, argv]) through kdedge.cli.main in this process, one after
# the other, and prints [[exit code, torch modules imported so far, stdout's end, stderr], ...]; stops after
# the first command that imports torch.
SCRIPT = """
import contextlib, io, json, os, sys
from kdedge.cli import main

results = []
for env, argv in json.loads(sys.argv[1]):
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(argv)
        code = 0
    except SystemExit as exit:
        code = exit.code or 0
    for key in env:
        del os.environ[key]
    torch = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
    results.append([code, torch[:3], out.getvalue()[-300:], err.getvalue()])
    if torch:
        break
print(json.dumps(results))
"""


def _in_one_process(runs: list[list], cwd: Path) -> list[list]:
    """SCRIPT's [exit code, torch modules, stdout's end, stderr] for each [env, argv] of `runs`, all run in one
    fresh process (200 columns, one thread, as cli_helpers.run_subprocess); fewer than `runs` when one
    imported torch."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(runs)], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _command_names() -> list[str]:
    """Every command of the app (a command added later is covered too)."""
    import typer

    from kdedge.cli import app

    return sorted(typer.main.get_command(app).commands)


def _images(root: Path) -> Path:
    """Two classes of 12 tiny RGB PNGs: a folder `kdedge init` can survey."""
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for index in range(12):
            pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{label}{index:02d}.png")
    return root


def test_commands_that_train_nothing_never_import_torch(tmp_path: Path) -> None:
    folder = _images(tmp_path / "pets")
    complete = {"_KDEDGE_COMPLETE": "complete_bash", "COMP_WORDS": "kdedge dis", "COMP_CWORD": "1"}
    runs = [
        [{}, ["--help"]],
        [{}, ["--version"]],
        *[[{}, [name, "--help"]] for name in _command_names()],
        [{}, ["recipes", "show", "--help"]],
        [{}, ["recipes"]],
        [{}, ["recipes", "--json"]],
        [{}, ["recipes", "show", "hinton_mnist"]],
        [{}, ["formats"]],
        [{}, ["formats", "--json"]],
        [{}, ["formats", "--wide"]],
        [
            {"KDEDGE_CACHE": str(tmp_path / "cache")},
            [
                "init",
                str(folder),
                "--teacher",
                "resnet18",
                "--student",
                "mobilenetv2_050",
                "--out",
                str(tmp_path / "pets.yaml"),
            ],
        ],
        [complete, []],
    ]
    results = _in_one_process(runs, tmp_path)
    for (env, argv), (code, torch_modules, output, errors) in zip(runs, results, strict=False):
        command = " ".join(argv) or " ".join(env.values())
        assert not torch_modules, f"`kdedge {command}` imported {torch_modules}"
        assert code == 0, f"`kdedge {command}` exited {code}: {output}{errors}"
    assert len(results) == len(runs)
    assert (tmp_path / "pets.yaml").is_file()
    assert results[-1][2].split() == ["distill"]  # the completion's answer


# (argv template, the text the one error line holds), each exit code 2. {tmp}: a scratch folder with empty/
# (not a run), run/ (a run folder holding only its recipe.yaml), student_only.yaml and study.yaml (a study
# file naming a misspelled recipe).
BAD_INPUT = [
    ("train no_such_recipe", "no recipe file or packaged recipe named 'no_such_recipe'"),
    ("distill hinton_mnst", "did you mean 'hinton_mnist'?"),
    ("layers hinton_mnst", "did you mean 'hinton_mnist'?"),
    ("sweep hinton_mnst", "did you mean 'hinton_mnist'?"),
    ("distill {tmp}/nowhere.yaml", "recipe file not found: "),
    ("distill hinton_mnist --set student.lrr=0.1", "unknown key 'student.lrr' in student: did you mean 'lr'?"),
    ("train hinton_mnist --set student.epochs=-3", "student.epochs: Input should be greater than 0 (got -3)"),
    ("distill hinton_mnist --set student.model=resnet_19", "unknown model 'resnet_19', did you mean 'resnet18'?"),
    ("train {tmp}/student_only.yaml", "this recipe has none; use distill"),
    ("distill hinton_mnist --resume {tmp}/run --out {tmp}/other", "a resumed run continues in its own directory"),
    ("study {tmp}/study.yaml", "did you mean 'hinton_mnist'?"),
    ("study hinton_mnist --metric foo", "--metric 'foo': allowed are"),
    ("search hinton_mnst --target onnx-int8 --latency-ms 2", "did you mean 'hinton_mnist'?"),
    ("search hinton_mnist --target foo-int8 --latency-ms 2", "unknown target 'foo-int8'"),
    ("search hinton_mnist --target onnx-int8 --latency-ms -2", "--latency-ms: must be a number > 0"),
    ("report {tmp}/empty", "is neither a run directory (summary.json) nor a sweep directory"),
    ("eval {tmp}/empty", "is not a kdedge run directory (no recipe.yaml)"),
    ("export {tmp}/empty", "is not a kdedge run directory (no recipe.yaml)"),
    ("export {tmp}/run --precision fp64", "unknown precision 'fp64'"),
    ("export {tmp}/run --model teachr", "--model: must be student, teacher or both (got 'teachr')"),
    ("bench {tmp}/empty", "is not a kdedge run directory (no recipe.yaml)"),
    ("bench {tmp}/run --batch 0", "--batch: expected numbers >= 1"),
]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> Path:
    """The files and folders BAD_INPUT names."""
    tmp = tmp_path_factory.mktemp("bad_inputs")
    (tmp / "empty").mkdir()
    (tmp / "run").mkdir()
    write_recipe(tmp / "run" / "recipe.yaml")
    write_recipe(tmp / "student_only.yaml", teacher=None, distillation={"loss": "none"})
    (tmp / "study.yaml").write_text("recipes: [hinton_mnst]\nseeds: [0]\n")
    return tmp


def test_bad_input_is_said_before_torch_loads(bad_inputs: Path) -> None:
    runs = [[{}, command.format(tmp=bad_inputs).split()] for command, _ in BAD_INPUT]
    results = _in_one_process(runs, bad_inputs)
    for (command, expected), (code, torch_modules, _, errors) in zip(BAD_INPUT, results, strict=False):
        assert not torch_modules, f"`kdedge {command}` imported torch before saying it was wrong"
        line = one_error_line(errors)
        assert line.startswith("error: ") and expected in line, (command, line)
        assert code == 2, (command, code, line)
    assert len(results) == len(BAD_INPUT)
