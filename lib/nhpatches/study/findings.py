"""The "finding here" of each notebook: a report's claim checked against this run's numbers.

Every function takes the tables (or training histories) a notebook has just computed and returns
one paragraph that names the claim, states the measured numbers and ends with "holds" or "does
not hold" on this run. ``tolerance`` is the difference (in the compared quantity: mAP, dB, pixel
MAE or a relative loss change) that still counts as a tie: it makes "no better" claims lenient
and "better" / "worse" claims demand a margin. The claims are the report's (R §x) or, where the
report is silent, the obvious expectation of the experiment; the report's own numbers stay in the
notebooks' Markdown and are never mixed with the measured ones here.

Pipeline tables are DataFrames with columns denoiser, descriptor and one column per task
(verification, matching, retrieval) plus mean, as ``Study.evaluate_many`` and ``report.table2``
return them; quality tables are ``Study.compare_denoisers`` frames; histories are the per-epoch
DataFrames of ``Study.denoiser(...).history``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

#: Columns of the task mAPs in a pipeline table.
TASKS: tuple[str, ...] = ("verification", "matching", "retrieval")
#: The report's data description (R §1.1).
REPORT_SEQUENCES = {"total": 116, "illumination": 57, "viewpoint": 59}
REPORT_NOISE_LEVELS: tuple[str, ...] = ("easy", "hard", "tough")


def verdict(holds: bool) -> str:
    """'holds' or 'does not hold'."""
    return "holds" if holds else "does not hold"


def _sentence(claim: str, measured: str, holds: bool) -> str:
    """'Claim: ... Measured: ... -> holds on this run.'"""
    return f"Claim: {claim}. Measured: {measured}. → {verdict(holds)} on this run."


def _check_tolerance(tolerance: float) -> float:
    """The tolerance as a float; negative values are an error."""
    tolerance = float(tolerance)
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    return tolerance


def _check_metric(table: pd.DataFrame, metric: str) -> None:
    """Raise ValueError unless the pipeline table has the metric column."""
    if metric not in table.columns:
        raise ValueError(f"metric {metric!r} is not a column of the table; columns: {list(table.columns)}")


def _row(table: pd.DataFrame, denoiser: str, descriptor: str) -> pd.Series:
    """The single row of a pipeline; ValueError naming the pipelines present if it is missing."""
    match = table[(table["denoiser"] == denoiser) & (table["descriptor"] == descriptor)]
    if match.empty:
        present = ", ".join(f"{d} + {s}" for d, s in zip(table["denoiser"], table["descriptor"]))
        raise ValueError(f"pipeline {denoiser} + {descriptor} is not in the table (present: {present})")
    return match.iloc[0]


def _scores(row: pd.Series, metric: str) -> str:
    """'mean 0.412 (verification 0.601, matching 0.210, retrieval 0.425)' for one row; with a
    multi-seed table 'mean 0.412 ± 0.008 (...)', the std over the seeds."""
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


# ----- 00: data --------------------------------------------------------------------------------


def data_description(sequences: pd.DataFrame, noise_levels: Iterable[str] = REPORT_NOISE_LEVELS) -> str:
    """R §1.1: 116 sequences, 57 illumination (i_) and 59 viewpoint (v_), three noise levels.

    ``sequences`` is ``Study.dataset_summary()`` (columns sequence, kind); ``noise_levels`` the
    levels of this dataset (e.g. ``Study.noise_summary().noise_level``).
    """
    names = pd.Series(sequences["sequence"]).drop_duplicates()
    kinds = sequences.drop_duplicates("sequence").set_index("sequence")["kind"]
    total = len(names)
    illumination = int((kinds == "illumination").sum())
    viewpoint = int((kinds == "viewpoint").sum())
    levels = tuple(dict.fromkeys(noise_levels))
    holds = (total, illumination, viewpoint) == tuple(REPORT_SEQUENCES.values()) and levels == REPORT_NOISE_LEVELS
    claim = (
        "the data are N-HPatches: 116 sequences, 57 illumination (i_) and 59 viewpoint (v_), noise easy / hard / tough"
    )
    measured = (
        f"{total} sequences, {illumination} illumination (i_) and {viewpoint} viewpoint (v_), "
        f"noise levels {' / '.join(levels) or 'none'}"
    )
    return _sentence(claim, measured, holds)


# ----- 01: the baseline pipeline ---------------------------------------------------------------


def denoising_order(
    table: pd.DataFrame,
    denoiser: str = "unet",
    descriptor: str = "baseline",
    metric: str = "mean",
    tolerance: float = 0.0,
) -> str:
    """Noisy input < denoised input < clean input, for one descriptor, on ``metric``.

    Holds when the denoised pipeline beats the noisy one and the clean one beats the denoised
    one, each by more than ``tolerance``.
    """
    tolerance = _check_tolerance(tolerance)
    _check_metric(table, metric)
    noisy, denoised, clean = (_row(table, d, descriptor) for d in ("none", denoiser, "clean"))
    holds = (denoised[metric] - noisy[metric] > tolerance) and (clean[metric] - denoised[metric] > tolerance)
    claim = (
        f"denoising helps the {descriptor} descriptor and clean patches bound it: "
        f"noisy < {denoiser} < clean (by more than {tolerance:g})"
    )
    measured = (
        f"noisy {_scores(noisy, metric)}; {denoiser} {_scores(denoised, metric)}; "
        f"clean {_scores(clean, metric)}; "
        + spread_note(
            [noisy, denoised, clean], [denoised[metric] - noisy[metric], clean[metric] - denoised[metric]], metric
        )
    )
    return _sentence(claim, measured, holds)


# ----- 02: DnCNN, Adam versus SGD ---------------------------------------------------------------


def _mean_quality(quality: pd.DataFrame, denoiser: str) -> pd.Series:
    """Mean MAE and PSNR over the noise levels of one denoiser's output (or of 'none')."""
    part = quality[quality["denoiser"] == denoiser]
    if part.empty:
        raise ValueError(
            f"denoiser {denoiser!r} is not in the quality table (present: {sorted(set(quality.denoiser))})"
        )
    return part[["mae", "psnr_db"]].mean()


