"""Everyday use as a newcomer meets it: help text that keeps its square brackets, an install
name that is ours, result tables that fit 80 and 120 columns without cutting the text that tells rows
apart. Fast: no training, no torch import for most."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTION = "kdedge-distill"  # `kdedge` on PyPI is an unrelated project (graph edge bundling)


def _squash(text: str) -> str:
    """Help text without whitespace and box borders: what survives any wrapping rich does."""
    return re.sub(r"[\s│╭╮╰╯─]+", "", text)


def _commands() -> list[tuple[list[str], object]]:
    """(argv prefix, command) of every command and sub-command of `kdedge`."""
    from kdedge.cli import app

    found, todo = [], [([], typer.main.get_command(app))]
    while todo:
        path, command = todo.pop()
        found.append((path, command))
        if hasattr(command, "commands"):  # a group (typer vendors its own click: no isinstance)
            todo += [([*path, name], sub) for name, sub in command.commands.items()]
    return found


def _help(argv: list[str]) -> str:
    from typer.testing import CliRunner

    from kdedge.cli import app

    result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_help_text_prints_its_square_brackets_and_text() -> None:
    """Rich markup ate `[tensorboard]` from `kdedge-distill[tensorboard]`: every help string prints whole."""
    checked = 0
    for argv, command in _commands():
        shown = _squash(_help(argv))
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            first_paragraph = text.split("\n\n")[0]
            where = f"kdedge {' '.join(argv)} --help"
            assert _squash(first_paragraph) in shown, f"{where} lost: {first_paragraph}"
            checked += "[" in text
    assert checked >= 2  # --tensorboard and --int8-method name an extra in brackets


def test_the_distribution_name_is_ours_everywhere() -> None:
    """pyproject names kdedge-distill (the import and the command stay kdedge); no message tells users to
    `pip install kdedge[...]`, which would fetch the unrelated PyPI project."""
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(rf'^name = "{DISTRIBUTION}"$', pyproject, re.M)
    assert re.search(r'^kdedge = "kdedge\.', pyproject, re.M)  # the command keeps its name
    stale = []
    for path in [REPO / "README.md", *REPO.glob("docs/**/*.md"), *(REPO / "kdedge").rglob("*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"(pip install|needs|extra:?)\s+'?kdedge\[", line):
                stale.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not stale, "\n".join(stale)
    readme = (REPO / "README.md").read_text()
    assert f"pip install '{DISTRIBUTION}[" in readme or f"{DISTRIBUTION.replace('-', '_')}-" in readme


def test_readme_says_how_to_get_kdedge_on_path() -> None:
    """After `make demo` the command lives in .venv/bin: README says to activate it or call it there."""
    readme = (REPO / "README.md").read_text()
    assert "source .venv/bin/activate" in readme and ".venv/bin/kdedge" in readme


# -- tables that fit ---------------------------------------------------------------------------------------
def _render(table, width: int) -> list[str]:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text().splitlines()


def _assert_rows_whole(lines: list[str], width: int, rows: list[tuple[str, ...]]) -> None:
    """Every line fits; each row's distinguishing texts appear whole, together on one line."""
    table = "\n".join(lines)
    assert max(len(line) for line in lines) <= width, table
    for texts in rows:
        whole = [rf"(?<![\w.]){re.escape(text)}(?![\w.])" for text in texts]
        found = any(all(re.search(pattern, line) for pattern in whole) for line in lines)
        assert found, f"{texts} not whole on one line at {width} columns:\n{table}"


