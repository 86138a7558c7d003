"""Commands that train nothing start at once: `--help` (of every command), `--version`, `recipes`, `recipes
show`, `formats`, `init` and shell completion never import torch (predict on .onnx / .tflite: test_predict.py
and test_edge_formats.py, cli_helpers.TORCH_FREE_PREDICT). Each runs through the real entry point in one
fresh process that then lists the torch modules it holds; how long they take is bench/startup.py's job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

# Runs each command of argv[1] (a JSON list of [env, argv]) through kdedge.cli.main in this process and
# prints {command: [exit code, torch modules imported so far]}; stops at the first command that imports torch.
SCRIPT = """
import contextlib, io, json, os, sys
from kdedge.cli import main

results = {}
for env, argv in json.loads(sys.argv[1]):
    os.environ.update(env)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            main(argv)
        code = 0
    except SystemExit as exit:
        code = exit.code or 0
    for key in env:
        del os.environ[key]
    torch = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
    results[" ".join(argv) or " ".join(env.values())] = [code, torch[:3], out.getvalue()[-300:]]
    if torch:
        break
print(json.dumps(results))
"""


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
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(runs)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(results) == len(runs), f"stopped early: {list(results)[-1]} imported torch"
    for command, (code, torch_modules, output) in results.items():
        assert not torch_modules, f"`kdedge {command}` imported {torch_modules}"
        assert code == 0, f"`kdedge {command}` exited {code}: {output}"
    assert (tmp_path / "pets.yaml").is_file()
    assert results[" ".join(complete.values())][2].split() == ["distill"]