def dncnn_beats_unet(
    quality: pd.DataFrame, dncnn: str = "dncnn_adam", unet: str = "unet", tolerance: float = 0.0
) -> str:
    """R §3.1: DnCNN with Adam denoises better than the baseline U-Net (test PSNR and MAE).

    ``quality`` is ``Study.compare_denoisers``; the levels are averaged. Holds when DnCNN's PSNR is
    higher by more than ``tolerance`` dB and its MAE lower by more than ``tolerance``.
    """
    tolerance = _check_tolerance(tolerance)
    ours, theirs = _mean_quality(quality, dncnn), _mean_quality(quality, unet)
    noisy = _mean_quality(quality, "none") if (quality["denoiser"] == "none").any() else None
    holds = (ours.psnr_db - theirs.psnr_db > tolerance) and (theirs.mae - ours.mae > tolerance)
    measured = (
        f"mean test PSNR {dncnn} {ours.psnr_db:.2f} dB vs {unet} {theirs.psnr_db:.2f} dB, "
        f"MAE {ours.mae:.2f} vs {theirs.mae:.2f}"
    )
    if noisy is not None:
        measured += f" (noisy input: {noisy.psnr_db:.2f} dB, MAE {noisy.mae:.2f})"
    return _sentence(f"{dncnn} denoises better than {unet} (higher PSNR and lower MAE)", measured, holds)


def loss_change(history: pd.DataFrame, column: str = "loss") -> float:
    """Relative change of a loss from the first to the last epoch: (last - first) / first."""
    if column not in history.columns or len(history) == 0:
        raise ValueError(f"history has no {column!r} values; columns: {list(history.columns)}")
    first, last = float(history[column].iloc[0]), float(history[column].iloc[-1])
    if first == 0:
        raise ValueError(f"the first epoch's {column} is 0: no relative change")
    return (last - first) / abs(first)


def sgd_barely_moves(
    history: pd.DataFrame,
    name: str = "dncnn_sgd",
    tolerance: float = 0.05,
    column: str = "val_loss",
    reference: pd.DataFrame | None = None,
    reference_name: str = "dncnn_adam",
    quality: pd.DataFrame | None = None,
) -> str:
    """R §3.1: SGD at lr 1e-5 "has a poor performance": its loss barely moves.

    Holds when ``column`` changes by at most ``tolerance`` (relative) from the first to the last
    epoch. The default is the validation loss, measured after each epoch: the first epoch's
    *training* loss is a mean over the epoch, dominated by the untrained network's first batches,
    and drops even when training then stalls. With ``reference`` (e.g. Adam's history) its change is
    quoted beside; with ``quality`` (``Study.compare_denoisers``) the test MAE of ``name`` is quoted
    beside the noisy input's.
    """
    tolerance = _check_tolerance(tolerance)
    claim = f"SGD at learning rate 1e-5 barely trains: {column} changes by at most {tolerance:.0%} over the run"
    change = loss_change(history, column)
    first, last = float(history[column].iloc[0]), float(history[column].iloc[-1])
    measured = (
        f"{name} {column} {first:.4g} at epoch {int(history['epoch'].iloc[0])} → {last:.4g} at epoch "
        f"{int(history['epoch'].iloc[-1])} ({change:+.1%})"
    )
    if reference is not None:
        measured += f"; {reference_name} {loss_change(reference, column):+.1%} over its epochs"
    if quality is not None:
        ours, noisy = _mean_quality(quality, name), _mean_quality(quality, "none")
        measured += f"; mean test MAE of {name} {ours.mae:.2f} vs the noisy input's {noisy.mae:.2f}"
    if len(history) < 2:
        return _sentence(claim, measured + " (a single epoch: no change can be measured)", False)
    bad = _first_non_finite(history[["epoch", column]])
    if bad:
        return _sentence(claim, measured + f" ({name} diverged: {bad})", False)
    return _sentence(claim, measured, abs(change) <= tolerance)


