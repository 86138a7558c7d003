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
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
YAML = Path(__file__).resolve().parent / "torchdistill_hinton.yaml"
RECIPE = "hinton_mnist_800"
RUNS = ("kdedge", "torchdistill", "plain", "kdedge-nocache")
STEPS_PER_EPOCH = 469  # ceil(60,000 / 128)


def job_from_recipe(args: argparse.Namespace) -> dict:
    """The job every library runs, read from kdedge's recipe so the three cannot drift apart."""
    sys.path.insert(0, str(ROOT))
    from kdedge.recipe import load_recipe

    recipe = load_recipe(RECIPE)
    student, distill = recipe.student, recipe.distillation
    return {"seed": args.seed, "device": args.device, "student_epochs": args.student_epochs,
            "teacher_epochs": args.teacher_epochs, "batch_size": student.batch_size, "lr": student.lr,
            "momentum": student.momentum, "weight_decay": student.weight_decay, "schedule": student.schedule,
            "student_hidden": list(student.model_kwargs["hidden"]), "temperature": distill.temperature,
            "alpha": distill.soft_weight, "teacher_kwargs": dict(recipe.teacher.model_kwargs)}  # fmt: skip


# -- models shared by the torchdistill and plain runs (same layer order as kdedge's `mlp`: same init) -----
class NeuralNetwork(nn.Module):
    """784-...-10 ReLU MLP written like PyTorch's quickstart tutorial. (N, 1, 28, 28) -> (N, 10)."""

    def __init__(self, hidden: list[int], dropout: float = 0.0, input_dropout: float = 0.0,
                 num_classes: int = 10) -> None:  # fmt: skip
        super().__init__()
        self.flatten = nn.Flatten()
        layers: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout > 0 else []
        width = 28 * 28
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.linear_relu_stack = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_relu_stack(self.flatten(x))


def load_kdedge_weights(model: NeuralNetwork, path: Path) -> None:
    """kdedge's mlp is Sequential(Flatten, ...): its layer i is our linear_relu_stack[i - 1]."""
    state = {}
    for key, value in load_file(str(path)).items():
        index, rest = key.split(".", 1)
        state[f"linear_relu_stack.{int(index) - 1}.{rest}"] = value
    model.load_state_dict(state)


# -- the plain PyTorch loop (DataLoader + torchvision MNIST, as the tutorials write it) ----------------------
def train_kd_epoch(teacher, student, loader, optimizer, scheduler, job, device) -> float:
    """One epoch of PyTorch's knowledge_distillation_tutorial `train_knowledge_distillation`; mean loss."""
    ce_loss = nn.CrossEntropyLoss()
    T, soft_w = job["temperature"], job["alpha"]  # noqa: N806
    teacher.eval()
    student.train()
    running_loss = 0.0
    for inputs, labels in loader:
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        with torch.no_grad():
            teacher_logits = teacher(inputs)
        student_logits = student(inputs)
        soft_targets = F.softmax(teacher_logits / T, dim=-1)
        soft_prob = F.log_softmax(student_logits / T, dim=-1)
        soft_targets_loss = torch.sum(soft_targets * (soft_targets.log() - soft_prob)) / soft_prob.size()[0]
        soft_targets_loss = soft_targets_loss * T**2
        label_loss = ce_loss(student_logits, labels)
        loss = soft_w * soft_targets_loss + (1 - soft_w) * label_loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        running_loss += loss.item() * len(labels)
    return running_loss / len(loader.dataset)


def test_accuracy(model, loader, device) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for inputs, labels in loader:
            correct += (model(inputs.to(device)).argmax(1) == labels.to(device)).sum().item()
    return correct / len(loader.dataset)


def run_plain(job: dict, teacher_path: Path) -> dict:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    device = torch.device(job["device"])
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_set = datasets.MNIST(os.environ["KDEDGE_DATA"], train=True, download=False, transform=transform)
    test_set = datasets.MNIST(os.environ["KDEDGE_DATA"], train=False, download=False, transform=transform)
    train_loader = DataLoader(train_set, batch_size=job["batch_size"], shuffle=True,
                              generator=torch.Generator().manual_seed(job["seed"]))  # fmt: skip
    test_loader = DataLoader(test_set, batch_size=1000)
    teacher = NeuralNetwork(**job["teacher_kwargs"]).to(device)
    load_kdedge_weights(teacher, teacher_path)
    torch.manual_seed(job["seed"])  # the student's init: same seed, same layer order as kdedge's
    student = NeuralNetwork(job["student_hidden"]).to(device)
    started, cpu_started = time.perf_counter(), time.process_time()
    optimizer = torch.optim.SGD(student.parameters(), lr=job["lr"], momentum=job["momentum"],
                                weight_decay=job["weight_decay"])  # fmt: skip
    steps = job["student_epochs"] * len(train_loader)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    for _ in range(job["student_epochs"]):
        train_loss = train_kd_epoch(teacher, student, train_loader, optimizer, scheduler, job, device)
        accuracy = test_accuracy(student, test_loader, device)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {"student_seconds": seconds, "student_cpu_seconds": cpu, "test_accuracy": accuracy,
            "train_loss": train_loss, "teacher_test_accuracy": test_accuracy(teacher, test_loader, device)}


