"""Student-stage KD training speed: kdedge vs torchdistill vs a plain PyTorch loop, the same job, one run.

The job is kdedge's packaged recipe hinton_mnist_800 (Hinton et al. 2015, MNIST): teacher 784-1200-1200-10,
student 784-800-800-10, SGD lr 0.05 momentum 0.9, batch 128, per-step cosine lr, T = 20, soft-term weight
0.7, full MNIST (60,000 / 10,000) from $KDEDGE_DATA. The teacher is trained ONCE by `kdedge train` (kept in
--work and reused by later runs) and loaded from its safetensors by all three; each then trains the student
from the same initial weights (same seed) and scores the 10,000 test images after every epoch. Each runs in
its own process, one after another, with the same thread settings.

    KDEDGE_DATA=/work/shared/data .venv/bin/python bench/train_speed.py           # quick: 3 + 3 epochs
    KDEDGE_DATA=/work/shared/data .venv/bin/python bench/train_speed.py --full    # the paper's 50 + 25

The loss is the same number in all three: kdedge runs distillation.loss=kl (alpha T^2 KL + (1 - alpha) CE;
same gradients as `hinton`), torchdistill its KDLoss with alpha=0.3 (its alpha weights the HARD term),
beta=0.7, and the plain loop the formula of PyTorch's knowledge-distillation tutorial.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch
from train_speed_loops import run_plain, run_torchdistill  # this script's folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = "hinton_mnist_800"
RUNS = ("kdedge", "torchdistill", "plain", "kdedge-nocache")


def job_from_recipe(args: argparse.Namespace) -> dict:
    """The job every library runs, read from kdedge's recipe so the three cannot drift apart."""
    sys.path.insert(0, str(ROOT))
    from kdedge.recipe import load_recipe

    recipe = load_recipe(RECIPE)
    student, distill = recipe.student, recipe.distillation
    return {
        "recipe": RECIPE,
        "seed": args.seed,
        "device": args.device,
        "student_epochs": args.student_epochs,
        "teacher_epochs": args.teacher_epochs,
        "batch_size": student.batch_size,
        "lr": student.lr,
        "momentum": student.momentum,
        "weight_decay": student.weight_decay,
        "schedule": student.schedule,
        "student_hidden": list(student.model_kwargs["hidden"]),
        "temperature": distill.temperature,
        "alpha": distill.soft_weight,
        "teacher_kwargs": dict(recipe.teacher.model_kwargs),
    }


# -- the report: a markdown table, printed and appended to docs/archive/results-log.md under its own heading --
HEADING = "## Training speed: kdedge vs torchdistill and a plain loop (from 2026-11-25)"
TARGETS = {"torchdistill": 3.0, "plain": 2.0}  # the goal: kdedge this many times faster on the student stage


def machine_description(threads: int | None, load_before: tuple[float, ...]) -> str:
    lscpu_text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    lscpu = dict(line.split(":", 1) for line in lscpu_text.splitlines() if ":" in line)
    mem_kb = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")))
    cores = int(lscpu.get("Core(s) per socket", "0")) * int(lscpu.get("Socket(s)", "1"))
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    cpu = f"{lscpu.get('Model name', '?').strip()}, {lscpu.get('CPU(s)', '?').strip()} CPUs / {cores} cores"
    return (
        f"{cpu}, {mem_kb / 2**20:.0f} GiB{gpu}; torch {torch.__version__}, "
        f"threads {threads or torch.get_num_threads()}; "
        f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}"
    )


