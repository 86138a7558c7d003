"""PNG plots for reports (matplotlib, Agg backend: no display needed). Reusable by every study:
learning curves from metrics.jsonl records, confusion matrices, sweep heat maps, loss curves of several runs.

Every function writes one PNG atomically (temp file + rename) and returns its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kdedge.files.atomic import atomic_write


def _pyplot():
    """matplotlib's pyplot on the Agg backend, imported on first use (no import-time side effects)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> Path:
    """tight_layout within `rect` (figure fraction; room left for a figure legend), then the PNG."""
    plt = _pyplot()
    figure.tight_layout(rect=rect)
    atomic_write(Path(path), lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    plt.close(figure)
    return Path(path)


def learning_curves(records: Sequence[dict], path: Path, title: str) -> Path:
    """Three panels per epoch of ONE stage: the training objective (a KD loss can be T^2 times larger than
    a CE, so it gets its own axis), test / val cross-entropy, and train / val / test accuracy (a stage that
    keeps a weight average, ema_decay, also shows its raw weights' val / test accuracy, dashed)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, (train_ax, loss_ax, acc_ax) = plt.subplots(1, 3, figsize=(13, 3.8))
    epochs = [r["epoch"] for r in records]
    train_ax.plot(epochs, [r["train_loss"] for r in records], "-o", ms=3, label="train")
    for split, style in (("train", "-o"), ("val", "-s"), ("test", "-^")):
        if split != "train" and f"{split}_loss" in records[0]:
            loss_ax.plot(epochs, [r[f"{split}_loss"] for r in records], style, ms=3, label=split)
        if f"{split}_accuracy" in records[0]:
            acc_ax.plot(epochs, [100 * r[f"{split}_accuracy"] for r in records], style, ms=3, label=split)
        if f"raw_{split}_accuracy" in records[0]:  # ema_decay: the scores above are the average's
            raw = [100 * r[f"raw_{split}_accuracy"] for r in records]
            acc_ax.plot(epochs, raw, style[0] + "-", ms=0, alpha=0.6, label=f"{split}, raw weights")
    train_ax.set(xlabel="epoch", ylabel="loss", title="training objective")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="held-out loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy %", title="accuracy")
    for axis in (train_ax, loss_ax, acc_ax):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend()
    figure.suptitle(title)
    return _save(figure, path)


def curves(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    title: str,
    xlabel: str = "epoch",
    ylabel: str = "loss",
) -> Path:
    """Several labelled (x, y) curves on one axis, e.g. test loss of three students of an alpha study."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for label, (xs, ys) in series.items():
        axis.plot(xs, ys, "-o", ms=3, label=label)
    if xlabel == "epoch":
        from matplotlib.ticker import MaxNLocator

        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axis.set(xlabel=xlabel, ylabel=ylabel, title=title)
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(figure, path)


def train_heldout_curves(series: dict[str, Sequence[dict]], heldout: str, path: Path, title: str) -> Path:
    """Per labelled run (one colour each), from its metrics.jsonl records of one stage, per epoch: top row
    train loss (solid, left) and `heldout` ("val" or "test") cross-entropy (dashed, right); bottom row train
    accuracy (solid) and `heldout` accuracy (dashed). Separate loss panels because a KD objective is not a
    cross-entropy (alpha and T^2 scale it), while the held-out CE compares across runs."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    legend_rows = (len(series) + 3) // 2  # the runs and the two line styles, two per row
    height_in = 7.5 + 0.2 * legend_rows
    figure, axes = plt.subplots(2, 2, figsize=(12, height_in))
    for label, records in series.items():
        epochs = [r["epoch"] for r in records]
        (line,) = axes[0, 0].plot(epochs, [r["train_loss"] for r in records], "-o", ms=3, label=label)
        style = {"ms": 3, "color": line.get_color()}
        axes[0, 1].plot(epochs, [r.get(f"{heldout}_loss", float("nan")) for r in records], "--s", **style)
        axes[1, 0].plot(epochs, [100 * r["train_accuracy"] for r in records], "-o", **style)
        axes[1, 1].plot(epochs, [100 * r.get(f"{heldout}_accuracy", float("nan")) for r in records], "--s", **style)
    _label_curve_axes(axes, heldout)
    styles = [Line2D([], [], color="grey", ls="-", label="train"), Line2D([], [], color="grey", ls="--", label=heldout)]
    handles = axes[0, 0].get_legend_handles_labels()[0] + styles
    figure.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    figure.suptitle(title)
    return _save(figure, path, rect=(0, (0.05 + 0.19 * legend_rows) / height_in, 1, 1))


def _label_curve_axes(axes, heldout: str) -> None:
    """Titles, labels, integer epoch ticks and grids of train_heldout_curves' 2 x 2 panels."""
    from matplotlib.ticker import MaxNLocator

    axes[0, 0].set(ylabel="loss", title="train loss, solid (each student's own objective)")
    axes[0, 1].set(ylabel="cross-entropy", title=f"{heldout} loss, dashed (cross-entropy)")
    axes[1, 0].set(ylabel="accuracy %", title="train accuracy, solid (running, train mode)")
    axes[1, 1].set(ylabel="accuracy %", title=f"{heldout} accuracy, dashed")
    for axis in axes.flat:
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axis.grid(alpha=0.3)


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> Path:
    """(C, C) counts, rows = true class, columns = predicted; diagonal shown, colour on a log scale so
    a handful of errors is visible next to a thousand correct ones."""
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    size = max(4.0, 0.45 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size * 0.9))
    norm = LogNorm(vmin=0.5, vmax=max(matrix.max(), 1))
    image = axis.imshow(np.maximum(matrix, 0.5), cmap="Blues", norm=norm)
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45 if max(map(len, class_names)) > 2 else 0)
    axis.set_yticks(ticks, class_names)
    axis.set(xlabel="predicted", ylabel="true", title=title)
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            dark = count > matrix.max() ** 0.5
            color = "white" if dark else "black"
            axis.text(col, row, str(count), ha="center", va="center", fontsize=7, color=color)
    figure.colorbar(image, ax=axis, fraction=0.046, label="images (log scale)")
    return _save(figure, path)


