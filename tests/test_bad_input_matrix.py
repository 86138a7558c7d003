# ruff: noqa: E501 - the case table reads best as one case per line
"""Bad-input matrix: every command, every kind of wrong input -> exit 2 (input) or 1 (runtime), exactly one
line on stderr that says what / where / what is allowed, no traceback, and not one byte of a pre-existing
run directory changed. README.md "Troubleshooting" lists the same cases.

Each case is (id, argv template, exit code, text the one line must contain). Templates use {run} (a finished
run directory, checksummed before and after), {tmp} (a scratch folder), {recipe} (a valid tiny recipe),
{evil} (a pickle whose payload would create {tmp}/PWNED), {junk} (a text file), {onnx} (an ONNX graph
without kdedge metadata), {labelled} (the same graph with kdedge metadata) and {image} (a real PNG).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import checksums, one_error_line, run_kdedge, run_subprocess, write_recipe
from hostile_files import CARD
from PIL import Image

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")

CASES = [
    # -- recipes (distill / train) ----------------------------------------------------------------------------
    ("recipe-missing", "distill {tmp}/nowhere.yaml", 2, "recipe file not found: "),
    ("recipe-typo-name", "distill hinton_mnst", 2, "did you mean 'hinton_mnist'?"),
    ("recipe-unknown-key", "distill {tmp}/typo.yaml", 2, "unknown key 'studnet', did you mean 'student'?"),
    ("recipe-not-mapping", "distill {tmp}/list.yaml", 2, "a recipe must be a YAML mapping (got list)"),
    ("recipe-bad-yaml", "distill {tmp}/broken.yaml", 2, "broken.yaml: line 3 invalid YAML"),
    ("recipe-python-tag", "distill {tmp}/tag.yaml", 2, "could not determine a constructor for the tag"),
    (
        "set-negative-epochs",
        "distill {recipe} --set student.epochs=-3",
        2,
        "student.epochs: Input should be greater than 0 (got -3)",
    ),
    (
        "set-unknown-key",
        "distill {recipe} --set student.lrr=0.1",
        2,
        "unknown key 'student.lrr' in student: did you mean 'lr'?",
    ),
    ("set-no-equals", "distill {recipe} --set student.lr", 2, "expected KEY=VALUE"),
    ("set-python-tag", "distill {recipe} --set name=!!python/name:os.system", 2, "YAML tags are not allowed"),
    ("unknown-dataset", "distill {recipe} --set data.name=mnits", 2, "did you mean 'mnist'?"),
    ("unknown-loss", "distill {recipe} --set distillation.loss=hintn", 2, "did you mean 'hinton'?"),
    ("unknown-model", "distill {recipe} --set student.model=resnet81", 2, "did you mean 'resnet18'?"),
    (
        "alpha-out-of-range",
        "distill {recipe} --set distillation.alpha=1.5",
        2,
        "distillation.alpha: Input should be less than or equal to 1 (got 1.5)",
    ),
    (
        "omit-unknown-class",
        "distill {recipe} -q --out {tmp}/new --set data.omit_classes=[11]",
        2,
        "data: class 11 does not exist (classes are 0..9)",
    ),
    (
        "val-size-too-big",
        "distill {recipe} -q --out {tmp}/new --set data.val_size=70000",
        2,
        "data.val_size: must be smaller than the 60000 training images",
    ),
    ("data-root-empty", "distill {recipe} -q --out {tmp}/new --data-root {tmp}/empty", 2, "has no MNIST"),
    ("checkpoint-missing", "distill {recipe} --set teacher.checkpoint={tmp}/no.safetensors", 2, "teacher.checkpoint: "),
    ("checkpoint-pickle", "distill {recipe} --set teacher.checkpoint={evil}", 2, "refused it"),
    (
        "checkpoint-wrong-model",
        "distill {recipe} -q --out {tmp}/new --set teacher.checkpoint={run}/student.safetensors",
        2,
        "teacher weights",
    ),
    ("pretrained-junk", "distill {recipe} --set student.pretrained={junk}", 2, "not a valid safetensors file"),
    ("out-finished-run", "distill {recipe} --out {run}", 2, "already holds a finished run; pass --force"),
    ("resume-finished-run", "distill {recipe} --resume {run}", 2, "already finished; nothing to resume"),
    ("resume-not-a-run", "distill {recipe} --resume {tmp}/empty", 2, "not a kdedge run directory"),
    (
        "resume-and-out",
        "distill {recipe} --resume {run} --out {tmp}/other",
        2,
        "a resumed run continues in its own directory",
    ),
    ("unknown-option", "distill {recipe} --bogus", 2, "kdedge distill: No such option: --bogus"),
    ("missing-argument", "distill", 2, "Missing argument"),
    ("negative-checkpoint-minutes", "distill {recipe} --checkpoint-minutes -1", 2, "--checkpoint-minutes"),
    ("train-without-teacher", "train {tmp}/student_only.yaml", 2, "this recipe has none; use distill"),
    (
        "non-finite-loss",
        "distill {recipe} -q --out {tmp}/new --set student.lr=1e30 --set student.optimizer=sgd",
        1,
        "student: loss became nan in epoch 1, step 2; lower the lr (or check the data); last good checkpoint: none for the student yet",
    ),
    ("cuda-without-gpu", "distill {recipe} --set device=cuda", 2, "no CUDA device", NO_GPU),
    # -- sweep ------------------------------------------------------------------------------------------------
    (
        "sweep-grid-no-values",
        "sweep {recipe} -q --out {tmp}/sweep --grid student.lr",
        2,
        "--grid 'student.lr': expected KEY=V1,V2,...",
    ),
    (
        "sweep-grid-unknown-key",
        "sweep {recipe} -q --out {tmp}/sweep --grid student.lrr=0.1,0.2",
        2,
        "unknown key 'student.lrr' in student: did you mean 'lr'?",
    ),
    (
        "sweep-grid-bad-value",
        "sweep {recipe} -q --out {tmp}/sweep --grid distillation.alpha=0.5,1.5",
        2,
        "sweep point distillation.alpha=1.5: distillation.alpha: Input should be less than or equal to 1",
    ),
    (
        "sweep-bad-metric",
        "sweep {recipe} -q --out {tmp}/sweep --grid student.lr=0.1 --metric foo",
        2,
        "--metric 'foo': allowed are test_errors, test_accuracy, val_accuracy",
    ),
    ("sweep-empty-grid", "sweep {recipe} -q --out {tmp}/sweep", 2, "sweep: empty grid"),
    # -- eval / recipes -----------------------------------------------------------------------------------------
    ("eval-not-a-run", "eval {tmp}/empty", 2, "is not a kdedge run directory"),
    ("recipes-show-unknown", "recipes show hinton_mnst", 2, "did you mean 'hinton_mnist'?"),
    # -- export -----------------------------------------------------------------------------------------------
    ("export-not-a-run", "export {tmp}/empty", 2, "{tmp}/empty"),
    ("export-bad-precision", "export {run} --precision fp64", 2, "fp64"),
    ("export-bad-model", "export {run} --model teachr", 2, "teachr"),
    # -- bench ------------------------------------------------------------------------------------------------
    ("bench-missing-path", "bench {tmp}/nothing.onnx", 2, "nothing.onnx"),
    ("bench-bad-device", "bench {run} --device tpu", 2, "tpu"),
    ("bench-bad-batch", "bench {run} --batch 0", 2, "batch"),
    ("bench-bad-runtime", "bench {run} --runtimes tensorrt", 2, "tensorrt"),
    ("bench-junk-onnx", "bench {junk_onnx}", 2, "junk.onnx"),
    # -- predict ----------------------------------------------------------------------------------------------
    ("predict-missing-model", "predict {tmp}/none.onnx {image}", 2, "none.onnx"),
    ("predict-junk-model", "predict {junk_onnx} {image}", 2, "junk.onnx"),
    ("predict-pickle-model", "predict {evil_onnx} {image}", 2, "evil.onnx"),
    ("predict-no-metadata", "predict {onnx} {image}", 2, "plain.onnx"),
    ("predict-not-an-image", "predict {labelled} {junk}", 2, "junk.txt"),
    ("predict-bad-top-k", "predict {labelled} {image} --top-k 0", 2, "top-k"),
]


def _plain_onnx(path: Path, metadata: bool = False) -> None:
    """A valid ONNX graph (Identity (N, 10) -> (N, 10)); with `metadata`, labelled like a kdedge export."""
    import onnx
    from onnx import TensorProto, helper

    from kdedge.runtime.onnx_meta import build_metadata, set_metadata

    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 10])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["logits"])], "plain", [images], [logits])
    model = helper.make_model(graph)
    if metadata:
        set_metadata(
            model,
            build_metadata(CARD),
        )
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, str]:
    """A finished run and the bad files the cases hand to kdedge."""
    tmp = tmp_path_factory.mktemp("matrix")
    recipe = write_recipe(tmp / "recipe.yaml", student={"epochs": 1})
    run = tmp / "finished_run"
    code, _, err = run_kdedge("distill", recipe, "-q", "--out", run)
    assert code == 0, err
    (tmp / "typo.yaml").write_text((tmp / "recipe.yaml").read_text().replace("student:", "studnet:"))
    (tmp / "list.yaml").write_text("- name: x\n- data: y\n")
    (tmp / "broken.yaml").write_text("name: x\ndata: {name: mnist\n")
    (tmp / "tag.yaml").write_text(f'name: !!python/object/apply:os.system ["touch {tmp}/PWNED"]\n')
    write_recipe(tmp / "student_only.yaml", teacher=None, distillation={"loss": "none"})
    (tmp / "empty").mkdir()
    payload = pickle.dumps(_EvilPayload(tmp / "PWNED"))
    (tmp / "evil.pt").write_bytes(payload)
    (tmp / "evil.onnx").write_bytes(payload)
    (tmp / "junk.txt").write_text("not weights, not an image\n")
    (tmp / "junk.onnx").write_text("not an onnx model\n")
    _plain_onnx(tmp / "plain.onnx")
    _plain_onnx(tmp / "labelled.onnx", metadata=True)
    Image.fromarray(np.full((28, 28), 200, dtype=np.uint8)).save(tmp / "digit.png")
    files = {
        "evil": "evil.pt",
        "evil_onnx": "evil.onnx",
        "junk": "junk.txt",
        "junk_onnx": "junk.onnx",
        "onnx": "plain.onnx",
        "image": "digit.png",
    }
    return {"tmp": str(tmp), "run": str(run), "recipe": str(recipe), "labelled": str(tmp / "labelled.onnx")} | {
        key: str(tmp / name) for key, name in files.items()
    }


class _EvilPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize(
    ("argv", "code", "expected"), [pytest.param(*case[1:4], id=case[0], marks=case[4:]) for case in CASES]
)
def test_bad_input(world, argv, code, expected):
    run, tmp = Path(world["run"]), Path(world["tmp"])
    before = checksums(run)
    args = [part.format(**world) for part in argv.split()]
    got, _, err = run_kdedge(*args)
    line = one_error_line(err)
    assert got == code, err
    assert line.startswith("error: ") and expected.format(**world) in line, line
    assert checksums(run) == before, "a pre-existing run directory was modified"
    assert not (tmp / "PWNED").exists()
    shutil.rmtree(tmp / "new", ignore_errors=True)


def test_cases_reach_every_command():
    commands = {case[1].split()[0] for case in CASES}
    assert {"distill", "train", "sweep", "eval", "export", "bench", "predict"} <= commands and len(CASES) >= 25


@pytest.mark.parametrize("argv", ["distill {recipe} --set student.epochs=-3", "predict {evil_onnx} {image}"])
def test_real_entry_point_prints_one_line(world, argv):
    """The same through `python -m kdedge` (warnings, logging and rich output of a real process count too)."""
    result = run_subprocess(*[part.format(**world) for part in argv.split()])
    assert result.returncode == 2 and one_error_line(result.stderr).startswith("error: ")


def test_debug_shows_the_traceback(world):
    result = run_subprocess("--debug", "distill", world["recipe"], "--set", "student.epochs=-3")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_summary_of_finished_run_is_json(world):
    assert json.loads((Path(world["run"]) / "summary.json").read_text())["finished"] is True