# ----- 03: MSE versus MAE -----------------------------------------------------------------------


def mse_vs_mae(
    mae_history: pd.DataFrame,
    mse_history: pd.DataFrame,
    column: str = "val_mae",
    tolerance: float = 0.0,
    mae_name: str = "unet",
    mse_name: str = "unet_mse",
) -> str:
    """R §3.2 (Fig. 7): training with MSE gives a worse (validation) MAE than training with MAE.

    Compares ``column`` at each run's last epoch; holds when the MSE run's value is higher by more
    than ``tolerance`` (pixel values 0..255).
    """
    tolerance = _check_tolerance(tolerance)
    for label, history in ((mae_name, mae_history), (mse_name, mse_history)):
        if column not in history.columns:
            raise ValueError(f"{label} history has no {column!r} column; columns: {list(history.columns)}")
    mae_value, mse_value = float(mae_history[column].iloc[-1]), float(mse_history[column].iloc[-1])
    holds = mse_value - mae_value > tolerance
    measured = (
        f"{column} at the last epoch: {mse_name} (trained with MSE) {mse_value:.3f} vs "
        f"{mae_name} (trained with MAE) {mae_value:.3f}"
    )
    diverged = [
        f"{label} diverged ({_first_non_finite(history)})"
        for label, history in ((mse_name, mse_history), (mae_name, mae_history))
        if _first_non_finite(history)
    ]
    if diverged:
        holds = False
        measured += "; " + ", ".join(diverged) + ": no finite MAE to compare"
    return _sentence(f"the MSE-trained denoiser has a worse {column} than the MAE-trained one", measured, holds)


def _first_non_finite(history: pd.DataFrame) -> str:
    """'non-finite loss from epoch k' if a loss of the history is NaN or infinite, else ''."""
    columns = [c for c in history.columns if c != "epoch"]
    bad = ~np.isfinite(history[columns].to_numpy(dtype=float)).all(axis=1)
    if not bad.any():
        return ""
    return f"non-finite losses from epoch {int(history['epoch'].to_numpy()[bad.argmax()])}"


# ----- 04: descriptor variants -------------------------------------------------------------------


def descriptor_variants(
    table: pd.DataFrame, denoiser: str = "dncnn_adam", metric: str = "mean", tolerance: float = 0.01
) -> str:
    """R §4.1-4.2: the updated baseline is worse than the baseline; the deep baseline is no better.

    Holds when updated < baseline − ``tolerance`` ("clearly worse") and deep ≤ baseline + ``tolerance``.
    """
    tolerance = _check_tolerance(tolerance)
    _check_metric(table, metric)
    base, updated, deep = (_row(table, denoiser, d) for d in ("baseline", "updated", "deep"))
    updated_worse = base[metric] - updated[metric] > tolerance
    deep_no_better = deep[metric] - base[metric] <= tolerance
    parts = [
        _sentence(
            f"the updated baseline is worse than the baseline (by more than {tolerance:g} {metric} mAP)",
            f"{denoiser} + updated {_scores(updated, metric)} vs baseline {_scores(base, metric)}; "
            + spread_note([base, updated], [updated[metric] - base[metric]], metric),
            updated_worse,
        ),
        _sentence(
            f"the deep baseline is no better than the baseline (within {tolerance:g} {metric} mAP)",
            f"{denoiser} + deep {_scores(deep, metric)} vs baseline {_scores(base, metric)}; "
            + spread_note([base, deep], [deep[metric] - base[metric]], metric),
            deep_no_better,
        ),
    ]
    return "\n".join(parts)


# ----- 05: retraining on rotated patches ---------------------------------------------------------