# -- torchdistill, configured by bench/torchdistill_hinton.yaml, loop as in its examples/torchvision --------
def td_train_one_epoch(box, device, epoch: int, log_freq: int) -> float:
    """`train_one_epoch` of torchdistill's examples/torchvision/image_classification.py; mean loss."""
    from torchdistill.misc.log import MetricLogger, SmoothedValue

    metric_logger = MetricLogger(delimiter="  ")
    metric_logger.add_meter("lr", SmoothedValue(window_size=1, fmt="{value}"))
    metric_logger.add_meter("img/s", SmoothedValue(window_size=10, fmt="{value}"))
    loss_sum, seen = 0.0, 0
    batches = metric_logger.log_every(box.train_data_loader, log_freq, f"Epoch: [{epoch}]")
    for sample_batch, targets, supp_dict in batches:
        start_time = time.time()
        sample_batch, targets = sample_batch.to(device), targets.to(device)
        loss = box.forward_process(sample_batch, targets, supp_dict)
        box.post_forward_process(loss=loss)
        batch_size = sample_batch.shape[0]
        metric_logger.update(loss=loss.item(), lr=box.optimizer.param_groups[0]["lr"])
        metric_logger.meters["img/s"].update(batch_size / (time.time() - start_time))
        if torch.isnan(loss) or torch.isinf(loss):
            raise ValueError(f"The training loop was broken due to loss = {loss}")
        loss_sum, seen = loss_sum + metric_logger.meters["loss"].value * batch_size, seen + batch_size
    return loss_sum / seen


def check_same_job(config: dict, job: dict) -> None:
    """Refuse to time torchdistill on a different job than kdedge's recipe."""
    train = config["train"]
    kd = train["criterion"]["kwargs"]["sub_terms"]["kd"]["criterion"]["kwargs"]
    optimizer = train["optimizer"]["kwargs"]
    theirs = (train["train_data_loader"]["kwargs"]["batch_size"], optimizer["lr"], optimizer["momentum"],
              kd["temperature"], kd["beta"], round(1 - kd["alpha"], 6),
              config["models"]["student_model"]["kwargs"]["hidden"])  # fmt: skip
    ours = (job["batch_size"], job["lr"], job["momentum"], job["temperature"], job["alpha"], job["alpha"],
            job["student_hidden"])  # fmt: skip
    if theirs != ours or job["schedule"] != "cosine":
        raise SystemExit(f"{YAML.name} and {RECIPE} differ: {theirs} vs {ours}")


def run_torchdistill(job: dict, teacher_path: Path) -> dict:
    from torchdistill.common import yaml_util
    from torchdistill.common.main_util import set_seed
    from torchdistill.core.distillation import get_distillation_box
    from torchdistill.models.registry import get_model, register_model

    register_model(key="hinton_mlp")(NeuralNetwork)
    set_seed(job["seed"])
    config = yaml_util.load_yaml_file(str(YAML))
    check_same_job(config, job)
    train_config, models = config["train"], config["models"]
    train_config["num_epochs"] = job["student_epochs"]
    train_config["scheduler"]["kwargs"]["T_max"] = job["student_epochs"] * STEPS_PER_EPOCH
    device = torch.device(job["device"])
    teacher = get_model(models["teacher_model"]["key"], **models["teacher_model"]["kwargs"]).to(device)
    load_kdedge_weights(teacher, teacher_path)
    teacher.eval()  # torchdistill never switches the teacher to eval mode: without this its dropout stays on
    set_seed(job["seed"])  # the student's init: same seed as kdedge's and the plain loop's
    student = get_model(models["student_model"]["key"], **models["student_model"]["kwargs"]).to(device)
    started, cpu_started = time.perf_counter(), time.process_time()
    box = get_distillation_box(teacher, student, config["datasets"], train_config, device, None, False, 1)
    for epoch in range(box.num_epochs):
        box.pre_epoch_process(epoch=epoch)
        train_loss = td_train_one_epoch(box, device, epoch, train_config["log_freq"])
        accuracy = test_accuracy(student, box.val_data_loader, device)
        box.post_epoch_process()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {"student_seconds": seconds, "student_cpu_seconds": cpu, "test_accuracy": accuracy,
            "train_loss": train_loss,
            "teacher_test_accuracy": test_accuracy(teacher, box.val_data_loader, device)}  # fmt: skip


# -- the report: a markdown table, printed and appended to RESULTS.md under its own heading ----------------
HEADING = "## Training speed (issue 9)"
TARGETS = {"torchdistill": 3.0, "plain": 2.0}  # issue 9: kdedge this many times faster on the student stage


