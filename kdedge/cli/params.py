"""Options and arguments that several commands share, declared once (help text, flag names, completion)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kdedge.cli.completion import recipe_names, run_folders

# TAB completes packaged recipe names and .yaml files, run folders and .onnx files (kdedge.cli.completion)
RecipeArgument = Annotated[
    str, typer.Argument(help="Recipe file or packaged recipe name.", autocompletion=recipe_names)
]
RunArgument = Annotated[Path, typer.Argument(help="A run directory.", autocompletion=run_folders)]
SetOption = Annotated[
    list[str],
    typer.Option(
        "--set",
        help="Override recipe keys: --set a.b=value c=value ... (several pairs after one --set, or one --set each).",
    ),
]
OutOption = Annotated[Path | None, typer.Option("--out", help="Run directory (default runs/<recipe name>).")]
DataRootOption = Annotated[
    str | None,
    typer.Option(
        "--data-root",
        help="Data folder (default: the run's own, else $KDEDGE_DATA, else download to "
        "~/.cache/kdedge); for data.name folder/csv it replaces data.path.",
    ),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="CPU threads for this run (default: one per core). Sharing the machine with another job? "
        "Give each its share, e.g. --threads 1 on 2 cores.",
        min=1,
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite a finished run in --out.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
WideOption = Annotated[
    bool,
    typer.Option(
        "--wide", help="Every column, however wide the table gets (by default columns are hidden to fit the terminal)."
    ),
]
TensorBoardOption = Annotated[
    bool,
    typer.Option(
        "--tensorboard",
        help="Also write TensorBoard events into the run directory (needs kdedge-distill[tensorboard]).",
    ),
]
ResumeOption = Annotated[
    Path | None, typer.Option("--resume", help="Continue this killed run from its last checkpoint.")
]
SkipBadOption = Annotated[
    bool,
    typer.Option("--skip-bad-images", help="Leave unreadable images out (a warning, a count, RUN/bad_images.txt)."),
]
PredictSkipBadOption = Annotated[  # the same flag for `kdedge predict`, which has no run folder to list them in
    bool, typer.Option("--skip-bad-images", help="Leave unreadable images out (a warning, a count, their names).")
]
CheckpointMinutesOption = Annotated[
    float,
    typer.Option(
        "--checkpoint-minutes", min=0, help="Also save training state every N minutes inside an epoch (0: off)."
    ),
]