def heatmap(
    values: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    path: Path,
    title: str,
    row_name: str,
    col_name: str,
    value_name: str = "",
) -> Path:
    """(R, K) grid of numbers (NaN = not run), each cell written in; lower is better (reversed colours);
    `value_name` labels the colour bar."""
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    figure, axis = plt.subplots(figsize=(1.2 * len(col_labels) + 2.5, 0.8 * len(row_labels) + 1.8))
    finite = values[np.isfinite(values)]
    # a diverged point (errors at chance) would wash out the rest on a linear scale: log for wide ranges
    wide = finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() > 10
    norm = LogNorm(finite.min(), finite.max()) if wide else None
    image = axis.imshow(np.ma.masked_invalid(values), cmap="viridis_r", aspect="auto", norm=norm)
    axis.set_xticks(range(len(col_labels)), col_labels)
    axis.set_yticks(range(len(row_labels)), row_labels)
    axis.set(xlabel=col_name, ylabel=row_name, title=title + (" (log colour scale)" if wide else ""))
    middle = (
        float(np.sqrt(finite.min() * finite.max()))
        if wide
        else ((finite.min() + finite.max()) / 2 if finite.size else 0)
    )
    for (row, col), value in np.ndenumerate(values):
        text = "-" if not np.isfinite(value) else f"{value:g}"
        color = "black" if value < middle else "white"  # viridis_r: low values are light
        axis.text(col, row, text, ha="center", va="center", color=color)
    figure.colorbar(image, ax=axis, fraction=0.046, label=value_name)
    return _save(figure, path)
