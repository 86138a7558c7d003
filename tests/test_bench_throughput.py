"""bench/cifar10_train_throughput.py's ratios and its table (bench/tablegen/throughput.py): each technique
against its baseline of the same run, a verdict per technique, the precision this CPU computes natively."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _bench(name: str, path: str):
    """A bench/ file as a module, with bench/ on the path as when it runs as a script."""
    sys.path.insert(0, str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(setting: str, rate: float, batch: int = 128, compile_mode: str | None = None, **changes) -> dict:
    row = {"model": "cifar_resnet18", "recipe": "cifar10_resnet18", "setting": setting, "precision": "fp32",
           "channels_last": "NCHW" not in setting, "compile_mode": compile_mode, "batch": batch, "threads": 2,
           "images_per_s": rate, "train_gflop_per_image": 3.329, "achieved_gflops": round(rate * 3.329, 1),
           "fraction_of_native_peak": round(rate * 3.329 / 333, 3), "median_step_s": batch / rate,
           "compile_s": None if compile_mode is None else 40.0, "warm_up_s": 1.0, "load_average_1min": 1.1}  # fmt: skip
    return row | changes


ROWS = [
    _row("fp32 NCHW eager", 50.0),
    _row("fp32 channels_last eager", 60.0),
    _row("fp32 channels_last compiled (default)", 61.0, compile_mode="default"),
    _row("fp32 channels_last eager", 54.0, batch=512),
]


def test_ratios_set_each_technique_against_its_own_baseline() -> None:
    bench = _bench("train_throughput", "bench/cifar10_train_throughput.py")
    assert bench.ratios(ROWS) == {
        "channels_last / NCHW (eager)": 1.2,
        "compiled (default) / eager (channels_last)": round(61 / 60, 3),
        "batch 512 / 128 (eager channels_last)": 0.9,
    }


def test_the_table_says_where_a_technique_does_not_help_and_which_peak_it_uses() -> None:
    bench = _bench("train_throughput", "bench/cifar10_train_throughput.py")
    _bench("bench_tables", "bench/tables.py")  # puts bench/ and this checkout's kdedge on the path
    from tablegen import throughput

    machine = {"cpu": "Xeon", "cpus": 2, "torch": "2.x", "native_bf16": False, "date": "2026-12-06 23:00 UTC"}
    raw = {"machine": machine, "steps": 5, "warm_up_steps": 2, "command": "python bench/...", "rows": ROWS,
           "blocks": [{"model": "cifar_resnet18", "threads": 2, "precision": "fp32", "peak_gflops": 333.0,
                       "ratios": bench.ratios(ROWS), "data_path_ms_per_batch": 21.3}]}  # fmt: skip
    table = throughput.tables({throughput.RAW: raw})[throughput.TABLE]
    assert [row[-2] for row in table["rows"]] == ["0.83x", "1.00x", "1.02x", "0.90x"]  # vs eager channels_last
    assert table["rows"][2][7] == 40 and table["rows"][0][6] == "50 % (fp32)"  # compile s, share of fp32 peak
    notes = " | ".join(table["notes"])
    assert "channels_last / NCHW (eager) 1.20x: helps" in notes
    assert "compiled (default) / eager (channels_last) 1.02x: does not help (within 5 %)" in notes
    assert "batch 512 / 128 (eager channels_last) 0.90x: slower" in notes
    assert "accuracy beside speed: not measured yet" in notes
    assert "ResNet18-CIFAR fp32 2 threads 21.3 ms = 1.0 % of a step" in notes  # 21.3 ms of 128 / 60 s
    assert "no native bf16" in table["machine"] and "against the fp32 GEMM peak" in table["machine"]
    assert table["headline"].startswith("CPU training at 2 threads: ResNet18-CIFAR fp32 torch.compile 1.02x eager")
    assert "best 61 % of the fp32 peak (fp32 channels_last compiled (default), batch 128)" in table["headline"]


def test_with_bf16_rows_the_headline_gives_the_bf16_peak_and_the_breakdown_is_a_note() -> None:
    """On a CPU with native bf16 the goal is a share of the bf16 peak: the headline quotes that, not fp32's."""
    bench = _bench("train_throughput", "bench/cifar10_train_throughput.py")
    throughput = _bench("tablegen.throughput", "bench/tablegen/throughput.py")
    split = {"conv forward": 0.2, "conv backward": 0.6, "everything else": 0.2}
    bf16 = [row | {"precision": "bf16", "setting": row["setting"].replace("fp32", "bf16 autocast"),
                   "fraction_of_native_peak": row["fraction_of_native_peak"] / 6} for row in ROWS]  # fmt: skip
    bf16[1]["op_seconds_per_step"] = split
    machine = {"cpu": "Xeon", "cpus": 2, "torch": "2.x", "native_bf16": True, "date": "2026-12-07 02:00 UTC"}
    blocks = [{"model": "cifar_resnet18", "threads": 2, "precision": p, "peak_gflops": 333.0, "ratios": bench.ratios(r),
               "data_path_ms_per_batch": 2.0} for p, r in (("fp32", ROWS), ("bf16", bf16))]  # fmt: skip
    raw = {"machine": machine, "steps": 5, "warm_up_steps": 2, "command": "c", "rows": ROWS + bf16, "blocks": blocks}
    table = throughput.tables({throughput.RAW: raw})[throughput.TABLE]
    assert "bf16 torch.compile 1.02x eager" in table["headline"] and "of the bf16 peak" in table["headline"]
    assert "fp32 peak" not in table["headline"]
    notes = " | ".join(table["notes"])
    assert "conv backward 0.600 s (60 %)" in notes and "bf16 autocast channels_last eager batch 128" in notes


def test_training_flops_count_a_depthwise_convolution_backward_once_per_gradient() -> None:
    """torch's flop counter counts a grouped convolution's weight gradient ~groups x; ours: one forward each."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    steps = _bench("throughput_steps", "bench/throughput_steps.py")
    for groups in (1, 32):
        conv = torch.nn.Conv2d(32, 32, 7, padding=3, groups=groups)
        images = torch.randn(2, 32, 8, 8, requires_grad=True)
        with FlopCounterMode(display=False) as forward:
            out = conv(images)
        mapping = {torch.ops.aten.convolution_backward: steps._conv_backward_flops}
        with FlopCounterMode(display=False, custom_mapping=mapping) as backward:
            out.sum().backward()
        assert backward.get_total_flops() == 2 * forward.get_total_flops(), groups
