"""What every finding shares: the claim sentence, argument checks, pipeline rows and the seed spread.

A finding reads ``Claim: <claim>. Measured: <numbers>. → holds on this run.`` (or "does not hold");
the helpers here build those parts from a pipeline table (columns denoiser, descriptor, the task
mAPs and mean; a multi-seed table adds ``<score> std`` columns and ``seeds``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Columns of the task mAPs in a pipeline table.
TASKS: tuple[str, ...] = ("verification", "matching", "retrieval")


def verdict(holds: bool) -> str:
    """'holds' or 'does not hold'."""
    return "holds" if holds else "does not hold"


def claim_sentence(claim: str, measured: str, holds: bool) -> str:
    """The finding's sentence: 'Claim: ... Measured: ... → holds on this run.' (or 'does not hold')."""
    return f"Claim: {claim}. Measured: {measured}. → {verdict(holds)} on this run."


def check_tolerance(tolerance: float) -> float:
    """The tolerance as a float; negative values are an error."""
    tolerance = float(tolerance)
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    return tolerance


def check_metric(table: pd.DataFrame, metric: str) -> None:
    """Raise ValueError unless the pipeline table has the metric column."""
    if metric not in table.columns:
        raise ValueError(f"metric {metric!r} is not a column of the table; columns: {list(table.columns)}")


def pipeline_row(table: pd.DataFrame, denoiser: str, descriptor: str) -> pd.Series:
    """The single row of a pipeline; ValueError naming the pipelines present if it is missing."""
    match = table[(table["denoiser"] == denoiser) & (table["descriptor"] == descriptor)]
    if match.empty:
        present = ", ".join(f"{d} + {s}" for d, s in zip(table["denoiser"], table["descriptor"], strict=True))
        raise ValueError(f"pipeline {denoiser} + {descriptor} is not in the table (present: {present})")
    return match.iloc[0]


def scores_text(row: pd.Series, metric: str) -> str:
    """One row's scores as text, e.g. 'mean 0.412 (verification 0.601, matching 0.210, retrieval 0.425)'.

    With a multi-seed table: 'mean 0.412 ± 0.008 (...)', the std over the seeds.
    """
    tasks = ", ".join(f"{t} {row[t]:.3f}" for t in TASKS if t in row.index and t != metric)
    std = row.get(f"{metric} std", np.nan)
    spread = f" ± {std:.3f}" if np.isfinite(std) else ""
    return f"{metric} {row[metric]:.3f}{spread}" + (f" ({tasks})" if tasks else "")


def spread_note(rows: Sequence[pd.Series], differences: Sequence[float], metric: str = "mean") -> str:
    """Whether differences between rows are larger than the seed spread, as a clause.

    The spread is the largest ``<metric> std`` (over the seeds) of the rows compared; a difference
    is "larger than the spread" when its size exceeds it. One-seed tables (no finite std) say so.
    """
    stds = [float(row.get(f"{metric} std", np.nan)) for row in rows]
    if not stds or not all(np.isfinite(stds)):
        return "one seed, so the seed spread is not measured (run with seeds [0, 1, 2])"
    spread = max(stds)
    seeds = len(str(rows[0].get("seeds", "")).split(","))
    larger = [f"{d:+.3f}" for d in differences if abs(d) > spread]
    within = [f"{d:+.3f}" for d in differences if abs(d) <= spread]
    parts = ([f"larger than it: {', '.join(larger)}"] if larger else []) + (
        [f"within it: {', '.join(within)}"] if within else []
    )
    return f"seed spread (largest {metric} std over {seeds} seeds) {spread:.3f}; differences " + "; ".join(parts)


def first_non_finite(history: pd.DataFrame) -> str:
    """'non-finite loss from epoch k' if a loss of the history is NaN or infinite, else ''."""
    columns = [c for c in history.columns if c != "epoch"]
    bad = ~np.isfinite(history[columns].to_numpy(dtype=float)).all(axis=1)
    if not bad.any():
        return ""
    return f"non-finite losses from epoch {int(history['epoch'].to_numpy()[bad.argmax()])}"
