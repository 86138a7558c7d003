"""End-to-end: the real `kdedge` command on real MNIST with tiny limits, in this process; bad input; and each
command once in a real process (`python -m kdedge`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from cli_helpers import TINY_ARGS, checksums, run_subprocess

import kdedge as kdedge_package
from kdedge.recipe import packaged_recipes


def test_distill_writes_a_complete_run(finished_run) -> None:
    run, result = finished_run
    assert {"recipe.yaml", "teacher.safetensors", "student.safetensors", "metrics.jsonl", "summary.json"} <= {
        p.name for p in run.iterdir()
    }
    summary = json.loads((run / "summary.json").read_text())
    for stage in ("teacher", "student"):
        row = summary[stage]
        assert isinstance(row["test_accuracy"], float) and isinstance(row["test_errors"], int)
        assert isinstance(row["params"], int) and row["params"] > 0
        assert row["test_count"] == 200 and row["test_errors"] == round((1 - row["test_accuracy"]) * 200)
    assert summary["teacher"]["params"] == 784 * 64 + 64 + 64 * 10 + 10  # --set teacher.model_kwargs.hidden=[64]
    assert summary["finished"] is True and summary["data"]["dataset"] == "mnist"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(m["stage"], m["epoch"]) for m in metrics] == [("teacher", 1), ("student", 1)]
    assert 0 <= metrics[1]["test_agreement"] <= 1  # teacher/student agreement, per student epoch
    saved = yaml.safe_load((run / "recipe.yaml").read_text())  # --set values are typed by the schema
    assert saved["student"]["epochs"] == 1 and saved["data"]["train_limit"] == 1000
    assert saved["teacher"]["model_kwargs"]["hidden"] == [64]
    # the header: alpha's meaning and the device, said once at the start
    assert "alpha=0.7 = weight of the teacher term" in result.stdout
    expected_device = "device: cuda" if torch.cuda.is_available() else "device: cpu (auto: no CUDA device found)"
    assert result.stdout.count("device: ") == 1 and expected_device in result.stdout
    assert "teacher" in result.stdout and "student" in result.stdout and str(run) in result.stdout


def test_train_trains_the_teacher_only_and_quiet_prints_nothing(kdedge, data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "teacher_only"
    result = kdedge("train", "hinton_mnist", *TINY_ARGS, "--out", out, "--data-root", data_root, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert (out / "teacher.safetensors").is_file() and not (out / "student.safetensors").exists()
    assert "teacher" in json.loads((out / "summary.json").read_text())


def test_eval_json_reproduces_the_summary(kdedge, finished_run, data_root: Path) -> None:
    run, _ = finished_run
    result = kdedge("eval", run, "--json", "--data-root", data_root)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    summary = json.loads((run / "summary.json").read_text())
    for stage in ("teacher", "student"):
        assert measured[stage]["test_errors"] == summary[stage]["test_errors"]
        assert measured[stage]["test_accuracy"] == pytest.approx(summary[stage]["test_accuracy"])


def test_eval_table(kdedge, finished_run, data_root: Path) -> None:
    run, _ = finished_run
    result = kdedge("eval", run, "--data-root", data_root)
    assert result.returncode == 0, result.stderr
    assert "re-evaluated" in result.stdout and "student" in result.stdout


def test_recipes_lists_every_packaged_recipe_one_line_each(kdedge) -> None:
    result = kdedge("recipes")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(packaged_recipes())


def test_recipes_json_and_show(kdedge) -> None:
    listed = kdedge("recipes", "--json")
    assert listed.returncode == 0, listed.stderr
    assert set(json.loads(listed.stdout)) == set(packaged_recipes())
    shown = kdedge("recipes", "show", "hinton_mnist")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == packaged_recipes()["hinton_mnist"].read_text()


def test_version_and_completion(kdedge) -> None:
    version = kdedge("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"kdedge {kdedge_package.__version__}"
    # what the script from `kdedge --install-completion` asks when the user presses TAB after "kdedge dis"
    script = Path(sys.executable).with_name("kdedge")
    completion = subprocess.run(
        [str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"_KDEDGE_COMPLETE": "complete_bash", "COMP_WORDS": "kdedge dis", "COMP_CWORD": "1"},
    )
    assert completion.returncode == 0 and completion.stdout.split() == ["distill"]


def test_a_finished_run_is_not_overwritten_without_force(kdedge, finished_run, tmp_path: Path, data_root) -> None:
    run = tmp_path / "copy"
    shutil.copytree(finished_run[0], run)
    before = checksums(run)
    result = kdedge("distill", "hinton_mnist", *TINY_ARGS, "--out", run, "--data-root", data_root)
    assert result.returncode == 2 and "--force" in result.stderr
    assert checksums(run) == before


# -- each command once through `python -m kdedge` in a real process (imports, argv, exit code, one line on
# -- stderr); the other tests run the CLI in this process. Smoke tests elsewhere: distill (conftest's
# -- finished_run), sweep (test_sweep_ray: Ray missing), predict (test_bad_input_matrix:
# -- test_real_entry_point_prints_one_line), --version (test_working_folder) ----------------------------------
SMOKE = [  # id, argv ({run}: a finished run, {tmp}: an empty folder), exit code, text in stdout or the one line
    ("train", ["train", "hinton_mnst"], 2, "did you mean 'hinton_mnist'?"),
    ("eval", ["eval", "{run}", "--json", "--data-root", "{data}"], 0, '"student"'),
    ("report", ["report", "{tmp}"], 2, "is neither a run directory (summary.json) nor a sweep directory"),
    ("export", ["export", "{tmp}"], 2, "is not a kdedge run directory (no recipe.yaml)"),
    ("bench", ["bench", "{tmp}/nothing.onnx"], 2, "nothing.onnx: no such run directory or .onnx file"),
    ("check", ["check", "{tmp}/nothing.onnx"], 2, "no test images for it; give some with --images DIR"),
    ("layers", ["layers", "hinton_mnst"], 2, "did you mean 'hinton_mnist'?"),
    ("init", ["init", "{tmp}/nowhere"], 2, "give a folder of class folders"),
    ("study", ["study", "{tmp}/nowhere.yaml"], 2, "recipe file not found: "),
    ("recipes", ["recipes"], 0, "hinton_mnist"),
    ("formats", ["formats", "--json"], 0, '"onnx"'),
    ("search", ["search", "quickstart_mnist", "--latency-ms", "1"], 2, "give --target and --latency-ms"),
]


@pytest.mark.parametrize(("argv", "code", "expected"), [c[1:] for c in SMOKE], ids=[c[0] for c in SMOKE])
def test_each_command_in_a_real_process(finished_run, data_root: Path, tmp_path: Path, argv, code, expected):
    names = {"run": finished_run[0], "tmp": tmp_path, "data": data_root}
    result = run_subprocess(*[a.format(**names) for a in argv], timeout=120)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    if code:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    else:
        assert expected in result.stdout


# -- bad input: one line on stderr naming the file/field and what is allowed, exit 2, no traceback, and the
# -- finished run given as --out (with --force, which would clear it) is left byte for byte as it was ------
INVALID_YAML = "name: broken\ndata: [mnist\nteacher:\n  model: mlp\n"


def _unknown_key_recipe(folder: Path) -> Path:
    config = yaml.safe_load(packaged_recipes()["hinton_mnist"].read_text())
    config["studnet"] = config.pop("student")
    path = folder / "typo.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


BAD_INPUT = [  # id, extra args (may use {tmp}, {typo}, {broken}, {empty}), text the one line must contain
    (
        "missing-recipe-file",
        ["distill", "{tmp}/no/such.yaml"],
        ["recipe file not found", "such.yaml", "kdedge recipes"],
    ),
    ("unknown-recipe-name", ["distill", "hinton_mnst"], ["did you mean 'hinton_mnist'"]),
    ("invalid-yaml", ["distill", "{broken}"], ["broken.yaml", "invalid YAML", "line"]),
    ("unknown-key-in-file", ["distill", "{typo}"], ["typo.yaml", "unknown key 'studnet'", "did you mean 'student'"]),
    (
        "unknown-key-in-set",
        ["distill", "hinton_mnist", "--set", "student.epoch=3"],
        ["unknown key 'student.epoch'", "did you mean 'epochs'", "valid:"],
    ),
    (
        "wrong-type",
        ["distill", "hinton_mnist", "--set", "student.epochs=many"],
        ["--set student.epochs=many: ", "student.epochs", "valid integer", "'many'"],
    ),
    (
        "negative-epochs",
        ["distill", "hinton_mnist", "--set", "teacher.epochs=-3"],
        ["teacher.epochs", "greater than 0", "-3"],
    ),
    (
        "unknown-model",
        ["distill", "hinton_mnist", "--set", "student.model=resnet81"],
        ["student.model", "unknown model 'resnet81'", "did you mean 'resnet18'", "valid:"],
    ),
    (
        "unknown-data-set",
        ["distill", "hinton_mnist", "--set", "data.name=mnsit"],
        ["data.name", "unknown data set 'mnsit'", "did you mean 'mnist'"],
    ),
    (
        "data-root-without-data-set",
        ["distill", "hinton_mnist", "--data-root", "{empty}"],
        ["{empty}", "has no MNIST", "KDEDGE_DATA"],
    ),
    (
        "alpha-and-hard-weight",
        ["distill", "hinton_mnist", "--set", "distillation.hard_weight=0.3", "--set", "distillation.alpha=0.6"],
        ["--set distillation.", "alpha", "hard_weight", "not both"],
    ),
    ("set-without-value", ["distill", "hinton_mnist", "--set", "student.epochs"], ["expected KEY=VALUE"]),
]
if not torch.cuda.is_available():
    BAD_INPUT.append(
        (
            "cuda-without-gpu",
            ["distill", "hinton_mnist", "--set", "device=cuda"],
            ["'cuda' requested but no CUDA device", "device=auto or cpu"],
        )
    )


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(kdedge, finished_run, tmp_path: Path, args, expected):
    run = tmp_path / "existing_run"
    shutil.copytree(finished_run[0], run)
    before = checksums(run)
    (tmp_path / "broken.yaml").write_text(INVALID_YAML)
    (tmp_path / "empty").mkdir()
    names = {
        "tmp": str(tmp_path),
        "typo": str(_unknown_key_recipe(tmp_path)),
        "broken": str(tmp_path / "broken.yaml"),
        "empty": str(tmp_path / "empty"),
    }
    argv = [a.format(**names) for a in args]
    result = kdedge(*argv[:2], *TINY_ARGS, *argv[2:], "--out", run, "--force")  # the case's --set wins over TINY
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for text in expected:
        assert text.format(**names) in lines[0]
    assert checksums(run) == before, "a failed command changed a file of an existing run"