def table(results: list[dict], job: dict) -> list[str]:
    kdedge = _kdedge_row(results)
    images = job["student_epochs"] * 60_000
    rows = [
        "| run | student stage s | images/s | kdedge speed-up | student CPU s | CPU speed-up "
        "| process CPU s | process wall s | test acc | acc - kdedge (points) | final train loss "
        "| teacher test acc |",
        "|---|" + "---:|" * 11,
    ]
    for r in results:
        if "failed" in r:
            rows.append(f"| {r['run']} | failed: {r['failed'][:80]} |" + " |" * 10)
            continue
        speedup = f"{r['student_seconds'] / kdedge['student_seconds']:.2f}x" if kdedge else "-"
        cpu_speedup = f"{r['student_cpu_seconds'] / kdedge['student_cpu_seconds']:.2f}x" if kdedge else "-"
        delta = f"{100 * (r['test_accuracy'] - kdedge['test_accuracy']):+.2f}" if kdedge else "-"
        rows.append(
            f"| {r['run']} | {r['student_seconds']:.1f} | {images / r['student_seconds']:,.0f} "
            f"| {speedup} | {r['student_cpu_seconds']:.1f} | {cpu_speedup} | {r['cpu_seconds']:.0f} "
            f"| {r['process_seconds']:.0f} "
            f"| {r['test_accuracy']:.4f} | {delta} | {r['train_loss']:.4f} "
            f"| {r['teacher_test_accuracy']:.4f} |"
        )
    return rows


def _kdedge_row(results: list[dict]) -> dict | None:
    return next((r for r in results if r["run"] == "kdedge" and "failed" not in r), None)


def verdicts(results: list[dict]) -> list[str]:
    """The speed targets (TARGETS) and the <= 0.1-point accuracy gap, each met or missed (this run's numbers only)."""
    kdedge = _kdedge_row(results)
    lines = []
    for r in results:
        if kdedge is None or r["run"] not in TARGETS or "failed" in r:
            continue
        speedup = r["student_seconds"] / kdedge["student_seconds"]
        cpu_speedup = r["student_cpu_seconds"] / kdedge["student_cpu_seconds"]
        gap = 100 * abs(r["test_accuracy"] - kdedge["test_accuracy"])
        target = TARGETS[r["run"]]
        lines.append(
            f"- vs {r['run']}: wall {speedup:.2f}x (target >= {target:.0f}x: "
            f"{'met' if speedup >= target else 'MISSED'}), student CPU time {cpu_speedup:.2f}x "
            f"({'met' if cpu_speedup >= target else 'MISSED'}); accuracy gap {gap:.2f} points "
            f"(target <= 0.1: {'met' if gap <= 0.1 + 1e-9 else 'MISSED'})"
        )
    return lines


def report(results: list[dict], job: dict, machine: str, command: str, results_md: Path, append: bool) -> None:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    title = (
        f"### {when}: student {job['student_epochs']} epochs, teacher {job['teacher_epochs']} epochs, "
        f"seed {job['seed']}, {job['device']}"
    )
    block = [
        title,
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine}",
        "",
        *table(results, job),
        "",
        *verdicts(results),
        "",
    ]
    print("\n".join(block))
    if append:
        append_section(results_md, block)
        print(f"appended to {results_md}")


def append_section(path: Path, block: list[str]) -> None:
    """Add `block` at the end of our section (created if missing), atomically; other sections stay as is."""
    sys.path.insert(0, str(ROOT))
    from kdedge.files.atomic import atomic_write_text

    lines = path.read_text().splitlines() if path.exists() else ["# Benchmark results", ""]
    if HEADING not in lines:
        lines += ["", HEADING, "", "Produced by bench/train_speed.py (see its docstring for the job).", ""]
    start = lines.index(HEADING)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    atomic_write_text(path, "\n".join([*lines[:end], *block, *lines[end:]]) + "\n")


# -- kdedge, through its CLI --------------------------------------------------------------------------------
def kdedge_command(job: dict, sets: list[str], out: Path, stage: str) -> list[str]:
    common = [f"seed={job['seed']}", f"device={job['device']}", f"teacher.epochs={job['teacher_epochs']}"]
    args = [sys.executable, "-m", "kdedge", stage, RECIPE, "--out", str(out), "--force", "--quiet"]
    return args + [a for item in [*common, *sets] for a in ("--set", item)]


