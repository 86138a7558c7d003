"""kdedge search, the parts: the space file, --target, the budget, the rung plan, halving, the pick, the cost
stage's cache and shortcuts, the teacher seen at its own input size. Fast: no training, no export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from kdedge.errors import InputError
from kdedge.experiments.search import cost as cost_module
from kdedge.experiments.search.candidate import TeacherView, candidate_recipe
from kdedge.experiments.search.cost import CostSettings, cost_stage
from kdedge.experiments.search.cost_cache import CostCache
from kdedge.experiments.search.finalists import pick
from kdedge.experiments.search.halving import Rung, plan_rungs, run_halving
from kdedge.experiments.search.space import Candidate, candidates, load_space, round_size, space_text
from kdedge.experiments.search.target import Budget, parse_target
from kdedge.models import is_model
from kdedge.recipe import load_recipe


def test_packaged_space_is_valid_and_spans_tiny_to_mobile_models() -> None:
    space = load_space()
    assert all(is_model(family.model) for family in space.families)
    names = {family.label for family in space.families}
    assert {"mlp_16", "small_cnn_8", "mobilenetv3_small_050", "mobilenetv3_large_100", "resnet10t_narrow"} <= names
    found = candidates(space, 32)
    assert {c.image_size for c in found} == {24, 32, 48}
    assert not [c for c in found if c.model == "mlp" and c.image_size > 32]  # max_size: tiny inputs only
    assert "families:" in space_text()


def test_sizes_scale_with_the_recipes_input_and_round_to_multiples_of_4() -> None:
    assert [round_size(s * 28) for s in (0.75, 1.0, 1.5)] == [20, 28, 44]
    assert [round_size(s * 32) for s in (0.75, 1.0, 1.5)] == [24, 32, 48] and round_size(2) == 8


def test_the_recipes_student_is_always_a_candidate(tmp_path: Path) -> None:
    space = load_space()
    own = Candidate("mlp", "mlp", 28, {"hidden": [30, 30]}, own=True)
    found = candidates(space, 28, own)
    assert found[0] == own and sum(c.own for c in found) == 1
    same = Candidate("mobilenetv3_small_050", "mobilenetv3_small_050", 28, {}, own=True)
    marked = [c for c in candidates(space, 28, same) if c.own]
    assert [c.name for c in marked] == ["mobilenetv3_small_050@28"]  # the space's own row, marked


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: x\nfamilies: [{model: resnet81}]", "families.0.model: unknown model 'resnet81', did you mean"),
        ("families: [{model: mlp}]", "name: Field required"),
        ("name: x\nfamilies: []", "families"),
        ("name: x\nfamilies: [{model: mlp, scales: [1], sizes: [28]}]", "scales or sizes"),
        ("name: x\nfamilies: [{model: mlp}, {model: mlp}]", "name:"),
        ("name: x\nfamilies: [{model: mlp, colour: red}]", r"families.0.colour: unknown key \(allowed: model"),
        ("- just a list", "YAML mapping"),
        ("name: [unclosed", "invalid YAML"),
    ],
)
def test_a_bad_space_file_is_one_input_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as err:
        load_space(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_space_file_is_one_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_space(tmp_path / "nope.yaml")


def test_targets_come_from_the_format_table() -> None:
    target = parse_target("onnx-int8")
    assert (target.runtime, target.precision, target.export_format) == ("onnxruntime", "int8", "onnx")
    assert parse_target("openvino-int8").export_format == "onnx"
    with pytest.raises(InputError, match="unknown target 'litert-int4'.*allowed: onnx-fp32"):
        parse_target("litert-int4")
    with pytest.raises(InputError, match="did you mean 'onnx-int8'"):
        parse_target("onx-int8")
    with pytest.raises(InputError, match="GPU"):
        parse_target("tensorrt-int8")
    with pytest.raises(InputError, match="macOS"):
        parse_target("coreml-fp16")
    with pytest.raises(InputError, match="fp16 ONNX is for the GPU"):
        parse_target("onnx-fp16")


def test_budget_checks_and_misses() -> None:
    budget = Budget(2.0, size_mb=4.0, percentile="p90")
    row = {"latency_ms_p50": 1.0, "latency_ms_p90": 2.5, "size_mb": 3.0}
    assert budget.misses(row) == ["latency p90 2.5 ms > 2 ms"]
    assert budget.overshoot(row) == pytest.approx(1.25)
    assert Budget(3.0, size_mb=4.0).misses(row) == []
    for bad in (Budget(0), Budget(1, size_mb=-1), Budget(float("nan")), Budget(1, percentile="p99")):
        with pytest.raises(InputError):
            bad.check()


def test_rungs_halve_the_candidates_and_end_at_the_full_schedule() -> None:
    assert plan_rungs(15, 6, 3, 3) == [Rung(0, 1, 15), Rung(1, 2, 5), Rung(2, 6, 3)]
    assert plan_rungs(2, 6, 3, 3) == [Rung(0, 6, 2)]
    assert plan_rungs(5, 2, 2, 1) == [Rung(0, 1, 5), Rung(1, 2, 1)]  # equal epochs: one rung
    for count in range(1, 60):
        rungs = plan_rungs(count, 30, 3, 3)
        assert rungs[-1].epochs == 30 and rungs[-1].count == min(count, 3)
        assert all(a.epochs < b.epochs and a.count >= b.count for a, b in zip(rungs, rungs[1:], strict=False))


def _candidates(count: int) -> list[Candidate]:
    return [Candidate(f"m{i}", "mlp", 28, {"hidden": [i + 1]}) for i in range(count)]


def test_halving_keeps_the_best_by_validation_accuracy_and_latency_breaks_ties() -> None:
    survivors = _candidates(6)
    # m5 is best, m1 and m2 tie (m1 is faster); m3 fails to train
    accuracy = {"m0": 0.5, "m1": 0.8, "m2": 0.8, "m3": None, "m4": 0.6, "m5": 0.9}
    trained: list[tuple[str, int]] = []

    def train(pairs):
        trained.extend((c.name, e) for c, e in pairs)
        out = {}
        for c, epochs in pairs:
            value = accuracy[c.family]
            out[c.name] = {"error": "boom"} if value is None else {"student": {"val_accuracy": value + epochs / 100}}
        return out

    rungs = plan_rungs(6, 4, 2, 2)
    result = run_halving(survivors, rungs, train, {"m1@28": 1.0, "m2@28": 2.0}, 2, lambda: True)
    assert result.finalists == ["m5@28", "m1@28"]
    assert [n for n, e in trained if e == rungs[-1].epochs] == ["m5@28", "m1@28"]
    assert result.reached["m3@28"][0] == {"error": "boom"} and not result.timed_out


def test_halving_stops_when_time_is_up_and_keeps_the_best_trained_so_far() -> None:
    calls = []

    def train(pairs):
        calls.append(len(pairs))
        first = pairs[:2]  # time ran out after two trainings
        return {c.name: {"student": {"val_accuracy": 0.1 * int(c.family[1:])}} for c, _ in first}

    result = run_halving(_candidates(5), plan_rungs(5, 4, 2, 2), train, {}, 2, lambda: True)
    assert result.timed_out and result.finalists == ["m1@28", "m0@28"] and calls == [5]


def test_pick_is_the_most_accurate_file_within_budget_else_the_closest() -> None:
    budget = Budget(1.0)
    measured = {
        "a": {"status": "ok", "accuracy": 0.9, "latency_ms_p50": 1.2, "misses": ["latency"]},
        "b": {"status": "ok", "accuracy": 0.8, "latency_ms_p50": 0.9, "misses": []},
        "c": {"status": "ok", "accuracy": 0.8, "latency_ms_p50": 0.5, "misses": []},
        "d": {"status": "error: export failed", "misses": []},
    }
    assert pick(measured, budget) == ("c", None)
    over = {k: v | {"misses": ["x"]} for k, v in measured.items() if k != "d"}
    over["c"]["latency_ms_p50"] = 5.0
    assert pick(over, budget) == (None, "b")


def test_cost_stage_caches_skips_and_never_times_what_cannot_fit(tmp_path: Path, monkeypatch) -> None:
    """Size floor: not written; a family too slow at its small input: larger inputs not timed; a second
    stage with another budget reads every measurement from the cache."""
    timed: list[str] = []
    latency = {16: 0.5, 28: 3.0, 40: 9.0}

    def fake_measure(candidate, calibration, settings):
        timed.append(candidate.name)
        return {
            "status": "ok",
            "params": 10,
            "macs": 10,
            "size_mb": 0.1,
            "latency_ms_p50": latency[candidate.image_size],
            "latency_ms_p90": latency[candidate.image_size],
            "measure_seconds": 2.0,
        }

    monkeypatch.setattr(cost_module, "measure", fake_measure)
    family = [Candidate("cnn", "small_cnn", size, {}) for size in (16, 28, 40)]
    settings = CostSettings(parse_target("onnx-fp32"), Budget(1.0))
    cache = CostCache([tmp_path / "search.json", tmp_path / "shared.json"], {"target": "onnx-fp32"})
    first = cost_stage(family, settings, cache, lambda side: None, lambda: None)
    assert timed == ["cnn@16", "cnn@28"]  # 40 px: inferred, not timed
    assert first["cnn@16"]["misses"] == [] and "already takes" in first["cnn@40"]["misses"][0]
    relaxed = CostSettings(parse_target("onnx-fp32"), Budget(5.0))
    fresh = CostCache([tmp_path / "other.json", tmp_path / "shared.json"], {"target": "onnx-fp32"})
    second = cost_stage(family, relaxed, fresh, lambda side: None, lambda: None)
    assert timed == ["cnn@16", "cnn@28", "cnn@40"]  # only the one never measured
    assert second["cnn@28"]["from"] == "shared cache" and second["cnn@28"]["misses"] == []
    other_machine = CostCache([tmp_path / "shared.json"], {"target": "onnx-fp32", "threads": 2})
    assert other_machine.get(family[0]) is None  # another context is another measurement


def test_size_floor_drops_a_candidate_without_writing_it() -> None:
    settings = CostSettings(parse_target("onnx-fp32"), Budget(10.0, size_mb=0.01), num_classes=10, in_channels=1)
    record = cost_module.measure(Candidate("mlp", "mlp", 28, {"hidden": [64]}), None, settings)
    assert record["status"] == "over budget" and record["size_floor_mb"] > 0.2 and "size_mb" not in record


def test_teacher_view_feeds_the_teacher_its_own_size_and_normalisation() -> None:
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    pixels = torch.rand(2, 3, 8, 8)
    expected = teacher((pixels - 0.5) / 0.25)
    view = TeacherView(teacher, 8, ((0.1,) * 3, (2.0,) * 3), ((0.5,) * 3, (0.25,) * 3))
    assert torch.allclose(view((pixels - 0.1) / 2.0), expected, atol=1e-5)
    small = torch.nn.functional.interpolate(pixels, size=(4, 4), mode="bilinear", antialias=True)
    assert view((small - 0.1) / 2.0).shape == (2, 4)


def test_candidate_recipe_changes_only_the_student_size_and_teacher(tmp_path: Path) -> None:
    base = load_recipe("retina_mobile")
    recipe = candidate_recipe(
        base, Candidate("ghostnet_050", "ghostnet_050", 24, {}), 2, "/t/teacher.safetensors", None
    )
    assert (recipe.student.model, recipe.student.epochs, recipe.data.image_size) == ("ghostnet_050", 2, 24)
    assert recipe.teacher.checkpoint == "/t/teacher.safetensors" and recipe.student.lr == base.student.lr
    assert recipe.distillation == base.distillation.model_copy(update={"bias_fix": None})
    with_val = candidate_recipe(load_recipe("quickstart_mnist"), Candidate("mlp", "mlp", 28, {}), 1, None, 400)
    assert with_val.data.val_size == 400
    yaml.safe_dump(recipe.to_dict())  # plain data: it goes to Ray workers and recipe.yaml


def test_the_python_api_takes_the_commands_options(tmp_path: Path) -> None:
    import kdedge

    with pytest.raises(InputError, match="unknown target 'tflite-int8'"):
        kdedge.search("quickstart_mnist", target="tflite-int8", latency_ms=1, out=tmp_path / "s")
    with pytest.raises(InputError, match="give --target and --latency-ms"):
        kdedge.search("quickstart_mnist", latency_ms=1)
    assert not (tmp_path / "s").exists()


def test_a_candidates_file_is_written_as_export_writes_it(tmp_path: Path) -> None:
    """The cost stage's own ONNX int8 file of a random-weights model: written, checked, sized."""
    import numpy as np

    from kdedge.runtime.check import check_model_file

    settings = CostSettings(parse_target("onnx-int8"), Budget(1.0), num_classes=10, in_channels=1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10)).eval()
    calibration = np.random.default_rng(0).standard_normal((8, 1, 28, 28), dtype=np.float32)
    path = cost_module.write_target_file(model, (1, 28, 28), calibration, settings, tmp_path)
    check_model_file(path)
    assert path.name == "candidate.int8.onnx" and 0 < cost_module.file_size_mb(path) < 0.05