def _bench_rows() -> list[dict]:
    rows = []
    for stage, latency, flops in (("teacher", 2.5, 4_790_000), ("student", 0.11, 49_000)):
        for runtime, precision in (
            ("torch", "fp32"),
            ("onnxruntime", "fp32"),
            ("onnxruntime", "int8"),
            ("openvino", "bf16"),
        ):
            for batch in (1, 32):
                rows.append(
                    {
                        "model": f"hinton_mnist_800/{stage}",
                        "arch": "mlp",
                        "stage": stage,
                        "runtime": runtime,
                        "precision": precision,
                        "batch_size": batch,
                        "latency_ms_p50": latency * batch,
                        "latency_ms_p99": latency * batch * 1.2,
                        "throughput_per_s": 1000 * batch / latency,
                        "peak_mem_mb": 12.0,
                        "flops": flops,
                        "size_mb": 0.2,
                        "accuracy": 0.97,
                        "qwk": None,
                        "speedup_vs_teacher": 22.0 if stage == "student" else None,
                        "accuracy_delta_vs_teacher": -1.2 if stage == "student" else None,
                        "peak_fraction": None,
                        "deploy": precision == "int8",
                        "status": "ok",
                    }
                )
    return rows


@pytest.mark.parametrize("width", [80, 120])
def test_bench_table_fits_and_keeps_model_runtime_precision_whole(width: int) -> None:
    from kdedge.bench.results import bench_table

    rows = _bench_rows()
    result = {
        "rows": rows,
        "peak_gflops": None,
        "machine": {"cpu": "AMD EPYC 7B13", "cores": 2, "threads": 2, "device": "cpu"},
    }
    lines = _render(bench_table(result, width), width)
    _assert_rows_whole(lines, width, [(r["model"], r["runtime"], r["precision"]) for r in rows])
    text = "\n".join(lines)
    assert "p50 ms" in text and "acc %" in text and "…" not in text
    assert "peak" not in text.split("\n")[3] and "QWK" not in text  # empty columns are not shown
    if width == 80:
        assert "hidden to fit 80 columns" in text and "--wide" in text
    wide = "\n".join(_render(bench_table(result, width, wide=True), 250))
    assert "FLOPs" in wide and "49k" in wide and "4.79M" in wide and "MFLOP" not in wide


@pytest.mark.parametrize("width", [80, 120])
def test_export_table_fits_and_keeps_file_names_whole(width: int) -> None:
    from kdedge.export.table import ExportRow, export_table

    rows = []
    for stage in ("teacher", "student"):
        for precision in ("fp32", "fp16", "int8"):
            rows.append(
                ExportRow(
                    stage,
                    precision,
                    seconds=1.5,
                    size_mb=0.1,
                    max_abs_diff=1.9,
                    rel_diff=0.1,
                    random_agreement=0.38,
                    test_accuracy=0.97,
                    test_agreement=0.995,
                    test_max_abs_diff=0.02,
                    test_count=200,
                )
            )
    lines = _render(export_table(rows, "runs/try1: ONNX export (opset 20, dynamo exporter)", width), width)
    _assert_rows_whole(lines, width, [(f"{r.stage}.{r.precision}",) for r in rows])
    text = "\n".join(lines)
    assert "=fp32 %" in text and "99.50" in text
    assert "1.9e+00" not in "".join(line for line in lines if ".int8." in line)  # random-input |Δ|: fp32 only


def test_export_progress_line_gives_random_input_parity_for_fp32_only() -> None:
    from kdedge.export.table import ExportRow, file_line

    common = dict(
        seconds=1.0,
        size_mb=0.1,
        max_abs_diff=1.86,
        rel_diff=0.2,
        random_agreement=0.38,
        test_accuracy=0.97,
        test_agreement=0.995,
        test_max_abs_diff=0.03,
        test_count=200,
    )
    int8 = file_line(ExportRow("student", "int8", **common))
    assert "random" not in int8 and "38" not in int8
    assert "agreement with fp32 99.50% on 200 real test images" in int8
    assert "random batches" in file_line(ExportRow("student", "fp32", **common))


