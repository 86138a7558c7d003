"""The bench's Pareto plot: latency p50 (log x) against accuracy, or against file size when no row has an
accuracy, one point per measured row at one batch size, with the front of rows that no faster row beats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdedge.files.atomic import atomic_write
from kdedge.runtime.formats import file_runtimes

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def runtime_colours() -> dict[str, str]:
    """One colour per runtime: PyTorch's two, then every file runtime of the format table in its order."""
    return {runtime: f"C{index}" for index, runtime in enumerate(("torch", "torch-compile", *file_runtimes()))}


@dataclass(frozen=True)
class _YAxis:
    """What the y axis shows: scale x row[key]; sign +1 when higher is better (accuracy), -1 when lower
    is (file size)."""

    key: str
    sign: int
    scale: int
    label: str

    def value(self, row: dict[str, Any]) -> float:
        return self.scale * row[self.key]


def write_pareto(result: dict[str, Any], path: Path, batch_size: int | None = None) -> None:
    """Latency p50 (log x) vs accuracy, one point per measured row at one batch size (the smallest by
    default: edge latency); teacher = square, student = circle, colour = runtime; the Pareto front dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in result["rows"] if r["status"] == "ok"]
    y_axis = _y_axis(measured)
    ok = [r for r in measured if r.get(y_axis.key) is not None]
    batch_size = batch_size or min((r["batch_size"] for r in ok), default=1)
    points = sorted((r for r in ok if r["batch_size"] == batch_size), key=lambda r: r["latency_ms_p50"])
    fig, ax = plt.subplots(figsize=(9, 6))
    front = pareto_front(points, y_axis.key, y_axis.sign)
    _draw_points(ax, points, y_axis, _labelled(points, front))
    ax.plot(
        [r["latency_ms_p50"] for r in front],
        [y_axis.value(r) for r in front],
        "k--",
        lw=0.8,
        label="Pareto front",
    )
    _draw_legend_keys(ax, points)
    _finish_axes(ax, y_axis, batch_size, result["machine"], has_points=bool(points))
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def _y_axis(measured: list[dict[str, Any]]) -> _YAxis:
    """Accuracy in %, or, without any accuracy (no test data, e.g. APTOS), the file size: still a
    trade-off picture."""
    if any(r.get("accuracy") is not None for r in measured):
        return _YAxis("accuracy", 1, 100, "top-1 accuracy, %")
    return _YAxis("size_mb", -1, 1, "file size, MB (no accuracy: no test data)")


def pareto_front(points: list[dict[str, Any]], key: str, sign: int) -> list[dict[str, Any]]:
    """The rows, fastest first, that beat every faster row on sign x row[key]."""
    front, best = [], -float("inf")
    for row in sorted(points, key=lambda r: r["latency_ms_p50"]):
        if sign * row[key] > best:
            front.append(row)
            best = sign * row[key]
    return front


def _labelled(points: list[dict[str, Any]], front: list[dict[str, Any]]) -> set[int]:
    """ids of the rows worth a text label: the Pareto front, deployable rows and each model's fastest row.
    Labelling every row piles names on top of each other where files of one model cluster (the table has
    them all)."""
    fastest: dict[str, dict[str, Any]] = {}
    for row in points:  # sorted by latency: the first row of a model is its fastest
        fastest.setdefault(row.get("model", row["arch"]), row)
    chosen = [*front, *fastest.values(), *(r for r in points if r.get("deploy"))]
    return {id(row) for row in chosen}


def _draw_points(ax: Axes, points: list[dict[str, Any]], y_axis: _YAxis, labelled: set[int]) -> None:
    """One marker per row (square teacher, circle student, colour = runtime, thick edge = deployable);
    rows in `labelled` (ids) get teacher or student / runtime / precision; `points` sorted by latency."""
    for index, row in enumerate(points):
        ax.scatter(
            row["latency_ms_p50"],
            y_axis.value(row),
            marker="s" if row["stage"] == "teacher" else "o",
            s=60,
            c=runtime_colours().get(row["runtime"], "k"),
            edgecolors="k" if row.get("deploy") else "none",
            linewidths=1.5,
        )
        if id(row) not in labelled:
            continue
        ax.annotate(
            f"{row['stage'] or row['arch'][:16]} {row['runtime']} {row['precision']}",  # the legend's names
            (row["latency_ms_p50"], y_axis.value(row)),
            fontsize=7,
            xytext=(4, 3 if index % 2 else -9),  # alternate above / below: neighbours overlap less
            textcoords="offset points",
        )


def _draw_legend_keys(ax: Axes, points: list[dict[str, Any]]) -> None:
    """Empty scatters that only name things in the legend: the runtimes plotted, the marker shapes."""
    for runtime, colour in runtime_colours().items():
        if any(r["runtime"] == runtime for r in points):
            ax.scatter([], [], c=colour, label=runtime)
    ax.scatter([], [], marker="s", c="w", edgecolors="k", label="teacher")
    ax.scatter([], [], marker="o", c="w", edgecolors="k", label="student")
    ax.scatter([], [], marker="o", c="w", edgecolors="k", linewidths=2, label="deployable (thick edge)")


def _finish_axes(ax: Axes, y_axis: _YAxis, batch_size: int, machine: dict[str, Any], *, has_points: bool) -> None:
    """Log latency axis with plain tick labels, axis labels and title, grid, legend outside the plot."""
    import matplotlib.ticker

    if has_points:  # log scale needs data; with none the axes only carry the message below
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor ticks: no "2x10^1" clutter
    ax.set(
        xlabel=f"latency p50, ms (batch {batch_size}, log scale); labelled: Pareto front, each model's fastest",
        ylabel=y_axis.label,
        title=f"latency vs {y_axis.key} ({machine['cpu']}, {machine['threads']} threads)",
    )
    if not has_points:
        ax.text(0.5, 0.5, "no measured row", ha="center", transform=ax.transAxes)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
