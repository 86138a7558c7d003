"""Feature methods (kdedge.train.features, kdedge.losses.fitnets / attention): hand-computed losses, adapters,
the recipe's keys, layer names with did-you-mean, end to end on real MNIST digits, export untouched, resume
bit-exact."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from cli_helpers import one_error_line, run_kdedge, write_recipe
from resume_world import FITNETS, fitnets_world, restore_state
from safetensors.torch import load_file

from kdedge.errors import InputError
from kdedge.files.rundir import RunDir
from kdedge.losses import FEATURE_LOSSES
from kdedge.losses.attention import attention_transfer
from kdedge.losses.fitnets import fitnets_hint
from kdedge.models.builders import build_model
from kdedge.recipe import validate_recipe
from kdedge.train.features import WithAdapters, check_layer_names, make_adapter

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LOGITS, TARGETS = torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)


def test_fitnets_is_the_summed_mse_of_each_pair_by_hand() -> None:
    student = [torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.ones(1, 1, 2, 2)]
    teacher = [torch.tensor([[1.0, 0.0], [0.0, 4.0]]), torch.zeros(1, 1, 2, 2)]
    # pair 1: squared errors 0, 4, 9, 0 -> mean 13/4; pair 2: four 1s -> mean 1
    assert fitnets_hint(LOGITS, LOGITS, TARGETS, student, teacher).item() == pytest.approx(13 / 4 + 1)


def test_attention_transfer_by_hand() -> None:
    # one image, 2 channels, 1x2 positions: mean over channels of squares -> [(1+9)/2, (4+0)/2] = [5, 2]
    student = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])
    teacher = torch.tensor([[[[1.0, 1.0]]]])  # one channel: map [1, 1]
    q_student = torch.tensor([5.0, 2.0]) / math.sqrt(29)
    q_teacher = torch.tensor([1.0, 1.0]) / math.sqrt(2)
    expected = ((q_student - q_teacher) ** 2).mean().item()
    got = attention_transfer(LOGITS, LOGITS, TARGETS, [student, student], [teacher, teacher])
    assert got.item() == pytest.approx(2 * expected)  # summed over the two (identical) pairs


def test_attention_transfer_pools_the_larger_map_and_takes_mlp_features() -> None:
    student, teacher = torch.rand(2, 3, 8, 8), torch.rand(2, 5, 4, 4)
    pooled = torch.nn.functional.adaptive_avg_pool2d(student, (4, 4))
    assert torch.allclose(
        attention_transfer(LOGITS, LOGITS, TARGETS, [student], [teacher]),
        attention_transfer(LOGITS, LOGITS, TARGETS, [pooled], [teacher]),
    )
    hidden = torch.rand(2, 6)
    assert attention_transfer(LOGITS, LOGITS, TARGETS, [hidden], [hidden]).item() == 0


def test_adapters_are_fitnets_regressors_where_shapes_differ() -> None:
    assert isinstance(make_adapter(torch.Size([8, 4, 4]), torch.Size([8, 4, 4]), "a"), torch.nn.Identity)
    conv = make_adapter(torch.Size([8, 4, 4]), torch.Size([16, 4, 4]), "a")
    assert isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (1, 1) and conv.out_channels == 16
    linear = make_adapter(torch.Size([16]), torch.Size([32]), "a")
    assert isinstance(linear, torch.nn.Linear) and (linear.in_features, linear.out_features) == (16, 32)
    with pytest.raises(InputError, match="same spatial size"):
        make_adapter(torch.Size([8, 4, 4]), torch.Size([8, 2, 2]), "a")


def test_recipe_keys_are_checked() -> None:
    base = {"name": "t", "data": {"name": "mnist"}, "teacher": {"model": "mlp"}, "student": {"model": "mlp"}}
    recipe = validate_recipe(base | {"distillation": FITNETS})
    assert recipe.distillation.features[0].student == "2" and recipe.distillation.feature_weight == 10
    for bad, message in [
        ({"feature_loss": "fitnet", "features": FITNETS["features"]}, "did you mean 'fitnets'"),
        ({"feature_loss": "at"}, "feature_loss at needs features"),
        ({"features": [{"student": "1", "teacher": "1", "layer": "x"}], "feature_loss": "at"}, "layer"),
        ({**FITNETS, "feature_loss_kwargs": {"p": 2}}, "feature_loss_kwargs.p"),
    ]:
        with pytest.raises(InputError, match=message):
            validate_recipe(base | {"distillation": bad})
    off = validate_recipe(base | {"distillation": FITNETS | {"feature_loss": "none"}})  # as a sweep's grid does
    assert off.distillation.feature_loss is None and off.distillation.features[0].teacher == "2"
    plain = validate_recipe(base)  # a recipe without a feature method keeps its fingerprint's keys
    assert "features" not in plain.to_dict()["distillation"]
    assert recipe.fingerprint() != plain.fingerprint() and set(FEATURE_LOSSES.names()) >= {"fitnets", "at"}


def test_a_misnamed_layer_says_did_you_mean() -> None:
    model = build_model("small_cnn", 10, 1, 28, {"width": 4})
    with pytest.raises(InputError, match=r"student \(Sequential\) has no layer '12'; did you mean '\d+'\?"):
        check_layer_names(model, ["12"], "student")
    with pytest.raises(InputError, match="its layers: 0, 1, 2"):
        check_layer_names(model, ["conv_body"], "teacher")


def _kd_run(tmp_path: Path, name: str, distillation: dict) -> Path:
    recipe = write_recipe(tmp_path / f"{name}.yaml", distillation={"loss": "hinton", "alpha": 0.7} | distillation)
    code, out, err = run_kdedge("distill", recipe, "--out", tmp_path / name)
    assert code == 0, err
    feature_term = "+ 10 x fitnets on 1 layer pair (teacher live each step)"
    assert (feature_term in " ".join(out.split())) == (name == "fitnets"), out  # the run's header says it
    return tmp_path / name


@pytest.fixture(scope="module")
def fitnets_and_kd(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("features")
    return _kd_run(folder, "fitnets", FITNETS), _kd_run(folder, "kd", {})


def test_fitnets_end_to_end_on_mnist_leaves_a_plain_student(fitnets_and_kd) -> None:
    fitnets, kd = fitnets_and_kd
    summary = json.loads((fitnets / "summary.json").read_text())
    assert summary["finished"] and summary["student"]["test_accuracy"] > 0.3  # 16 hidden units, 3 epochs
    got, plain = load_file(fitnets / "student.safetensors"), load_file(kd / "student.safetensors")
    assert got.keys() == plain.keys() and not any("adapter" in key for key in got)
    assert not (fitnets / "teacher_logits.safetensors").exists()  # a feature method runs the teacher live
    assert (kd / "teacher_logits.safetensors").exists()
    fitnets_losses = [r["train_loss"] for r in RunDir(fitnets).read_metrics() if r["stage"] == "student"]
    kd_losses = [r["train_loss"] for r in RunDir(kd).read_metrics() if r["stage"] == "student"]
    assert fitnets_losses != kd_losses  # the hint term is in the loss


def test_exported_graph_of_a_fitnets_student_is_a_kd_students(fitnets_and_kd) -> None:
    import onnx

    graphs = []
    for run in fitnets_and_kd:
        code, _, err = run_kdedge("export", run, "--precision", "fp32", "-q")
        assert code == 0, err
        model = onnx.load(run / "export" / "student.fp32.onnx")
        graphs.append(([node.op_type for node in model.graph.node], len(model.graph.initializer)))
    assert graphs[0] == graphs[1]


def test_attention_transfer_end_to_end_on_cnns(tmp_path: Path) -> None:
    teacher = {"model": "small_cnn", "model_kwargs": {"width": 8}, "augment": "none"}
    student = {"model": "small_cnn", "model_kwargs": {"width": 4}, "epochs": 1}
    pairs = [{"student": "1", "teacher": "1"}, {"student": "4", "teacher": "4"}]
    recipe = write_recipe(
        tmp_path / "at.yaml",
        teacher=teacher,
        student=student,
        distillation={"loss": "hinton", "features": pairs, "feature_loss": "at"},
    )
    code, _, err = run_kdedge("distill", recipe, "-q", "--out", tmp_path / "run")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["student"]["test_accuracy"] > 0.2


def test_a_typo_in_a_layer_name_is_one_line_with_did_you_mean_before_training(tmp_path: Path) -> None:
    recipe = write_recipe(
        tmp_path / "typo.yaml", distillation={**FITNETS, "features": [{"student": "2", "teacher": "22"}]}
    )
    code, _, err = run_kdedge("distill", recipe, "-q", "--out", tmp_path / "run")
    line = one_error_line(err)
    assert code == 2 and "the teacher (Sequential) has no layer '22'; did you mean '2'?" in line
    assert not (tmp_path / "run" / "teacher.safetensors").exists()  # failed before the teacher trained


def test_resume_with_fitnets_is_bit_exact_for_student_and_adapter(tmp_path: Path, monkeypatch) -> None:
    """As tests/test_resume.py: save a state after every step, restart from a mid-epoch one, compare."""
    world = fitnets_world(tmp_path, monkeypatch, {"hidden": [8], "dropout": 0.3})

    def train(resuming: bool) -> dict[str, torch.Tensor]:
        student, method = world.student()
        trained = WithAdapters(student, method.adapters)
        initial.append(method.adapters[0].weight.detach().clone())
        checkpoint = world.checkpoint(trained, resuming)
        world.fit(trained, checkpoint, method)
        method.capture.remove()
        return {k: v.clone() for k, v in trained.state_dict().items()}

    initial: list[torch.Tensor] = []
    reference = train(resuming=False)
    assert reference["adapters.0.weight"].shape == (12, 8)  # a Linear 8 -> 12, trained with the student:
    assert not torch.equal(reference["adapters.0.weight"], initial[0])  # its parameters are in the optimiser
    restore_state(world.run, world.saves[2])  # epoch 1 after step 3 of 4
    torch.manual_seed(12345)
    resumed = train(resuming=True)
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_kdedge_layers_lists_names_types_and_shapes(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "tiny.yaml")
    code, out, err = run_kdedge("layers", recipe, "--json", "--set", "data.train_limit=100", "data.test_limit=10")
    assert code == 0, err
    tables = json.loads(out)
    assert [(row["name"], row["type"], row["shape"]) for row in tables["student"]] == [
        ("0", "Flatten", [784]),
        ("1", "Linear", [16]),
        ("2", "ReLU", [16]),
        ("3", "Linear", [10]),
    ]
    assert tables["teacher"][1] == {"name": "1", "type": "Linear", "shape": [32]}
