"""Beyond the report (notebooks 08-10): the extensions against the report's pipeline, and the noise sweep.

:func:`beyond` is a claim like the report's (it ends with "holds" or "does not hold"); the others
describe a table in one sentence: who wins each task (:func:`task_winners`), the ranking
(:func:`ranking`), and along a noise sweep the crossovers, the leaders and one pipeline against
another. Every comparison sits beside the seed spread when the table has one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise

import numpy as np
import pandas as pd

from nhpatches.study.findings.claims import (
    TASKS,
    check_metric,
    check_tolerance,
    claim_sentence,
    pipeline_row,
    spread_note,
)


def beyond(
    table: pd.DataFrame,
    extensions: Iterable[tuple[str, str]],
    reference: tuple[str, str] = ("unet", "baseline"),
    metric: str = "mean",
    exclude_denoisers: Sequence[str] = ("clean",),
    tolerance: float = 0.0,
) -> str:
    """By how much the best extension beats the report's baseline, per task.

    The best extension is the one with the highest ``metric`` among ``extensions`` (pipelines whose
    denoiser is in ``exclude_denoisers``, e.g. the clean-input upper bound, are left out). Holds
    when it beats ``reference`` on every task by more than ``tolerance``.
    """
    tolerance = check_tolerance(tolerance)
    check_metric(table, metric)
    candidates = [(d, s) for d, s in extensions if d not in set(exclude_denoisers)]
    if not candidates:
        raise ValueError(f"no extension pipeline left to compare after excluding {list(exclude_denoisers)}")
    rows = pd.DataFrame([pipeline_row(table, d, s) for d, s in candidates])
    best = rows.sort_values(metric, ascending=False).iloc[0]
    ref = pipeline_row(table, *reference)
    tasks = [t for t in TASKS if t in table.columns]
    gains = {t: best[t] - ref[t] for t in tasks}
    holds = all(g > tolerance for g in gains.values())
    per_task = ", ".join(f"{t} {best[t]:.3f} vs {ref[t]:.3f} ({g:+.3f})" for t, g in gains.items())
    spreads = "; ".join(f"{t}: " + spread_note([best, ref], [g], t) for t, g in gains.items())
    measured = f"best extension {best.denoiser} + {best.descriptor} ({metric} {best[metric]:.3f}): {per_task}; " + (
        spreads if np.isfinite(best.get(f"{metric} std", np.nan)) else spread_note([best], [], metric)
    )
    if "task_files" in table.columns and table["task_files"].nunique() > 1:
        measured += " [warning: the rows used different task files]"
    claim = (
        f"the best extension beats the report's {reference[0]} + {reference[1]} on every task "
        f"(by more than {tolerance:g})"
    )
    return claim_sentence(claim, measured, holds)


def task_winners(table: pd.DataFrame, exclude_denoisers: Sequence[str] = ("clean",)) -> str:
    """Which pipeline wins each task, by how much over the runner-up, beside the seed spread.

    Pipelines whose denoiser is in ``exclude_denoisers`` (the clean-input upper bound) do not compete.
    """
    rows = table[~table["denoiser"].isin(list(exclude_denoisers))]
    if len(rows) < 2:
        raise ValueError(f"need at least two competing pipelines, got {len(rows)}")
    lines = []
    for task in [t for t in (*TASKS, "mean") if t in rows.columns]:
        ranked = rows.sort_values(task, ascending=False)
        first, second = ranked.iloc[0], ranked.iloc[1]
        margin = first[task] - second[task]
        lines.append(
            f"{task}: {first.denoiser} + {first.descriptor} {first[task]:.4f} wins over "
            f"{second.denoiser} + {second.descriptor} {second[task]:.4f} by {margin:.4f}; "
            + spread_note([first, second], [margin], task)
        )
    return "\n".join(lines)


def sweep_crossovers(
    sweep: pd.DataFrame,
    denoised: tuple[str, str],
    noisy: tuple[str, str],
    classical: tuple[str, str] = ("none", "sift"),
    metric: str = "mean",
) -> str:
    """Where, along the noise sweep, denoising starts to pay and learned descriptors stop beating SIFT.

    ``denoised`` and ``noisy`` are the same descriptor with and without the denoiser; the learned
    pipelines are every one whose descriptor is not 'raw' or 'sift'. σ values are the sweep's.
    """
    _check_sweep(sweep, metric)
    with_denoiser, without = _sweep_curve(sweep, denoised)[metric], _sweep_curve(sweep, noisy)[metric]
    pays = with_denoiser[with_denoiser > without]
    first = (
        f"denoising ({denoised[0]}) pays from σ = {pays.index.min():g} on "
        f"({with_denoiser[pays.index.min()]:.3f} vs {without[pays.index.min()]:.3f} {metric} mAP)"
        if not pays.empty
        else f"denoising ({denoised[0]}) never pays up to σ = {with_denoiser.index.max():g}"
    )
    learned = sweep[~sweep.descriptor.isin(["raw", "sift"])].groupby("sigma")[metric].max().sort_index()
    sift = _sweep_curve(sweep, classical)[metric]
    lost = learned[learned <= sift.reindex(learned.index)]
    second = (
        f"the best learned pipeline falls to SIFT's level at σ = {lost.index.min():g} "
        f"({learned[lost.index.min()]:.3f} vs {sift[lost.index.min()]:.3f})"
        if not lost.empty
        else f"the best learned pipeline beats SIFT at every σ up to {learned.index.max():g} "
        f"(smallest lead {(learned - sift.reindex(learned.index)).min():+.3f} {metric} mAP)"
    )
    return f"{first}; {second}."


def ranking(table: pd.DataFrame, metric: str = "mean") -> str:
    """The pipelines of a table ranked by ``metric``, best first, with the gaps beside the seed spread."""
    check_metric(table, metric)
    if len(table) < 2:
        raise ValueError(f"need at least two pipelines to rank, got {len(table)}")
    ranked = table.sort_values(metric, ascending=False)
    rows = [row for _, row in ranked.iterrows()]
    order = " > ".join(f"{row.denoiser} + {row.descriptor} {row[metric]:.3f}" for row in rows)
    gaps = [first[metric] - second[metric] for first, second in pairwise(rows)]
    return (
        f"{metric} mAP, best first: {order}; gaps {', '.join(f'{g:.3f}' for g in gaps)}; "
        + spread_note(rows, gaps, metric)
        + "."
    )


def sweep_leaders(sweep: pd.DataFrame, metric: str = "mean") -> str:
    """The best pipeline at each σ of a noise sweep, with its lead over the runner-up."""
    _check_sweep(sweep, metric)
    parts = []
    for sigma, group in sweep.groupby("sigma", sort=True):
        ranked = group.sort_values(metric, ascending=False)
        first = ranked.iloc[0]
        lead = f", by {first[metric] - ranked.iloc[1][metric]:.4f}" if len(ranked) > 1 else ""
        parts.append(f"σ = {sigma:g}: {first.denoiser} + {first.descriptor} {first[metric]:.3f}{lead}")
    return f"best {metric} mAP per σ: " + "; ".join(parts) + "."


def sweep_versus(
    sweep: pd.DataFrame, pipeline: tuple[str, str], other: tuple[str, str], tasks: Sequence[str] = TASKS
) -> str:
    """A pipeline against another along a sweep: its lead (mAP points) per task at each σ."""
    _check_sweep(sweep, *tasks)
    mine, theirs = _sweep_curve(sweep, pipeline), _sweep_curve(sweep, other)
    leads = (mine[list(tasks)] - theirs[list(tasks)].reindex(mine.index)) * 100
    ahead = bool((leads > 0).all().all())
    lines = [
        f"σ = {sigma:g}: " + ", ".join(f"{task} {leads.loc[sigma, task]:+.1f}" for task in tasks)
        for sigma in leads.index
    ]
    head = (
        f"{pipeline[0]} + {pipeline[1]} against {other[0]} + {other[1]} (mAP points): "
        f"{'ahead on every task at every σ' if ahead else 'not ahead everywhere'}"
    )
    return head + "\n" + "\n".join(lines)


def _check_sweep(sweep: pd.DataFrame, *columns: str) -> None:
    """Raise ValueError unless the sweep table has the columns sigma, denoiser, descriptor and ``columns``."""
    for column in ("sigma", "denoiser", "descriptor", *columns):
        if column not in sweep.columns:
            raise ValueError(f"the sweep table needs a {column!r} column; columns: {list(sweep.columns)}")


def _sweep_curve(sweep: pd.DataFrame, pipeline: tuple[str, str]) -> pd.DataFrame:
    """One pipeline's rows of a sweep, indexed by σ in increasing order."""
    part = sweep[(sweep.denoiser == pipeline[0]) & (sweep.descriptor == pipeline[1])]
    if part.empty:
        raise ValueError(f"pipeline {pipeline[0]} + {pipeline[1]} is not in the sweep")
    return part.set_index("sigma").sort_index()