@pytest.mark.parametrize("width", [80, 120])
def test_summary_table_fits_hides_qwk_off_ordinal_data_and_train_s_in_eval(width: int) -> None:
    from kdedge.ui.console import summary_table

    row = {
        "model": "resnet18_cifar_teacher",
        "params": 11_000_000,
        "test_accuracy": 0.95,
        "test_errors": 500,
        "test_count": 10_000,
        "test_qwk": 0.9,
    }
    student = row | {"model": "mobilenetv3_small"}
    summary = {"data": {"dataset": "cifar10"}, "teacher": row, "student": student}
    lines = _render(summary_table(summary, "runs/x: re-evaluated", width), width)
    _assert_rows_whole(lines, width, [("teacher", row["model"]), ("student", student["model"])])
    text = "\n".join(lines)
    assert "QWK" not in text and "train s" not in text  # not ordinal; eval trains nothing
    assert "11M" in text and "500/10000" in text
    aptos = summary | {"data": {"dataset": "aptos2019"}, "student": row | {"train_seconds": 12.0}}
    lines = _render(summary_table(aptos, "runs/y", width), width)
    header = next(line for line in lines if "stage" in line)
    assert "QWK" in header and "0.900" in "\n".join(lines)
    assert ("train s" in header) == (width == 120)  # the first column hidden at 80


