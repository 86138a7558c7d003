"""Start-up of the commands that train nothing: wall time, peak memory and whether torch was imported, for
this checkout and, in the same run, for earlier ones (--baseline NAME=PATH: a checkout of an older commit),
beside `python -c pass` and `python -c "import torch"` on the same machine.

    mkdir /tmp/kdedge-03f8f38 && git archive 03f8f38 | tar -x -C /tmp/kdedge-03f8f38  # an earlier checkout
    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python bench/startup.py --baseline 03f8f38=/tmp/kdedge-03f8f38

Every command runs `--repeats` times in a fresh `python -m kdedge` process (alternating checkouts, so load
changes hit both alike); the table gives the median wall seconds, peak RSS (MB) and torch yes/no; the ratio
column is baseline / this checkout. It writes bench/results/startup_commands.json (the docs/results.md
table; run bench/tables.py after) with the machine, the load average before and after, and each
command exactly as run. A tiny image folder and a labelled ONNX file (784 -> 10 MatMul, kdedge metadata)
are made in a temp folder for init and predict.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "bench" / "results" / "startup_commands.json"
# reports at exit whether torch was imported and the process's own peak RSS (VmHWM: unlike getrusage's
# maxrss it starts afresh at exec, so the benchmark's own memory is not counted), then runs the code after it
REPORT = (
    "import atexit, sys\n"
    "def _report():\n"
    "    hwm = next((l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')), '0')\n"
    "    sys.stderr.write('\\nTORCH=%d HWM_KB=%s\\n' % ('torch' in sys.modules, hwm))\n"
    "atexit.register(_report)\n"
)
PROBE = REPORT + (
    "import runpy\nsys.argv = ['kdedge', *sys.argv[1:]]\n"
    "runpy.run_module('kdedge', run_name='__main__', alter_sys=True)\n"
)


def make_inputs(folder: Path) -> dict[str, str]:
    """A 2-class folder of 12 tiny PNGs each, one of its images, and a labelled ONNX file taking it."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from kdedge.runtime.onnx_meta import build_metadata, set_metadata

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (folder / "pets" / label).mkdir(parents=True)
        for index in range(12):
            pixels = rng.integers(0, 256, (28, 28), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "pets" / label / f"{index:02d}.png")
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 1, 28, 28])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    weight = numpy_helper.from_array(rng.normal(size=(784, 10)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.asarray([-1, 784], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Reshape", ["images", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "startup", [images], [logits], initializer=[weight, shape]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    card = {"model": "mlp", "stage": "student", "precision": "fp32", "input_size": (28, 28), "in_channels": 1,
            "mean": [0.5], "std": [0.25], "class_names": [str(d) for d in range(10)], "dataset": "mnist",
            "recipe_sha": "0" * 16, "test_accuracy": 0.5}  # fmt: skip
    set_metadata(model, build_metadata(card))
    onnx.save(model, str(folder / "student.fp32.onnx"))
    files = {"pets": "pets", "image": "pets/cat/00.png", "onnx": "student.fp32.onnx", "recipe": "pets.yaml"}
    return {key: str(folder / name) for key, name in files.items()} | {"cwd": str(folder)}


def commands(inputs: dict[str, str]) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (argv after `kdedge`, extra environment)."""
    init = ["init", inputs["pets"], "--teacher", "resnet18", "--student", "mobilenetv3_small_100"]
    complete = {"_KDEDGE_COMPLETE": "complete_bash", "COMP_WORDS": "kdedge dis", "COMP_CWORD": "1"}
    return {
        "kdedge --version": (["--version"], {}),
        "kdedge --help": (["--help"], {}),
        "kdedge distill --help": (["distill", "--help"], {}),
        "kdedge recipes": (["recipes"], {}),
        "kdedge recipes show hinton_mnist": (["recipes", "show", "hinton_mnist"], {}),
        "kdedge formats": (["formats"], {}),
        "kdedge init (24 images, cached)": ([*init, "--out", inputs["recipe"], "--force"], {}),
        "completion (TAB after `kdedge dis`)": ([], complete),
        "kdedge predict FILE.onnx IMAGE": (["predict", inputs["onnx"], inputs["image"]], {}),
    }


def timed(argv: list[str], env: dict[str, str], code: str, cwd: str) -> tuple[float, float, bool]:
    """(wall seconds, peak RSS MB, torch imported) of one fresh process running `code` with argv, in `cwd`
    (not a checkout: `python -c` puts the working folder first on sys.path)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *argv], env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"error: {argv} exited {done.returncode}: {done.stderr[-500:]}")
    report = done.stderr.strip().splitlines()[-1]  # TORCH=0 HWM_KB=54321
    values = dict(part.split("=") for part in report.split())
    return wall, int(values["HWM_KB"]) / 1024, values["TORCH"] == "1"


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {os.cpu_count()} cores ({cores} usable by this process), Python {platform.python_version()}"