def retraining(
    table: pd.DataFrame,
    denoisers: Sequence[str] = ("unet", "dncnn_adam"),
    descriptor: str = "retrained",
    metric: str = "mean",
    tolerance: float = 0.0,
) -> str:
    """R §4.3 and Table 2: fine-tuning the baseline on rotated patches does not help.

    Holds when, after every denoiser, ``descriptor`` ≤ baseline + ``tolerance`` on ``metric``.
    """
    tolerance = _check_tolerance(tolerance)
    _check_metric(table, metric)
    lines, holds, rows, gains = [], True, [], []
    for denoiser in denoisers:
        base, other = _row(table, denoiser, "baseline"), _row(table, denoiser, descriptor)
        gain = other[metric] - base[metric]
        holds &= gain <= tolerance
        rows += [base, other]
        gains.append(gain)
        lines.append(f"{denoiser}: {descriptor} {other[metric]:.3f} vs baseline {base[metric]:.3f} ({gain:+.3f})")
    claim = (
        f"the {descriptor} baseline does not beat the baseline after any denoiser "
        f"(gain at most {tolerance:g} {metric} mAP)"
    )
    return _sentence(claim, f"{metric} mAP " + "; ".join(lines) + "; " + spread_note(rows, gains, metric), holds)


# ----- 06: hard triplet loss ---------------------------------------------------------------------


def hard_loss(
    table: pd.DataFrame,
    denoiser: str = "dncnn_adam",
    variants: Sequence[str] = ("hard", "hard_retrained"),
    metric: str = "mean",
    tolerance: float = 0.0,
) -> str:
    """R §4.4-5: the hard triplet loss (Eq. 4) does not beat the baseline ("the baseline model is
    still the best performing one"; the report gives no mAP for it).

    Holds when every variant ≤ baseline + ``tolerance`` on ``metric``.
    """
    tolerance = _check_tolerance(tolerance)
    _check_metric(table, metric)
    base = _row(table, denoiser, "baseline")
    lines, holds, rows, gains = [], True, [base], []
    for name in variants:
        row = _row(table, denoiser, name)
        gain = row[metric] - base[metric]
        holds &= gain <= tolerance
        rows.append(row)
        gains.append(gain)
        lines.append(f"{name} {_scores(row, metric)} ({gain:+.3f})")
    lines.append(spread_note(rows, gains, metric))
    claim = f"the hard triplet loss does not beat the baseline descriptor (gain at most {tolerance:g} {metric} mAP)"
    measured = f"after {denoiser}: baseline {_scores(base, metric)}; " + "; ".join(lines)
    return _sentence(claim, measured, holds)


# ----- 07: the best pipeline ---------------------------------------------------------------------


def best_pipeline(
    table: pd.DataFrame,
    reference: tuple[str, str] = ("unet", "baseline"),
    pipelines: Iterable[tuple[str, str]] | None = None,
    metric: str = "mean",
    tolerance: float = 0.0,
) -> str:
    """R §5: "After many attempts, the baseline model is still the best performing one."

    The claim is judged over ``pipelines`` (default: every row whose denoiser is not the clean
    upper bound); holds when no pipeline beats ``reference`` by more than ``tolerance``.
    """
    tolerance = _check_tolerance(tolerance)
    _check_metric(table, metric)
    if pipelines is None:
        rows = table[table["denoiser"] != "clean"]
    else:
        rows = pd.DataFrame([_row(table, d, s) for d, s in pipelines])
    ref = _row(table, *reference)
    ranked = rows.sort_values(metric, ascending=False)
    best = ranked.iloc[0]
    margin = best[metric] - ref[metric]
    holds = margin <= tolerance
    ranking = ", ".join(f"{r.denoiser} + {r.descriptor} {r[metric]:.3f}" for _, r in ranked.iterrows())
    measured = (
        f"best {best.denoiser} + {best.descriptor} {_scores(best, metric)}; "
        f"{reference[0]} + {reference[1]} {_scores(ref, metric)} ({-margin:+.3f} to the best); "
        f"ranking by {metric} mAP: {ranking}; " + spread_note([best, ref], [margin], metric)
    )
    claim = (
        f"{reference[0]} + {reference[1]} is still the best of the {len(rows)} pipelines compared "
        f"(within {tolerance:g} {metric} mAP)"
    )
    return _sentence(claim, measured, holds)


# ----- 08: beyond the report ---------------------------------------------------------------------


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
    tolerance = _check_tolerance(tolerance)
    _check_metric(table, metric)
    candidates = [(d, s) for d, s in extensions if d not in set(exclude_denoisers)]
    if not candidates:
        raise ValueError(f"no extension pipeline left to compare after excluding {list(exclude_denoisers)}")
    rows = pd.DataFrame([_row(table, d, s) for d, s in candidates])
    best = rows.sort_values(metric, ascending=False).iloc[0]
    ref = _row(table, *reference)
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
    return _sentence(claim, measured, holds)


