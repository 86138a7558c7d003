"""The training-throughput table (eager vs torch.compile, layouts, batch) from the raw files of
bench/cifar10_train_throughput.py (train_throughput_compile.json) and bench/compile_accuracy.py
(train_compile_accuracy.json, optional) -> train_throughput_compile_table.json."""

from __future__ import annotations

from tablegen.files import Files

RAW, ACCURACY, TABLE = (
    "train_throughput_compile.json",
    "train_compile_accuracy.json",
    "train_throughput_compile_table.json",
)
HELPS = 1.05  # a technique helps when it is at least 5 % faster than its baseline in the same run
COLUMNS = ["model", "setting", "batch", "threads", "images/s", "GFLOP/s", "of native peak", "compile s",
           "vs eager channels_last", "load"]  # fmt: skip
NAMES = {"cifar_resnet18": "ResNet18-CIFAR", "convnext_tiny": "ConvNeXt-T (RetinaMNIST)"}


def _key(row: dict) -> tuple:
    """Which block a row or block is of: (model, precision, threads)."""
    return row["model"], row["precision"], row["threads"]


def _baseline(rows: list[dict], row: dict) -> dict:
    """The eager channels_last row at the recipe's batch of `row`'s block (same model, precision, threads)."""
    block = [r for r in rows if _key(r) == _key(row)]
    return min((r for r in block if r["channels_last"] and r["compile_mode"] is None), key=lambda r: r["batch"])


def table_rows(rows: list[dict]) -> list[list]:
    """One table row per measured row: images/s, GFLOP/s, share of the native peak, compile s, vs eager."""
    return [
        [r["model"], r["setting"], r["batch"], r["threads"], r["images_per_s"], r["achieved_gflops"],
         f"{100 * r['fraction_of_native_peak']:.0f} % ({r['precision']})",
         "-" if r["compile_s"] is None else round(r["compile_s"]),
         f"{r['images_per_s'] / _baseline(rows, r)['images_per_s']:.2f}x", r["load_average_1min"]]
        for r in rows
    ]  # fmt: skip


def verdicts(blocks: list[dict]) -> list[str]:
    """One note per technique and block: the measured ratio and whether it helps (>= 5 % faster)."""
    notes = []
    for block in blocks:
        where = f"{NAMES.get(block['model'], block['model'])}, {block['precision']}, {_threads(block['threads'])}"
        for name, ratio in block["ratios"].items():
            says = "helps" if ratio >= HELPS else ("slower" if ratio < 1 / HELPS else "does not help (within 5 %)")
            notes.append(f"{where}: {name} {ratio:.2f}x: {says}")
    return notes


def _threads(count: int) -> str:
    return f"{count} thread{'s' if count != 1 else ''}"


def data_path_note(raw: dict) -> str:
    """What the batch preparation left out of the timed steps costs: per block, ms per batch and its share of
    the eager channels_last step."""
    parts = []
    for block in raw["blocks"]:
        rows = [r for r in raw["rows"] if (r["model"], r["precision"], r["threads"]) == _key(block)]
        step_ms = 1000 * _baseline(rows, rows[0])["median_step_s"]
        share = 100 * block["data_path_ms_per_batch"] / step_ms
        parts.append(f"{NAMES.get(block['model'], block['model'])} {block['precision']} {_threads(block['threads'])} "
                     f"{block['data_path_ms_per_batch']:.1f} ms = {share:.1f} % of a step")  # fmt: skip
    return ("the data path, left out of the timed steps (kdedge keeps the split on the device as uint8 and "
            "augments, normalises and lays out each batch there): " + "; ".join(parts))  # fmt: skip


def accuracy_notes(accuracy: dict | None) -> list[str]:
    """The eager vs compiled test accuracies of bench/compile_accuracy.py, one note per recipe."""
    if accuracy is None:
        return ["accuracy beside speed: not measured yet (python bench/compile_accuracy.py)"]
    notes = []
    for run in accuracy["runs"]:
        eager, compiled = run["eager"], run["compiled"]
        same = "the same within noise" if run["same_within_noise"] else "NOT the same within noise"
        if eager.get("at_chance") or compiled.get("at_chance"):
            same = "at chance: too short a run to compare accuracy"
        notes.append(
            f"accuracy, {run['recipe']} ({', '.join(f'{k}={v}' for k, v in run['overrides'].items())}, "
            f"{run['threads']} threads, same seed): test accuracy eager {eager['test_accuracy']:.3f}, compiled "
            f"{compiled['test_accuracy']:.3f} ({run['difference']:+.3f}, 2 std of the difference "
            f"{run['noise_2std']:.3f}: {same}); epoch training seconds eager {eager['epoch_train_seconds']}, "
            f"compiled {compiled['epoch_train_seconds']} (the first compiled epoch includes the compilation)"
        )
    return notes


