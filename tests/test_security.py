"""Nothing a stranger hands kdedge is executed: pickles posing as weights, YAML python tags, state files.

Every payload here would create a marker file if it ran; each test asserts the command is refused with
one line (exit 2) AND that the marker never appears.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import one_error_line, run_kdedge, run_subprocess, write_recipe

from kdedge.files.atomic import save_state
from kdedge.models.builders import build_model
from kdedge.recipe import load_recipe


class _Payload:
    """Unpickling this runs `touch MARKER` (what a hostile checkpoint would do with a real command)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def evil(tmp_path) -> dict[str, Path]:
    """The same payload as a raw pickle named .pt / .safetensors / .bin, and as a torch.save zip .pt."""
    marker = tmp_path / "PWNED"
    raw = pickle.dumps({"weight": _Payload(marker)})
    files = {"marker": marker}
    for name in ("evil.pt", "evil.safetensors", "evil.bin"):
        files[name] = tmp_path / name
        files[name].write_bytes(raw)
    files["evil_zip.pt"] = tmp_path / "evil_zip.pt"
    torch.save({"weight": _Payload(marker)}, files["evil_zip.pt"])  # pickling never calls the payload
    assert not marker.exists()
    return files


@pytest.mark.parametrize("name", ["evil.pt", "evil.safetensors", "evil.bin", "evil_zip.pt"])
@pytest.mark.parametrize("key", ["teacher.checkpoint", "teacher.pretrained", "student.pretrained"])
def test_malicious_pickle_as_weights_is_refused(evil, tmp_path, key, name):
    recipe = write_recipe(tmp_path / "r.yaml")
    code, _, err = run_kdedge("distill", recipe, "-q", "--out", tmp_path / "run", "--set", f"{key}={evil[name]}")
    line = one_error_line(err)
    assert code == 2 and str(evil[name]) in line, line
    assert "not a plain tensor checkpoint" in line or "not a valid safetensors file" in line
    assert not evil["marker"].exists()
    assert not (tmp_path / "run").exists()  # refused before the run directory was created


def test_malicious_pickle_in_a_subprocess_run(evil, tmp_path):
    """The same through the installed entry point: exit code, one line, no traceback, no marker."""
    recipe = write_recipe(tmp_path / "r.yaml")
    result = run_subprocess(
        "distill", recipe, "--out", tmp_path / "run", "--set", f"teacher.checkpoint={evil['evil.pt']}"
    )
    assert result.returncode == 2 and "weights_only=True) refused it" in one_error_line(result.stderr)
    assert not evil["marker"].exists()


def test_pickle_posing_as_a_run_weights_file_or_training_state(evil, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    recipe = write_recipe(tmp_path / "r.yaml")
    shutil.copy(recipe, run / "recipe.yaml")
    (run / "summary.json").write_text('{"data": {"num_classes": 10, "in_channels": 1, "image_size": 28}}')
    shutil.copy(evil["evil.safetensors"], run / "teacher.safetensors")
    code, _, err = run_kdedge("eval", run)
    assert code == 2 and "teacher.safetensors: not a valid safetensors file" in one_error_line(err)
    shutil.copy(evil["evil.safetensors"], run / "teacher.state.safetensors")
    (run / "teacher.safetensors").unlink()
    code, _, err = run_kdedge("distill", recipe, "-q", "--resume", run)
    assert code == 2 and "not a kdedge training state" in one_error_line(err)
    assert not evil["marker"].exists()


def test_yaml_python_tag_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\ndata: {{name: mnist}}\n')
    code, _, err = run_kdedge("distill", recipe)
    line = one_error_line(err)
    assert code == 2 and f"{recipe}: line 1 invalid YAML" in line and "python/object/apply" in line
    code, _, err = run_kdedge(
        "distill",
        write_recipe(tmp_path / "ok.yaml"),
        "--set",
        f'name=!!python/object/apply:os.system ["touch {marker}"]',
    )
    assert code == 2 and "YAML tags are not allowed" in one_error_line(err)
    assert not marker.exists()


def test_a_recipe_cannot_name_code(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", student={"model": "os.system"})
    code, _, err = run_kdedge("distill", recipe)
    assert code == 2 and "unknown model 'os.system'" in one_error_line(err)


def test_relative_paths_resolve_against_the_recipe_folder_and_are_shown(tmp_path, monkeypatch):
    weights = tmp_path / "weights" / "teacher.safetensors"
    torch.manual_seed(0)
    save_state(weights, build_model("mlp", 10, 1, 28, {"hidden": [32], "dropout": 0.2}).state_dict())
    recipe = write_recipe(
        tmp_path / "recipes" / "r.yaml", student={"epochs": 1}, teacher={"checkpoint": "../weights/teacher.safetensors"}
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the recipe's folder counts, not the working directory
    assert load_recipe(str(recipe)).teacher.checkpoint == str(weights.resolve())
    code, out, err = run_kdedge("distill", recipe, "--out", tmp_path / "run")
    assert code == 0, err
    assert f"teacher.checkpoint: {weights.resolve()}" in out
    missing = write_recipe(tmp_path / "recipes" / "m.yaml", teacher={"checkpoint": "../nowhere/t.st"})
    code, _, err = run_kdedge("distill", missing, "-q", "--out", tmp_path / "run2")
    resolved = tmp_path.resolve() / "nowhere" / "t.st"
    assert code == 2 and f"teacher.checkpoint: {resolved} does not exist" in one_error_line(err)