# -- Ctrl-C and a NaN stop say what to run next -----------------------------------------------------------
def test_ctrl_c_says_what_was_saved_and_the_resume_command_that_works(data_root: Path, tmp_path) -> None:
    """A real SIGINT to `kdedge distill` after its first checkpoint: exit 130, one line naming the state
    file and the exact --resume command; running that command finishes the run."""
    import os
    import shlex
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    args = [
        "distill",
        "hinton_mnist",
        "--set",
        "teacher.epochs=40",
        "--set",
        "student.epochs=1",
        "--set",
        "data.train_limit=200",
        "--set",
        "data.test_limit=100",
        "--set",
        "teacher.model_kwargs.hidden=[16]",
        "--out",
        str(out),
        "--data-root",
        str(data_root),
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kdedge", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 120
    while not (out / "teacher.state.safetensors").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert process.returncode == 130 and len(lines) == 1 and "Traceback" not in err, err
    # saved at the step boundary after the signal (kdedge.train.stop), mid-epoch or at an epoch's end
    assert f"saved: {out / 'teacher.state.safetensors'} (teacher, " in lines[0]
    command = shlex.split(lines[0].split("continue with: ", 1)[1])
    assert command[0] == "kdedge" and command[-2:] == ["--resume", str(out)] and "--out" not in command
    assert "teacher.model_kwargs.hidden=[16]" in command  # the same recipe: --resume accepts it
    resumed = subprocess.run(
        [sys.executable, "-m", "kdedge", *command[1:], "-q"], capture_output=True, text=True, env=env, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "student.safetensors").is_file() and not (out / "teacher.state.safetensors").exists()


@pytest.mark.slow
def test_a_nan_stop_offers_the_retry_that_works(tmp_path: Path, data_root: Path) -> None:
    """--resume refuses a changed lr, so the line offers a fresh start (--force, same --out) with lr / 10."""
    from cli_helpers import one_error_line, run_kdedge, write_recipe

    recipe = write_recipe(
        tmp_path / "r.yaml",
        teacher=None,
        distillation={"loss": "none"},
        student={"optimizer": "sgd", "schedule": "constant", "epochs": 1},
        data={"name": "mnist", "train_limit": 300, "test_limit": 100},
    )
    run = tmp_path / "run"
    code, _, err = run_kdedge(
        "distill", recipe, "-q", "--out", run, "--set", "student.lr=1e30", "--data-root", data_root
    )
    line = one_error_line(err)
    assert code == 1 and "student: loss became nan" in line
    retry = line.split("retry with a lower lr (a new run; --resume continues only the same recipe): ")[1]
    assert (
        retry == f"kdedge distill {recipe} -q --out {run} --set student.lr=1e30 --data-root {data_root} "
        "--set student.lr=1e+29 --force"
    )
    code, _, err = run_kdedge(*retry.replace("lr=1e+29", "lr=0.01").split()[1:])  # the user's lower lr
    assert code == 0, err  # the offered form (same --out, --force) is accepted where --resume is not


# -- every documented command works as written ------------------------------------------------------------
TRAINS = ("distill", "train", "sweep")  # parsed and their recipe + --set values loaded, not trained here
RUN_FOR_REAL = ("recipes", "--version", "eval", "report")  # cheap: run on a copy of a finished tiny run


def _documented_commands() -> list[tuple[str, list[str]]]:
    """(where, argv after `kdedge`) of every `kdedge ...` line in README / docs code blocks and every
    `kdedge ...` or `--set ...` in a packaged recipe's description (a --set runs with its recipe)."""
    import shlex

    import yaml

    found = []
    for path in [REPO / "README.md", *sorted(REPO.glob("docs/*.md"))]:
        blocks = re.findall(r"^```(\w*)\n(.*?)^```", path.read_text(), re.S | re.M)
        for language, block in blocks:
            if language not in ("", "bash", "sh", "console"):
                continue
            for line in block.replace("\\\n", " ").splitlines():
                for part in line.split("&&"):
                    if not part.strip().startswith("kdedge "):
                        continue  # output shown in a block, make, export ...
                    words = shlex.split(part, comments=True)
                    if words[:1] == ["kdedge"]:
                        cut = next((i for i, w in enumerate(words) if w in (">", "|")), len(words))
                        argv = [w for w in words[1:cut] if w != "..."]  # "...": the docs' "and so on"
                        found.append((f"{path.name}: {part.strip()}", argv))
    for recipe in sorted((REPO / "kdedge" / "recipes").glob("*.yaml")):
        text = " ".join(str(yaml.safe_load(recipe.read_text()).get("description", "")).split())
        for command in re.findall(r"`kdedge ([^`]+)`", text):
            found.append((f"{recipe.name}: kdedge {command}", shlex.split(command)))
        for pairs in re.findall(r"--set((?:\s+[A-Za-z_][\w.]*=[^\s(),;`]+)+)", text):
            found.append((f"{recipe.name}: --set{pairs}", ["distill", recipe.stem, "--set", *pairs.split()]))
    return found


def _parse(argv: list[str]) -> tuple[str, dict]:
    """(command name, its parsed parameters) from the real CLI parser; for the training commands, "recipe"
    and "overrides" as the command reads them (the KEY=VALUE words after a --set included)."""
    from kdedge.cli import app
    from kdedge.cli.training import recipe_and_overrides

    group = typer.main.get_command(app)
    if argv[0].startswith("--"):
        return argv[0], {}
    parent = group.make_context("kdedge", list(argv), resilient_parsing=False)
    words = [*getattr(parent, "_protected_args", []), *parent.args]  # the sub-command and its words
    name, command, rest = group.resolve_command(parent, words)
    if hasattr(command, "commands") and rest and rest[0] in command.commands:  # recipes show NAME
        name, command, rest = f"{name} {rest[0]}", command.commands[rest[0]], rest[1:]
    context = command.make_context(name, rest, parent=parent)
    params = dict(context.params)
    if name in TRAINS:
        params["recipe"], params["overrides"] = recipe_and_overrides(context, params["recipe"], params["overrides"])
    return name, params


def test_every_documented_command_parses_and_its_recipe_loads(monkeypatch) -> None:
    """README's code blocks and the recipes' descriptions, as a newcomer would paste them (the aptos
    descriptions gave `--set a=false b=false`): the CLI parses each, and each training command's recipe
    with its --set values loads (training itself is left out: hours)."""
    from kdedge.recipe import load_recipe
    from kdedge.recipe.overrides import parse_set

    monkeypatch.chdir(REPO)  # README runs from the clone: recipes/hinton_mnist_800.yaml
    commands = _documented_commands()
    assert len(commands) >= 20 and any("aptos" in where for where, _ in commands)
    for where, argv in commands:
        if "--install-completion" in argv:
            continue  # would change the user's shell files
        try:
            name, params = _parse(argv)
        except Exception as err:  # noqa: BLE001 - say which documented command
            pytest.fail(f"{where}: {err}")
        if name in TRAINS and params["recipe"] != "my.yaml":  # my.yaml: written by `recipes show > my.yaml`
            try:
                load_recipe(params["recipe"], parse_set(params["overrides"]))
            except Exception as err:  # noqa: BLE001 - the message names the command that failed
                pytest.fail(f"{where}: {err}")


def test_documented_commands_that_train_nothing_run(finished_run, data_root: Path, tmp_path: Path) -> None:
    """recipes, --version, eval and report as documented, with runs/NAME a copy of a finished tiny run."""
    import shutil

    from cli_helpers import run_kdedge

    run = tmp_path / "run"
    shutil.copytree(finished_run[0], run)
    ran = 0
    for where, argv in _documented_commands():
        if argv[0] not in RUN_FOR_REAL:
            continue
        args = [str(run) if a.startswith("runs/") or a == "RUN" else a for a in argv]
        extra = ["--data-root", str(data_root)] if argv[0] == "eval" else []
        code, out, err = run_kdedge(*args, *extra)
        assert code == 0, f"{where}: {err}"
        ran += 1
    assert ran >= 5


# -- the Python API ---------------------------------------------------------------------------------------
def test_import_kdedge_is_light() -> None:
    """`import kdedge` (and touching the API names) imports neither torch nor onnxruntime: predict stays
    torch-free."""
    import subprocess
    import sys

    code = "import sys, kdedge; kdedge.Run; kdedge.distill; print(sorted({'torch', 'onnxruntime'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


@pytest.mark.usefixtures("one_torch_thread")
def test_python_api_distill_export_bench(data_root: Path, tmp_path: Path) -> None:
    """README's example, tiny: distill -> Run, export(run) -> rows, bench(run) -> rows."""
    import kdedge

    tiny = {
        "teacher.epochs": 1,
        "student.epochs": 1,
        "data.train_limit": 300,
        "data.test_limit": 100,
        "teacher.model_kwargs.hidden": [16],
    }
    run = kdedge.distill("hinton_mnist", overrides=tiny, out=tmp_path / "run", data_root=str(data_root), quiet=True)
    assert isinstance(run, kdedge.Run) and run.path == tmp_path / "run"
    assert run.summary["finished"] and run.weights("student").is_file()
    assert run.recipe.teacher.model_kwargs["hidden"] == [16]
    assert run.summary["student"]["test_count"] == 100
    rows = kdedge.export(run, models="student", precisions="fp32", data_root=str(data_root), quiet=True)
    assert [(r.name, r.status) for r in rows] == [("student.fp32", "ok")]
    assert Path(rows[0].path) == run.onnx("student", "fp32") and run.onnx().is_file()
    measured = kdedge.bench(
        run, batch="1", seconds=0.2, runtimes="onnxruntime", limit=100, data_root=str(data_root), quiet=True
    )
    ok = [r for r in measured if r["status"] == "ok"]
    assert ok and all(r["runtime"] == "onnxruntime" and r["latency_ms_p50"] > 0 for r in ok)
    assert ok[0]["accuracy"] == pytest.approx(rows[0].test_accuracy)  # the same 100 test digits


def test_the_cli_is_a_thin_layer_on_the_api(monkeypatch, tmp_path: Path) -> None:
    """`kdedge distill` / `train` / `export` / `bench` build their command's options object and call
    kdedge.api with it; `train` is distill stopped after the teacher."""
    from cli_helpers import run_kdedge

    import kdedge.api
    from kdedge.commands.export import ExportResult
    from kdedge.commands.options import BenchCommandOptions, DistillOptions, ExportOptions

    calls = []
    for name in ("distill", "train", "export", "bench"):
        result = {"export": ExportResult([], []), "bench": [{"status": "ok"}]}.get(name)  # bench: one row ran
        monkeypatch.setattr(kdedge.api, name, lambda *a, _n=name, _r=result, **k: calls.append((_n, a, k)) or _r)
    assert run_kdedge("distill", "hinton_mnist", "--set", "a=1", "b=2", "--out", tmp_path)[0] == 0
    assert run_kdedge("train", "--set", "a=1", "b=2", "hinton_mnist", "--skip-bad-images")[0] == 0
    assert run_kdedge("export", tmp_path, "--precision", "fp32", "--wide")[0] == 0
    assert run_kdedge("bench", tmp_path, "--batch", "1")[0] == 0
    assert [(name, args[0].__class__, k) for name, args, k in calls] == [
        ("distill", DistillOptions, {}),
        ("train", DistillOptions, {}),
        ("export", ExportOptions, {}),
        ("bench", BenchCommandOptions, {}),
    ]
    distill, train, export, bench = (args[0] for _, args, _ in calls)
    assert distill == DistillOptions("hinton_mnist", ("a=1", "b=2"), tmp_path)
    assert train.stages == ("teacher",) and train.recipe == "hinton_mnist" and train.overrides == ("a=1", "b=2")
    assert train.set_values() == ["a=1", "b=2", "data.skip_bad_images=true"]
    assert export.wide is True and export.precisions == "fp32" and export.run_dir == tmp_path
    assert bench.batch == "1" and bench.paths == (tmp_path,)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["distill", "hinton_mnist", "b=2"], "Got unexpected extra argument (b=2)"),
        (["distill", "hinton_mnist", "--set", "a=1", "other"], "Got unexpected extra argument (other)"),
        (["distill", "--set", "a=1", "b=2"], "Missing argument 'RECIPE'"),
    ],
)
def test_words_after_set_that_are_not_pairs_are_usage_errors(argv: list[str], expected: str) -> None:
    from cli_helpers import one_error_line, run_kdedge

    code, _, err = run_kdedge(*argv)
    assert code == 2 and expected in one_error_line(err), err