__all__ = [
    "best_pipeline",
    "beyond",
    "data_description",
    "denoising_order",
    "descriptor_variants",
    "dncnn_beats_unet",
    "hard_loss",
    "loss_change",
    "mse_vs_mae",
    "nearest_neighbour_accuracy",
    "retraining",
    "sgd_barely_moves",
    "spread_note",
    "sweep_crossovers",
    "task_winners",
    "verdict",
]


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
    for column in ("sigma", "denoiser", "descriptor", metric):
        if column not in sweep.columns:
            raise ValueError(f"the sweep table needs a {column!r} column; columns: {list(sweep.columns)}")

    def curve(pipeline: tuple[str, str]) -> pd.Series:
        part = sweep[(sweep.denoiser == pipeline[0]) & (sweep.descriptor == pipeline[1])]
        if part.empty:
            raise ValueError(f"pipeline {pipeline[0]} + {pipeline[1]} is not in the sweep")
        return part.set_index("sigma")[metric].sort_index()

    with_denoiser, without = curve(denoised), curve(noisy)
    pays = with_denoiser[with_denoiser > without]
    first = (
        f"denoising ({denoised[0]}) pays from σ = {pays.index.min():g} on "
        f"({with_denoiser[pays.index.min()]:.3f} vs {without[pays.index.min()]:.3f} {metric} mAP)"
        if not pays.empty
        else f"denoising ({denoised[0]}) never pays up to σ = {with_denoiser.index.max():g}"
    )
    learned = sweep[~sweep.descriptor.isin(["raw", "sift"])].groupby("sigma")[metric].max().sort_index()
    sift = curve(classical)
    lost = learned[learned <= sift.reindex(learned.index)]
    second = (
        f"the best learned pipeline falls to SIFT's level at σ = {lost.index.min():g} "
        f"({learned[lost.index.min()]:.3f} vs {sift[lost.index.min()]:.3f})"
        if not lost.empty
        else f"the best learned pipeline beats SIFT at every σ up to {learned.index.max():g} "
        f"(smallest lead {(learned - sift.reindex(learned.index)).min():+.3f} {metric} mAP)"
    )
    return f"{first}; {second}."


def nearest_neighbour_accuracy(first: np.ndarray, second: np.ndarray) -> float:
    """Share of rows of ``first`` whose nearest row of ``second`` (L2) is the row with the same index.

    Shape: (N, D), (N, D) -> float in [0, 1]
    """
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    if first.ndim != 2 or first.shape != second.shape or len(first) == 0:
        raise ValueError(f"expected two (N, D) arrays of the same shape, got {first.shape} and {second.shape}")
    distances = (first**2).sum(1)[:, None] - 2 * first @ second.T + (second**2).sum(1)[None]
    return float(np.mean(distances.argmin(axis=1) == np.arange(len(first))))


def ranking(table: pd.DataFrame, metric: str = "mean") -> str:
    """The pipelines of a table ranked by ``metric``, best first, with the gaps beside the seed spread."""
    _check_metric(table, metric)
    if len(table) < 2:
        raise ValueError(f"need at least two pipelines to rank, got {len(table)}")
    ranked = table.sort_values(metric, ascending=False)
    rows = [row for _, row in ranked.iterrows()]
    order = " > ".join(f"{row.denoiser} + {row.descriptor} {row[metric]:.3f}" for row in rows)
    gaps = [first[metric] - second[metric] for first, second in zip(rows, rows[1:])]
    return (
        f"{metric} mAP, best first: {order}; gaps {', '.join(f'{g:.3f}' for g in gaps)}; "
        + spread_note(rows, gaps, metric)
        + "."
    )


def sweep_leaders(sweep: pd.DataFrame, metric: str = "mean") -> str:
    """The best pipeline at each σ of a noise sweep, with its lead over the runner-up."""
    for column in ("sigma", "denoiser", "descriptor", metric):
        if column not in sweep.columns:
            raise ValueError(f"the sweep table needs a {column!r} column; columns: {list(sweep.columns)}")
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

    def curve(which: tuple[str, str]) -> pd.DataFrame:
        part = sweep[(sweep.denoiser == which[0]) & (sweep.descriptor == which[1])]
        if part.empty:
            raise ValueError(f"pipeline {which[0]} + {which[1]} is not in the sweep")
        return part.set_index("sigma").sort_index()

    mine, theirs = curve(pipeline), curve(other)
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
