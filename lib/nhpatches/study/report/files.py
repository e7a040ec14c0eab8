"""Writing what a notebook shows: figures as PNG and tables as CSV + Markdown under ``figures/<profile>/``.

Every write is atomic (a half-written file never replaces a good one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nhpatches.core import config
from nhpatches.core.cache import atomic_path

#: Figure resolution of saved PNGs.
DPI = 150


def save_figure(fig: Figure, name: str, profile: str) -> None:
    """Write ``fig`` to figures/<profile>/<name>.png.

    Returns nothing, so that a notebook cell ending with it shows the figure and nothing else
    (the path is ``figure_path(name, profile)``).
    """
    with atomic_path(figure_path(name, profile)) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")


def figure_path(name: str, profile: str) -> Path:
    """Where save_figure writes a figure: figures/<profile>/<name>.png."""
    return config.figures_dir(profile) / f"{name}.png"


def save_table(frame: pd.DataFrame, name: str, profile: str, floatfmt: str = "{:.4f}") -> Path:
    """Write ``frame`` as figures/<profile>/<name>.csv and .md; return the CSV path."""
    folder = config.figures_dir(profile)
    with atomic_path(folder / f"{name}.csv") as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(folder / f"{name}.md") as tmp:
        tmp.write_text(to_markdown(frame, floatfmt) + "\n")
    return folder / f"{name}.csv"


def to_markdown(frame: pd.DataFrame, floatfmt: str = "{:.4f}") -> str:
    """A GitHub Markdown table of ``frame`` (floats formatted, NaN left blank)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if np.isnan(value) else floatfmt.format(value)
        return str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