def train_teacher(job: dict, work: Path) -> Path:
    """kdedge trains the teacher once per (epochs, seed, device); later runs reuse it."""
    out = work / f"teacher-e{job['teacher_epochs']}-s{job['seed']}-{job['device']}"
    summary = out / "summary.json"
    if not (summary.exists() and json.loads(summary.read_text()).get("finished")):
        started = time.perf_counter()
        subprocess.run(kdedge_command(job, [], out, "train"), check=True, cwd=ROOT)
        seconds = time.perf_counter() - started
        print(f"teacher: {job['teacher_epochs']} epochs in {seconds:.0f} s -> {out}", flush=True)
    return out / "teacher.safetensors"


def run_kdedge(job: dict, teacher_path: Path, work: Path, cache: bool) -> dict:
    out = work / ("kdedge" if cache else "kdedge-nocache")
    sets = [
        f"teacher.checkpoint={teacher_path}",
        f"student.epochs={job['student_epochs']}",
        "distillation.loss=kl",
        f"distillation.cache_teacher_logits={str(cache).lower()}",
    ]
    subprocess.run(kdedge_command(job, sets, out, "distill"), check=True, cwd=ROOT)
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if r["stage"] == "student"][-1]
    student = summary["student"]
    return {
        "student_seconds": student["train_seconds"],
        "student_cpu_seconds": student["train_cpu_seconds"],
        "test_accuracy": student["test_accuracy"],
        "train_loss": last["train_loss"],
        "teacher_test_accuracy": summary["teacher"]["test_accuracy"],
    }


def timed(run: str, command: list[str], call) -> dict:
    """Run one library in a child process; add its wall time and CPU time (user + sys) to its result."""
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    try:
        if command is None:
            result = call()
        else:
            output = subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.PIPE, text=True).stdout
            result = json.loads(output.splitlines()[-1])
    except (subprocess.CalledProcessError, ValueError, KeyError, IndexError) as err:  # a failed row, not all
        print(f"{run}: FAILED ({err})", flush=True)
        return {"run": run, "failed": str(err)}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result |= {"run": run, "process_seconds": time.perf_counter() - started, "cpu_seconds": cpu}
    print(
        f"{run}: student {result['student_seconds']:.1f} s, test acc {result['test_accuracy']:.4f}, "
        f"loss {result['train_loss']:.4f}",
        flush=True,
    )
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student-epochs", type=int, default=3)
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="the paper's schedule: teacher 50, student 25")
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS[:3]))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, help="OMP/MKL threads for every run (default: torch's own)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_train_speed")
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "archive" / "results-log.md")
    parser.add_argument("--no-append", action="store_true", help="print only; leave the results log alone")
    parser.add_argument("--worker", choices=("plain", "torchdistill"), help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--teacher", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.full:
        args.student_epochs, args.teacher_epochs = 25, 50
    return args


def main() -> None:
    args = parse_args()
    if args.worker:  # a child process: one library, one JSON line
        worker = run_plain if args.worker == "plain" else run_torchdistill
        print(json.dumps(worker(json.loads(args.job), args.teacher)))
        return
    if "KDEDGE_DATA" not in os.environ:
        raise SystemExit("set KDEDGE_DATA to the folder that holds MNIST/raw (KDEDGE_DATA=../shared/data)")
    if args.threads:
        os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    job, load_before = job_from_recipe(args), os.getloadavg()
    args.work.mkdir(parents=True, exist_ok=True)
    teacher_path = train_teacher(job, args.work)
    results = []
    for run in args.runs:
        worker = [sys.executable, __file__, "--worker", run, "--job", json.dumps(job), "--teacher", str(teacher_path)]
        if run.startswith("kdedge"):
            cached = run == "kdedge"
            call = lambda cached=cached: run_kdedge(job, teacher_path, args.work, cached)  # noqa: E731
            results.append(timed(run, None, call))
        else:
            results.append(timed(run, worker, None))
    data = shlex.quote(os.environ["KDEDGE_DATA"])
    command = f"KDEDGE_DATA={data} " + shlex.join([".venv/bin/python", *sys.argv])
    machine = machine_description(args.threads, load_before)
    report(results, job, machine, command, args.results, not args.no_append)


if __name__ == "__main__":
    main()