def test_bare_kdedge_prints_the_help_and_exits_2() -> None:
    from cli_helpers import run_kdedge

    code, out, _ = run_kdedge()
    assert code == 2 and "Commands:" in out and "distill" in out


# -- bench.json keeps every configuration; export --target says what it chose and why -------------------
def _row(runtime: str, precision: str, p50: float, accuracy: float, batch: int = 1) -> dict:
    return {
        "stage": "student",
        "runtime": runtime,
        "precision": precision,
        "device": "cpu",
        "batch_size": batch,
        "file": f"/r/export/student.{precision}.onnx",
        "status": "ok",
        "latency_ms_p50": p50,
        "accuracy": accuracy,
        "agreement_fp32": 0.99,
        "run": "/r",
        "model": "r/student",
    }


def test_bench_json_merges_benches_of_the_same_machine(tmp_path: Path) -> None:
    """A second bench of another runtime adds its rows (one of the same runtime replaces them); the
    deployable choice is made over all of them, and a bench on another CPU starts the record afresh."""
    from kdedge.bench.deploy import save_run_results

    run = tmp_path / "r"
    run.mkdir()
    machine = {"cpu": "EPYC", "threads": 2, "device": "cpu"}

    def bench(rows: list[dict], cpu: str = "EPYC") -> list[dict]:
        for row in rows:
            row["run"] = str(run.resolve())
        result = {"rows": rows, "machine": machine | {"cpu": cpu}, "options": {"accuracy_bound": 0.5}}
        save_run_results(result, [run])
        return json.loads((run / "bench.json").read_text())["rows"]

    first = bench([_row("onnxruntime", "fp32", 1.0, 0.97), _row("onnxruntime", "int8", 0.5, 0.969)])
    assert [r["deploy"] for r in first] == [False, True]
    second = bench([_row("openvino", "int8", 0.3, 0.968)])  # faster, within 0.5 points of fp32
    assert [(r["runtime"], r["precision"], r["deploy"]) for r in second] == [
        ("onnxruntime", "fp32", False),
        ("onnxruntime", "int8", False),
        ("openvino", "int8", True),
    ]
    again = bench([_row("onnxruntime", "int8", 0.2, 0.969)])  # re-measured: replaces its old row
    assert len(again) == 3
    assert [r["latency_ms_p50"] for r in again if r["runtime"] == "onnxruntime"] == [1.0, 0.2]
    assert len(bench([_row("onnxruntime", "fp32", 1.0, 0.97)], cpu="Xeon")) == 1


