"""Optional TensorBoard logging: the per-epoch records of metrics.jsonl, also as TensorBoard scalars.

Events go into the run directory itself (RUN/events.out.tfevents.*), next to metrics.jsonl, so
`tensorboard --logdir runs` shows one curve per run, named after its folder. TensorBoard is an optional
extra (`pip install 'kdedge-distill[tensorboard]'`); asking for it without the package is bad input, said
before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdedge.errors import InputError

INSTALL_HINT = "pip install 'kdedge-distill[tensorboard]' (or pip install tensorboard), or drop --tensorboard"

# metrics.jsonl key -> TensorBoard tag (under the stage: "student/loss/train", ...)
SCALARS = {
    "train_loss": "loss/train",
    "test_loss": "loss/test",
    "val_loss": "loss/val",
    "train_accuracy": "accuracy/train",
    "test_accuracy": "accuracy/test",
    "val_accuracy": "accuracy/val",
    "lr": "lr",
    "test_agreement": "agreement/teacher_student_test",
}


def require_tensorboard() -> None:
    """Raise InputError (exit 2) unless torch's TensorBoard writer can be imported."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401 - imports the tensorboard package
    except ImportError:
        raise InputError(f"tensorboard: the 'tensorboard' package is not installed; {INSTALL_HINT}") from None


class TensorBoardLogger:
    """Callable on one metrics record (a dict with 'stage' and 'epoch'); writes and flushes its scalars."""

    def __init__(self, run_path: Path) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_path))

    def __call__(self, record: dict[str, Any]) -> None:
        stage, epoch = record["stage"], int(record["epoch"])
        for key, tag in SCALARS.items():
            if isinstance(record.get(key), (int, float)):
                self.writer.add_scalar(f"{stage}/{tag}", float(record[key]), global_step=epoch)
        self.writer.flush()  # a killed run keeps every finished epoch

    def close(self) -> None:
        self.writer.close()