def machine_description(threads: int | None, load_before: tuple[float, ...]) -> str:
    lscpu_text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    lscpu = dict(line.split(":", 1) for line in lscpu_text.splitlines() if ":" in line)
    mem_kb = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")))
    cores = int(lscpu.get("Core(s) per socket", "0")) * int(lscpu.get("Socket(s)", "1"))
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    cpu = f"{lscpu.get('Model name', '?').strip()}, {lscpu.get('CPU(s)', '?').strip()} CPUs / {cores} cores"
    return (f"{cpu}, {mem_kb / 2**20:.0f} GiB{gpu}; torch {torch.__version__}, "
            f"threads {threads or torch.get_num_threads()}; "
            f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")  # fmt: skip


def table(results: list[dict], job: dict) -> list[str]:
    kdedge = _kdedge_row(results)
    images = job["student_epochs"] * 60_000
    rows = ["| run | student stage s | images/s | kdedge speed-up | student CPU s | CPU speed-up "
            "| process CPU s | process wall s | test acc | acc - kdedge (points) | final train loss "
            "| teacher test acc |", "|---|" + "---:|" * 11]  # fmt: skip
    for r in results:
        if "failed" in r:
            rows.append(f"| {r['run']} | failed: {r['failed'][:80]} |" + " |" * 10)
            continue
        speedup = f"{r['student_seconds'] / kdedge['student_seconds']:.2f}x" if kdedge else "-"
        cpu_speedup = f"{r['student_cpu_seconds'] / kdedge['student_cpu_seconds']:.2f}x" if kdedge else "-"
        delta = f"{100 * (r['test_accuracy'] - kdedge['test_accuracy']):+.2f}" if kdedge else "-"
        rows.append(f"| {r['run']} | {r['student_seconds']:.1f} | {images / r['student_seconds']:,.0f} "
                    f"| {speedup} | {r['student_cpu_seconds']:.1f} | {cpu_speedup} | {r['cpu_seconds']:.0f} "
                    f"| {r['process_seconds']:.0f} "
                    f"| {r['test_accuracy']:.4f} | {delta} | {r['train_loss']:.4f} "
                    f"| {r['teacher_test_accuracy']:.4f} |")  # fmt: skip
    return rows


def _kdedge_row(results: list[dict]) -> dict | None:
    return next((r for r in results if r["run"] == "kdedge" and "failed" not in r), None)


def verdicts(results: list[dict]) -> list[str]:
    """Issue 9's targets, each said as met or missed (numbers from this run only)."""
    kdedge = _kdedge_row(results)
    lines = []
    for r in results:
        if kdedge is None or r["run"] not in TARGETS or "failed" in r:
            continue
        speedup = r["student_seconds"] / kdedge["student_seconds"]
        cpu_speedup = r["student_cpu_seconds"] / kdedge["student_cpu_seconds"]
        gap = 100 * abs(r["test_accuracy"] - kdedge["test_accuracy"])
        target = TARGETS[r["run"]]
        lines.append(f"- vs {r['run']}: wall {speedup:.2f}x (target >= {target:.0f}x: "
                     f"{'met' if speedup >= target else 'MISSED'}), student CPU time {cpu_speedup:.2f}x "
                     f"({'met' if cpu_speedup >= target else 'MISSED'}); accuracy gap {gap:.2f} points "
                     f"(target <= 0.1: {'met' if gap <= 0.1 + 1e-9 else 'MISSED'})")  # fmt: skip
    return lines


def report(results: list[dict], job: dict, machine: str, command: str, results_md: Path,
           append: bool) -> None:  # fmt: skip
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    title = (f"### {when}: student {job['student_epochs']} epochs, teacher {job['teacher_epochs']} epochs, "
             f"seed {job['seed']}, {job['device']}")  # fmt: skip
    block = [title, "", f"Command: `{command}`", "", f"Machine: {machine}", "", *table(results, job), "",
             *verdicts(results), ""]  # fmt: skip
    print("\n".join(block))
    if append:
        append_section(results_md, block)
        print(f"appended to {results_md}")


def append_section(path: Path, block: list[str]) -> None:
    """Add `block` at the end of our section (created if missing), atomically; other sections stay as is."""
    sys.path.insert(0, str(ROOT))
    from kdedge.checkpoint import atomic_write_text

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
    sets = [f"teacher.checkpoint={teacher_path}", f"student.epochs={job['student_epochs']}",
            "distillation.loss=kl", f"distillation.cache_teacher_logits={str(cache).lower()}"]  # fmt: skip
    subprocess.run(kdedge_command(job, sets, out, "distill"), check=True, cwd=ROOT)
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if r["stage"] == "student"][-1]
    student = summary["student"]
    return {"student_seconds": student["train_seconds"], "student_cpu_seconds": student["train_cpu_seconds"],
            "test_accuracy": student["test_accuracy"], "train_loss": last["train_loss"],
            "teacher_test_accuracy": summary["teacher"]["test_accuracy"]}  # fmt: skip


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
    print(f"{run}: student {result['student_seconds']:.1f} s, test acc {result['test_accuracy']:.4f}, "
          f"loss {result['train_loss']:.4f}", flush=True)
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
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--no-append", action="store_true", help="print only; leave RESULTS.md alone")
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
        worker = [sys.executable, __file__, "--worker", run, "--job", json.dumps(job),
                  "--teacher", str(teacher_path)]  # fmt: skip
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