def test_export_target_says_runtime_precision_and_the_numbers_behind_its_choice() -> None:
    from kdedge.bench.deploy import choose, describe_choice

    rows = [
        _row("onnxruntime", "fp32", 1.0, 0.97),
        _row("onnxruntime", "int8", 0.5, 0.9695),
        _row("openvino", "int8", 0.4, 0.90),
        _row("onnxruntime", "int8", 9.0, 0.9695, batch=32),
    ]
    best = choose(rows, 0.5)
    assert (best["runtime"], best["precision"]) == ("onnxruntime", "int8")  # openvino lost 7 points
    assert describe_choice(best, rows, 0.5, 0.97) == (
        "onnxruntime int8: p50 0.500 ms at batch 1, accuracy 96.95 % vs fp32 97.00 % (bound 0.5 points), agrees "
        "with fp32 on 99.00 % of the test images (bound 97 %); the fastest of the 2 runtime/precision pairs (of 3 "
        "benched here) that meet both bounds"
    )


# -- shell completion: recipe names, run folders -----------------------------------------------------------
def _complete(words: str, cwd: Path) -> list[str]:
    """What the script from `kdedge --install-completion` (bash) offers for the last of `words`: the same
    environment variables the script sets, here in this process (tests/test_cli.py runs the script)."""
    import os

    from typer.testing import CliRunner

    from kdedge.cli import app

    cword = len(words.split()) - (0 if words.endswith(" ") else 1)  # the word being completed
    env = {"_KDEDGE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    here = Path.cwd()
    os.chdir(cwd)
    try:
        done = CliRunner().invoke(app, [], env=env, prog_name="kdedge")
    finally:
        os.chdir(here)
    assert done.exit_code == 0, done.output
    return done.output.split()


def test_completion_offers_recipe_names_and_run_folders(tmp_path: Path) -> None:
    (tmp_path / "runs" / "try1").mkdir(parents=True)
    (tmp_path / "runs" / "try1" / "summary.json").write_text("{}")
    (tmp_path / "runs" / "notes").mkdir()  # not a run: offered only as a folder to go into
    (tmp_path / "my.yaml").write_text("name: x\n")
    assert _complete("kdedge distill hinton_mnist_8", tmp_path) == ["hinton_mnist_800"]
    assert "my.yaml" in _complete("kdedge distill my", tmp_path)
    assert _complete("kdedge recipes show quick", tmp_path) == ["quickstart_mnist"]
    assert _complete("kdedge eval runs/t", tmp_path) == ["runs/try1"]
    assert _complete("kdedge export ", tmp_path) == ["runs/notes/", "runs/try1"]
    assert "runs/try1" in _complete("kdedge bench runs/", tmp_path)


# -- a long teacher training is said before it starts, with the checkpoint that reuses an earlier one ------
def test_teacher_notice_names_an_earlier_run_with_the_same_teacher(tmp_path: Path) -> None:
    """`kdedge distill hinton_mnist --set student.epochs=5` after a hinton_mnist run: the note names that
    run's teacher.checkpoint; without one, a long teacher is said as such; a recipe that loads its teacher,
    or a short teacher, gets no note."""
    from kdedge.commands.teacher_reuse import teacher_notice
    from kdedge.files.rundir import RunDir
    from kdedge.recipe import load_recipe

    runs = tmp_path / "runs"
    first = RunDir(runs / "hinton_mnist")
    first.path.mkdir(parents=True)
    first.write_recipe(load_recipe("hinton_mnist"))
    again = load_recipe("hinton_mnist", {"student.epochs": 5})
    assert "the teacher trains first (50 epochs over 60,000 images, the long part)" in teacher_notice(
        again, 60_000, runs / "try1", runs
    )  # recipe.yaml only: no trained teacher there yet
    (first.path / "teacher.safetensors").write_bytes(b"weights")
    note = teacher_notice(again, 60_000, runs / "try1", runs)
    assert note.endswith(f"add --set teacher.checkpoint={first.path} to reuse it")
    other = load_recipe("hinton_mnist", {"teacher.epochs": 10})  # another teacher: not that one
    assert first.path.name not in (teacher_notice(other, 60_000, runs / "try1", runs) or "")
    assert teacher_notice(again, 60_000, first.path, runs).startswith("note: the teacher trains first")
    loads = load_recipe("hinton_mnist", {"teacher.checkpoint": str(first.path)})
    assert teacher_notice(loads, 60_000, runs / "try1", runs) is None
    short = load_recipe("hinton_mnist", {"teacher.epochs": 1})
    assert teacher_notice(short, 1000, runs / "x", tmp_path) is None


def test_a_run_that_recorded_its_measured_mean_std_still_matches_its_recipe() -> None:
    """A folder / csv run writes the mean / std it measured into RUN/recipe.yaml; the recipe that left them
    out still finds that teacher, one that gives other values does not."""
    from kdedge.commands.teacher_reuse import _same_teacher

    wanted = {"seed": 0, "teacher": {"model": "m"}, "data": {"name": "folder", "mean": None, "std": None}}
    saved = wanted | {"data": {"name": "folder", "mean": [0.4], "std": [0.2]}}
    assert _same_teacher(saved, wanted)
    assert not _same_teacher(saved, wanted | {"data": {"name": "folder", "mean": [0.5], "std": [0.2]}})
    assert not _same_teacher(saved | {"seed": 1}, wanted)


# -- sweep output: no duplicated column, no double negative, counts that agree, alpha 0 trained once -------
def test_an_alpha_0_point_is_its_own_no_kd_baseline(tmp_path: Path) -> None:
    from kdedge.experiments.sweep import planned_baselines
    from kdedge.recipe import load_recipe
    from kdedge.recipe.grid import point_name

    base = load_recipe("hinton_mnist_sweep")
    baselines, same = planned_baselines(base, {"distillation.alpha": [0.0, 0.5]}, None, tmp_path)
    zero = tmp_path / "points" / point_name({"distillation.alpha": 0.0})
    assert baselines == {} and same == {tmp_path / "baseline": zero}  # cross-entropy only: trained once
    baselines, same = planned_baselines(base, {"distillation.alpha": [0.5, 0.7]}, None, tmp_path)
    assert list(baselines) == [tmp_path / "baseline"] and same == {}


@pytest.mark.parametrize("width", [80, 120])
def test_sweep_table_fits_and_reads_without_double_negatives(width: int) -> None:
    from kdedge.commands.sweep import _rows_table

    rows = [
        {
            "distillation.alpha": a,
            "distillation.temperature": t,
            "test_errors": 200.0 + 10 * i,
            "student_test_accuracy": 0.98,
            "train_seconds": 12.5,
            "errors_vs_no_kd": -0.316 + 0.5 * i,
        }
        for i, (a, t) in enumerate([(0.5, 2.5), (0.7, 4.0), (0.9, 8.0)])
    ]
    lines = _render(_rows_table(rows, "test_errors", "hinton_mnist_sweep: sweep, best first", width), width)
    from kdedge.experiments.sweep_results import cell

    _assert_rows_whole(
        lines, width, [(cell(r["distillation.alpha"]), cell(r["distillation.temperature"])) for r in rows]
    )
    text = "\n".join(lines)
    assert "errors vs no KD" in text and "-31.6%" in text and "+68.4%" in text and "fewer" not in text
    assert text.count("alpha") == 1 and "test_errors (sorted)".replace("_", " ") in text.replace("_", " ")