def headline(raw: dict) -> str:
    """Per model at its first thread count: torch.compile's ratio and compile time, the best share of the
    peak of the lowest precision measured (bf16 where the CPU has it: the goal is 40 % of that peak)."""
    parts = []
    threads = raw["rows"][0]["threads"]
    for model in dict.fromkeys(r["model"] for r in raw["rows"]):
        rows = [r for r in raw["rows"] if r["model"] == model and r["threads"] == threads]
        low = [r for r in rows if r["precision"] == "bf16"] or rows
        compiled = next(r for r in low if r["compile_mode"] == "default")
        best = max(low, key=lambda r: r["fraction_of_native_peak"])
        ratio = compiled["images_per_s"] / _baseline(rows, compiled)["images_per_s"]
        parts.append(
            f"{NAMES.get(model, model)} {compiled['precision']} torch.compile {ratio:.2f}x eager (compile "
            f"{compiled['compile_s']:.0f} s), best {100 * best['fraction_of_native_peak']:.0f} % of the "
            f"{best['precision']} peak ({best['setting']}, batch {best['batch']})"
        )
    return f"CPU training at {_threads(threads)}: " + "; ".join(parts)


def breakdown_notes(rows: list[dict]) -> list[str]:
    """Where an eager channels_last step's time goes (--breakdown), one note per profiled row."""
    notes = []
    for r in (r for r in rows if r.get("op_seconds_per_step")):
        split = r["op_seconds_per_step"]
        total = sum(split.values())
        parts = ", ".join(f"{name} {seconds:.3f} s ({100 * seconds / total:.0f} %)" for name, seconds in split.items())
        notes.append(f"where the step goes, {NAMES.get(r['model'], r['model'])} {r['setting']} batch {r['batch']} "
                     f"(torch.profiler self time, per step): {parts}")  # fmt: skip
    return notes


def machine_line(raw: dict) -> str:
    info = raw["machine"]
    bf16 = (
        "native bf16 (AMX / AVX512-BF16): fp32 and bf16 autocast rows, each against its own GEMM peak"
        if info["native_bf16"]
        else "no native bf16 (no AMX / AVX512-BF16: bf16 autocast would be emulated, slower than fp32): fp32 rows "
        "only, against the fp32 GEMM peak"
    )
    peaks = ", ".join(
        f"{b['model']} {_threads(b['threads'])} {b['precision']} {b['peak_gflops']:.0f}" for b in raw["blocks"]
    )
    return (f"{info['cpu']}, {info['cpus']} CPUs, torch {info['torch']}; {bf16}; GEMM peak (best square "
            f"matmul of 512..2048, probed before and after each block, GFLOP/s): {peaks}; load average in the "
            "last column")  # fmt: skip


def throughput_table(raw: dict, accuracy: dict | None) -> dict:
    """The table of one bench/cifar10_train_throughput.py run, with bench/compile_accuracy.py's notes."""
    return {
        "title": "CPU training throughput: eager vs torch.compile, channels_last, batch (ResNet18-CIFAR, ConvNeXt-T)",
        "experiment": "bench/cifar10_train_throughput.py, bench/compile_accuracy.py",
        "order": 67,
        "headline": headline(raw),
        "date": raw["machine"]["date"][:10],
        "machine": machine_line(raw),
        "commands": [raw["command"]] + ([accuracy["command"]] if accuracy else []),
        "source": f"bench/results/{RAW}" + (f", bench/results/{ACCURACY}" if accuracy else "") + ", docs/cifar10.md",
        "columns": COLUMNS,
        "rows": table_rows(raw["rows"]),
        "notes": [
            f"one full SGD step (forward, backward, nesterov update); median of {raw['steps']} steps after "
            f"{raw['warm_up_steps']} warm-up steps, the settings of a block interleaved (one step each per round, "
            "same load); compile s = the warm-up steps' seconds beyond two timed steps, from an empty inductor cache",
            "batch: the recipe's (cifar10_resnet18 128, retina_convnext_teacher 32) and 4x that; FLOPs per image "
            "from torch.utils.flop_counter (forward + backward), its convolution backward counted per group (torch's "
            "own formula counts a depthwise convolution's backward ~groups x)",
            data_path_note(raw),
            *breakdown_notes(raw["rows"]),
            *verdicts(raw["blocks"]),
            *accuracy_notes(accuracy),
        ],
    }


def tables(files: Files) -> dict[str, dict]:
    """The throughput table when its raw file is present, by table file name."""
    return {TABLE: throughput_table(files[RAW], files.get(ACCURACY))} if RAW in files else {}