def test_search_results_become_a_results_table(tmp_path: Path) -> None:
    """bench/tables.py collect: search folders -> search_<name>.json -> a table the results page accepts."""
    import json
    import sys

    from kdedge.report.results_page import tables_of

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from tablegen import search as search_results
    from tablegen.files import read_results

    run = {"accuracy": 0.5, "latency_ms_p50": 0.4, "status": "ok"}
    record = {
        "recipe": "retina_mobile",
        "target": "litert-int8",
        "budget": {"latency_ms": 1.0, "size_mb": 5.0, "peak_mb": None, "percentile": "p50"},
        "threads": 1,
        "batch": 1,
        "machine": {"cpu": "Xeon", "cores": 2, "load_avg_1m_at_start": 1.2},
        "invocations": [{"started": "2026-12-06T10:00:00", "wall_s": 1800, "load_avg_1m": 1.1}],
        "time": {"cost_s": 600, "cost_saved_s": 0, "cost_from_shared_cache": 0, "teacher_s": 0, "train_s": 900,
                 "export_bench_s": 120, "other_s": 180, "wall_s": 1800},
        "pick": "ghostnet_050@32",
        "rows": [
            {"name": "ghostnet_050@32", "own": False, "status": "best", "size_mb": 1.4} | run,
            {"name": "mobilenetv3_large_100@32", "own": True, "status": "stopped early", "cost_latency_ms_p50": 0.6},
        ],
        "seeds": {
            "pick": {"name": "ghostnet_050@32", "runs": [run, run | {"accuracy": 0.52}]},
            "own": {"name": "mobilenetv3_large_100@32", "runs": [run | {"accuracy": 0.48, "latency_ms_p50": 0.6}]},
        },
        "argv": ["kdedge", "search", "retina_mobile", "--target", "litert-int8", "--latency-ms", "1"],
    }  # fmt: skip
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "search.json").write_text(json.dumps(record))
    search_results.collect("retina", [tmp_path / "s1"], "title", 95, [], results=tmp_path)
    tables, _ = tables_of(search_results.tables(read_results(tmp_path)))
    (table,) = tables
    assert table["commands"] == ["kdedge search retina_mobile --target litert-int8 --latency-ms 1"]
    row = dict(zip(table["columns"], table["rows"][0], strict=True))
    assert row["search's pick"] == "ghostnet_050@32" and row["pick acc % (seeds)"] == "50.0 / 52.0 (51.0)"
    assert row["its acc % (seeds)"] == "48.0" and row["it fits"] == "yes" and row["search min"] == "30.0"
    assert "ghostnet_050@32 51.0 % vs the recipe's 48.0 %" in table["headline"]


