"""SEARCH/pareto.png: test accuracy against latency (log x) of every candidate the search trained, the latency
budget as a red line, the pick as a star, the recipe's own student ringed; candidates dropped by the cost
stage as grey crosses along the bottom at the latency they measured."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdedge.files.atomic import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _latency(row: dict[str, Any], key: str) -> float | None:
    return row.get(key)


def write_plot(rows: list[dict[str, Any]], header: dict[str, Any], path: Path, seeds: dict | None = None) -> None:
    """Draw the rows of search.json (see the module docstring) into `path`; `seeds` (search.json's, from
    --seeds) adds the recipe's student fully trained, as a red diamond."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budget = header["budget"]
    key = f"latency_ms_{budget['percentile']}"
    trained = [r for r in rows if r.get("accuracy") is not None and _latency(r, key)]
    dropped = [r for r in rows if r.get("accuracy") is None and _latency(r, key)]
    fig, ax = plt.subplots(figsize=(11, 6))
    _draw_trained(ax, trained, key)
    floor = min([100 * r["accuracy"] for r in trained] + [100.0]) - 5
    _draw_dropped(ax, dropped, key, floor)
    ax.axvline(budget["latency_ms"], color="red", ls="--", lw=1.2, label=f"latency budget {budget['latency_ms']:g} ms")
    _draw_own(ax, rows, key, floor, (seeds or {}).get("own"))
    _finish(ax, header, key, has_points=bool(trained or dropped))
    untimed = sum(1 for r in rows if not _latency(r, key) and r["status"].startswith("over budget"))
    if untimed:  # dropped before timing (their weights' size, or a smaller input of theirs already too slow)
        note = f"not shown: {untimed} candidate(s) over budget without being timed (search.csv says why)"
        ax.set_xlabel(f"{ax.get_xlabel()}\n{note}")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def _draw_own(ax: Axes, rows: list[dict[str, Any]], key: str, floor: float, full: dict | None) -> None:
    """The recipe's own student ringed where it stands in the table; with --seeds also its full-schedule
    file (seed 0), which it reaches even when it missed the budget or was stopped early."""
    for row in rows:
        if row["own"] and _latency(row, key):
            y = 100 * row["accuracy"] if row.get("accuracy") is not None else floor
            ax.scatter(row[key], y, s=260, facecolors="none", edgecolors="C3", linewidths=1.8, label="recipe's student")
            ax.annotate(
                "recipe's student", (row[key], y), fontsize=8, color="C3", xytext=(10, -14), textcoords="offset points"
            )
    first = (full or {}).get("runs", [{}])[0]
    if first.get("accuracy") is not None and first.get(key):
        label = "recipe's student, full schedule (seed 0)"
        ax.scatter(first[key], 100 * first["accuracy"], marker="D", s=70, c="C3", label=label, zorder=4)


def _draw_trained(ax: Axes, trained: list[dict[str, Any]], key: str) -> None:
    """Finalists filled (accuracy of the exported file, its final latency), candidates stopped early
    hollow (PyTorch accuracy after their short schedule, latency of the random-weights file); the pick a star."""
    for group, style in (
        (
            "stopped early",
            {"facecolors": "none", "edgecolors": "C0", "s": 40, "label": "stopped early (short schedule)"},
        ),
        ("finalist", {"c": "C0", "s": 60, "label": "finalist (exported file)"}),
    ):
        chosen = [r for r in trained if r["status"].startswith(group)]
        if chosen:
            ax.scatter([r[key] for r in chosen], [100 * r["accuracy"] for r in chosen], **style)
    for row in trained:
        if row["status"].startswith("stopped early") and not row["own"]:  # the recipe's: labelled by its ring
            ax.annotate(
                row["name"],
                (row[key], 100 * row["accuracy"]),
                fontsize=6,
                color="0.4",
                xytext=(4, 3),
                textcoords="offset points",
            )
        if row["status"] == "best":
            ax.scatter(
                row[key], 100 * row["accuracy"], marker="*", s=320, c="gold", edgecolors="k", zorder=5, label="pick"
            )
        if row["status"] == "best" or row["status"].startswith("finalist"):
            ax.annotate(
                f"{row['name']} {100 * row['accuracy']:.1f}%",
                (row[key], 100 * row["accuracy"]),
                fontsize=8,
                xytext=(6, -12),
                textcoords="offset points",
            )


def _draw_dropped(ax: Axes, dropped: list[dict[str, Any]], key: str, floor: float) -> None:
    if dropped:
        ax.scatter(
            [r[key] for r in dropped],
            [floor] * len(dropped),
            marker="x",
            c="0.6",
            s=30,
            label="over budget (not trained)",
        )


def budget_words(budget: dict[str, Any]) -> str:
    words = [f"latency {budget['percentile']} <= {budget['latency_ms']:g} ms"]
    words += [f"size <= {budget['size_mb']:g} MB"] if budget.get("size_mb") else []
    words += [f"peak <= {budget['peak_mb']:g} MiB"] if budget.get("peak_mb") else []
    return ", ".join(words)


def _finish(ax: Axes, header: dict[str, Any], key: str, *, has_points: bool) -> None:
    import matplotlib.ticker

    if has_points:
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    percentile = key.rsplit("_", 1)[-1]
    if has_points:  # the budget line and the shaded region beyond it always in view
        low, high = ax.get_xlim()
        high = max(high, 1.5 * header["budget"]["latency_ms"])
        ax.axvspan(header["budget"]["latency_ms"], high, color="red", alpha=0.05)
        ax.set_xlim(low, high)
    ax.set(
        xlabel=f"latency {percentile}, ms ({header['target']}, batch {header['batch']}, {header['threads']} "
        "thread(s), log scale)",
        ylabel="test accuracy, %",
        title=f"kdedge search: {header['recipe']} -> {header['target']}, {budget_words(header['budget'])}\n"
        f"{header['machine']['cpu']}",
    )
    if not has_points:
        ax.text(0.5, 0.5, "no candidate was measured", ha="center", transform=ax.transAxes)
    ax.grid(True, which="both", alpha=0.3)
    # beside the axes: inside, it covered the over-budget crosses and the recipe's student at the bottom right
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
