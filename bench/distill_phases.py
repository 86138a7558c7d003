"""`kdedge distill ARGS` in this process with a clock on each phase of the run (bench/distill_overhead.py
starts it as a fresh process). Prints one JSON line: {"seconds": {phase: s}, "elapsed": s since this
script's first line}. Only the outermost clocked call counts (a phase inside another is not counted twice).

    python bench/distill_phases.py distill hinton_mnist_800 --set ... --out RUN
"""

import time

START = time.perf_counter()
import functools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections import defaultdict  # noqa: E402

SECONDS: dict[str, float] = defaultdict(float)
ACTIVE = [False]


def clocked(label: str, function):
    """`function`, its time added to SECONDS[label] unless another clocked call is running."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if ACTIVE[0]:
            return function(*args, **kwargs)
        ACTIVE[0], started = True, time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SECONDS[label] += time.perf_counter() - started
            ACTIVE[0] = False

    return wrapper


def patch(owner, name: str, label: str) -> None:
    setattr(owner, name, clocked(label, getattr(owner, name)))


def instrument() -> None:
    """Import what `kdedge distill` imports (timed as 'imports'), then clock its phases."""
    started = time.perf_counter()
    import kdedge.cli  # noqa: F401
    import kdedge.commands.distill as distill

    SECONDS["imports"] = time.perf_counter() - started
    from kdedge.files.rundir import RunDir
    from kdedge.train import checkpoint, loop, pipeline, prepare

    patch(distill, "prepare_data", "data loading")
    patch(checkpoint, "make_optimizer", "optimizer (its first use imports torch._dynamo)")
    patch(pipeline, "load_weights_into", "teacher weights (load)")
    patch(loop, "teacher_logits_for", "teacher logits (training set, cached file)")
    patch(loop, "teacher_test_logits", "teacher logits (test set, for agreement)")
    patch(loop, "_train_epoch", "training steps")
    patch(loop, "score_splits", "per-epoch evaluation")
    patch(pipeline, "stage_summary", "final scoring (summary.json, both stages)")
    for owner, name in ((checkpoint.Checkpoint, "save"), (pipeline, "write_run_files"), (prepare.RunMetrics, "log")):
        patch(owner, name, "writing the run (state, metrics, weights, summary)")
    for name in ("save_weights", "write_summary"):
        patch(RunDir, name, "writing the run (state, metrics, weights, summary)")


def main() -> None:
    instrument()
    from kdedge.cli import main as cli_main

    sys.argv = ["kdedge", *sys.argv[1:]]
    try:
        cli_main()
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise
    print(json.dumps({"seconds": SECONDS, "elapsed": time.perf_counter() - START}))


if __name__ == "__main__":
    main()