def test_search_varies_the_logit_method_and_refuses_a_feature_method(tmp_path: Path) -> None:
    """--set distillation.loss / loss_kwargs reach every candidate; a feature method names layers of one
    student, which a search replaces: one line, before anything is written."""
    import kdedge

    base = load_recipe("quickstart_mnist", {"distillation.loss": "dkd", "distillation.loss_kwargs.nckd_weight": 2})
    recipe = candidate_recipe(base, Candidate("small_cnn_8", "small_cnn", 28, {"width": 8}), 1, None, None)
    assert (recipe.distillation.loss, recipe.distillation.loss_kwargs) == ("dkd", {"nckd_weight": 2})
    features = ("distillation.features=[{student: '1', teacher: '1'}]", "distillation.feature_loss=at")
    with pytest.raises(InputError, match="search tries other architectures"):
        kdedge.search("quickstart_mnist", overrides=features, target="onnx-fp32", latency_ms=1, out=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_the_recipes_own_student_reaches_the_final_rung_whatever_its_rank() -> None:
    """A slow starter ranked last after the short schedule still trains the full schedule when it is the
    recipe's own student (`keep`), beside the finalists, which are the ones the search picks without it."""
    survivors = _candidates(6)
    trained: list[tuple[str, int]] = []

    def train(pairs):
        trained.extend((c.name, e) for c, e in pairs)
        return {c.name: {"student": {"val_accuracy": int(c.family[1:]) / 10}} for c, e in pairs}

    rungs = plan_rungs(6, 4, 2, 2)
    result = run_halving(survivors, rungs, train, {}, 2, lambda: True, keep=frozenset({"m0@28"}))
    assert result.finalists == ["m5@28", "m4@28", "m0@28"]
    assert [n for n, e in trained if e == rungs[-1].epochs] == ["m5@28", "m4@28", "m0@28"]
    plain = run_halving(survivors, rungs, train, {}, 2, lambda: True)
    assert plain.finalists == ["m5@28", "m4@28"]
    ahead = run_halving(survivors, rungs, train, {}, 2, lambda: True, keep=frozenset({"m4@28"}))
    assert ahead.finalists == ["m5@28", "m3@28", "m4@28"]  # a kept student that ranks high displaces none