def measure(checkouts: dict[str, Path], inputs: dict[str, str], repeats: int) -> dict[str, dict[str, list]]:
    """{checkout: {command: [(wall, rss, torch), ...]}}, the checkouts alternating within each repeat; the
    references (`python -c pass`, `import torch`) under the key 'python'."""
    found: dict[str, dict[str, list]] = {name: {} for name in [*checkouts, "python"]}
    base_env = os.environ | {"OMP_NUM_THREADS": "1", "COLUMNS": "100"}
    for _ in range(repeats):
        for label, code in (("python -c pass", REPORT), ("python -c 'import torch'", REPORT + "import torch")):
            found["python"].setdefault(label, []).append(timed([], base_env, code, inputs["cwd"]))
        for command, (argv, extra) in commands(inputs).items():
            for name, path in checkouts.items():
                env = base_env | {"PYTHONPATH": str(path)} | extra
                found[name].setdefault(command, []).append(timed(argv, env, PROBE, inputs["cwd"]))
    return found


def table(found: dict[str, dict[str, list]], names: list[str]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows: per command, each checkout's median s / peak MB / torch, and baseline / this."""
    this, baselines = names[0], names[1:]
    columns = ["command", f"{this} s", f"{this} MB", f"{this} torch"]
    for name in baselines:
        columns += [f"{name} s", f"{name} MB", f"{name} torch", f"{name} / {this}"]
    rows = []
    for command in found[this]:
        row = [command]
        median = {name: statistics.median(r[0] for r in found[name][command]) for name in names}
        for name in names:
            runs = found[name][command]
            row += [f"{median[name]:.2f}", f"{max(r[1] for r in runs):.0f}", "yes" if runs[0][2] else "no"]
            row += [f"{median[name] / median[this]:.1f}x"] if name != this else []
        rows.append(row)
    for label, runs in found["python"].items():
        cells = [f"{statistics.median(r[0] for r in runs):.2f}", f"{max(r[1] for r in runs):.0f}", "-"]
        rows.append([label, *cells, *(["", "", "", ""] * len(baselines))])
    return columns, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", action="append", default=[], help="NAME=PATH of an earlier checkout")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--name", default="now", help="what to call this checkout in the table")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    checkouts = {args.name: ROOT} | {n: Path(p).resolve() for n, p in (b.split("=", 1) for b in args.baseline)}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        inputs = make_inputs(Path(folder))
        found = measure(checkouts, inputs, args.repeats)
    load_after = os.getloadavg()
    columns, rows = table(found, list(checkouts))
    width = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    for row in [columns, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, width, strict=True)))
    load = f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min)"
    print(f"{machine()}; {load}")
    write_result(args, checkouts, columns, rows, load)


def write_result(args: argparse.Namespace, checkouts: dict[str, Path], columns, rows, load: str) -> None:
    this, names = next(iter(checkouts)), list(checkouts)
    ours = [r for r in rows if r[0].startswith(("kdedge", "completion"))]
    torch_free = sum(r[3] == "no" for r in ours)
    row = {r[0]: r for r in rows}
    headline = f"{torch_free} of {len(ours)} commands that train nothing import no torch"
    for index, name in enumerate(names[1:]):  # per baseline, the commands it took >= 2x as long for
        slower = [r for r in ours if float(r[4 + 4 * index]) >= 2 * float(r[1])]
        headline += "".join(f"; {r[0]} {r[1]} s vs {r[4 + 4 * index]} s at {name}" for r in slower[:2])
    torch_alone = row["python -c 'import torch'"][1]
    headline += f"; `import torch` alone {torch_alone} s (same run, {load})"
    result = {
        "title": "Start-up of the commands that train nothing",
        "experiment": "bench/startup.py",
        "order": 95,
        "headline": headline,
        "date": date.today().isoformat(),
        "machine": f"{machine()}; {load}",
        "commands": [" ".join(["python", "bench/startup.py", *sys.argv[1:]])],
        "source": "printed by the command; every number is the median of --repeats fresh processes",
        "columns": columns,
        "rows": rows,
        "notes": [
            f"checkouts: {', '.join(f'{n} = {p}' for n, p in checkouts.items())}; {this} is this one",
            "s: median wall seconds of a fresh `python -m kdedge ...` process (OMP_NUM_THREADS=1); MB: its peak "
            "RSS; torch: whether it imported torch; baseline / this: how many times longer the baseline took",
        ],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
