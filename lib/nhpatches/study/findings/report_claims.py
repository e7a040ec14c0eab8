"""The report's claims (notebooks 00-07), each checked against this run's numbers.

Every function takes the tables (or training histories) a notebook has just computed and returns
one paragraph that names the claim (R §x: the report's section), states the measured numbers and
ends with "holds" or "does not hold" on this run. ``tolerance`` is the difference (in the compared
quantity: mAP, dB, pixel MAE or a relative loss change) that still counts as a tie: it makes "no
better" claims lenient and "better" / "worse" claims demand a margin.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from nhpatches.study.findings.claims import (
    check_metric,
    check_tolerance,
    claim_sentence,
    first_non_finite,
    pipeline_row,
    scores_text,
    spread_note,
)

#: The report's data description (R §1.1).
REPORT_SEQUENCES = {"total": 116, "illumination": 57, "viewpoint": 59}
REPORT_NOISE_LEVELS: tuple[str, ...] = ("easy", "hard", "tough")


# ----- 00: data --------------------------------------------------------------------------------


def data_description(sequences: pd.DataFrame, noise_levels: Iterable[str] = REPORT_NOISE_LEVELS) -> str:
    """R §1.1: 116 sequences, 57 illumination (i_) and 59 viewpoint (v_), three noise levels.

    ``sequences`` is ``views.dataset_summary(study)`` (columns sequence, kind); ``noise_levels`` the
    levels of this dataset (e.g. ``views.noise_summary(study).noise_level``).
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
    return claim_sentence(claim, measured, holds)


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
    tolerance = check_tolerance(tolerance)
    check_metric(table, metric)
    noisy, denoised, clean = (pipeline_row(table, d, descriptor) for d in ("none", denoiser, "clean"))
    holds = (denoised[metric] - noisy[metric] > tolerance) and (clean[metric] - denoised[metric] > tolerance)
    claim = (
        f"denoising helps the {descriptor} descriptor and clean patches bound it: "
        f"noisy < {denoiser} < clean (by more than {tolerance:g})"
    )
    measured = (
        f"noisy {scores_text(noisy, metric)}; {denoiser} {scores_text(denoised, metric)}; "
        f"clean {scores_text(clean, metric)}; "
        + spread_note(
            [noisy, denoised, clean], [denoised[metric] - noisy[metric], clean[metric] - denoised[metric]], metric
        )
    )
    return claim_sentence(claim, measured, holds)


# ----- 02: DnCNN, Adam versus SGD ---------------------------------------------------------------


def mean_quality(quality: pd.DataFrame, denoiser: str) -> pd.Series:
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

    ``quality`` is ``views.compare_denoisers(study, ...)``; the levels are averaged. Holds when DnCNN's PSNR is
    higher by more than ``tolerance`` dB and its MAE lower by more than ``tolerance``.
    """
    tolerance = check_tolerance(tolerance)
    ours, theirs = mean_quality(quality, dncnn), mean_quality(quality, unet)
    noisy = mean_quality(quality, "none") if (quality["denoiser"] == "none").any() else None
    holds = (ours.psnr_db - theirs.psnr_db > tolerance) and (theirs.mae - ours.mae > tolerance)
    measured = (
        f"mean test PSNR {dncnn} {ours.psnr_db:.2f} dB vs {unet} {theirs.psnr_db:.2f} dB, "
        f"MAE {ours.mae:.2f} vs {theirs.mae:.2f}"
    )
    if noisy is not None:
        measured += f" (noisy input: {noisy.psnr_db:.2f} dB, MAE {noisy.mae:.2f})"
    return claim_sentence(f"{dncnn} denoises better than {unet} (higher PSNR and lower MAE)", measured, holds)


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
    quoted beside; with ``quality`` (``views.compare_denoisers``) the test MAE of ``name`` is quoted
    beside the noisy input's.
    """
    tolerance = check_tolerance(tolerance)
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
        ours, noisy = mean_quality(quality, name), mean_quality(quality, "none")
        measured += f"; mean test MAE of {name} {ours.mae:.2f} vs the noisy input's {noisy.mae:.2f}"
    if len(history) < 2:
        return claim_sentence(claim, measured + " (a single epoch: no change can be measured)", False)
    bad = first_non_finite(history[["epoch", column]])
    if bad:
        return claim_sentence(claim, measured + f" ({name} diverged: {bad})", False)
    return claim_sentence(claim, measured, abs(change) <= tolerance)


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
    tolerance = check_tolerance(tolerance)
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
        f"{label} diverged ({first_non_finite(history)})"
        for label, history in ((mse_name, mse_history), (mae_name, mae_history))
        if first_non_finite(history)
    ]
    if diverged:
        holds = False
        measured += "; " + ", ".join(diverged) + ": no finite MAE to compare"
    return claim_sentence(f"the MSE-trained denoiser has a worse {column} than the MAE-trained one", measured, holds)


# ----- 04: descriptor variants -------------------------------------------------------------------


def descriptor_variants(
    table: pd.DataFrame, denoiser: str = "dncnn_adam", metric: str = "mean", tolerance: float = 0.01
) -> str:
    """R §4.1-4.2: the updated baseline is worse than the baseline; the deep baseline is no better.

    Holds when updated < baseline − ``tolerance`` ("clearly worse") and deep ≤ baseline + ``tolerance``.
    """
    tolerance = check_tolerance(tolerance)
    check_metric(table, metric)
    base, updated, deep = (pipeline_row(table, denoiser, d) for d in ("baseline", "updated", "deep"))
    updated_worse = base[metric] - updated[metric] > tolerance
    deep_no_better = deep[metric] - base[metric] <= tolerance
    parts = [
        claim_sentence(
            f"the updated baseline is worse than the baseline (by more than {tolerance:g} {metric} mAP)",
            f"{denoiser} + updated {scores_text(updated, metric)} vs baseline {scores_text(base, metric)}; "
            + spread_note([base, updated], [updated[metric] - base[metric]], metric),
            updated_worse,
        ),
        claim_sentence(
            f"the deep baseline is no better than the baseline (within {tolerance:g} {metric} mAP)",
            f"{denoiser} + deep {scores_text(deep, metric)} vs baseline {scores_text(base, metric)}; "
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
    tolerance = check_tolerance(tolerance)
    check_metric(table, metric)
    lines, holds, rows, gains = [], True, [], []
    for denoiser in denoisers:
        base, other = pipeline_row(table, denoiser, "baseline"), pipeline_row(table, denoiser, descriptor)
        gain = other[metric] - base[metric]
        holds &= gain <= tolerance
        rows += [base, other]
        gains.append(gain)
        lines.append(f"{denoiser}: {descriptor} {other[metric]:.3f} vs baseline {base[metric]:.3f} ({gain:+.3f})")
    claim = (
        f"the {descriptor} baseline does not beat the baseline after any denoiser "
        f"(gain at most {tolerance:g} {metric} mAP)"
    )
    return claim_sentence(claim, f"{metric} mAP " + "; ".join(lines) + "; " + spread_note(rows, gains, metric), holds)


# ----- 06: hard triplet loss ---------------------------------------------------------------------


def hard_loss(
    table: pd.DataFrame,
    denoiser: str = "dncnn_adam",
    variants: Sequence[str] = ("hard", "hard_retrained"),
    metric: str = "mean",
    tolerance: float = 0.0,
) -> str:
    """R §4.4-5: the hard triplet loss (Eq. 4) does not beat the baseline.

    The report: "the baseline model is still the best performing one"; it gives no mAP for it.
    Holds when every variant ≤ baseline + ``tolerance`` on ``metric``.
    """
    tolerance = check_tolerance(tolerance)
    check_metric(table, metric)
    base = pipeline_row(table, denoiser, "baseline")
    lines, holds, rows, gains = [], True, [base], []
    for name in variants:
        row = pipeline_row(table, denoiser, name)
        gain = row[metric] - base[metric]
        holds &= gain <= tolerance
        rows.append(row)
        gains.append(gain)
        lines.append(f"{name} {scores_text(row, metric)} ({gain:+.3f})")
    lines.append(spread_note(rows, gains, metric))
    claim = f"the hard triplet loss does not beat the baseline descriptor (gain at most {tolerance:g} {metric} mAP)"
    measured = f"after {denoiser}: baseline {scores_text(base, metric)}; " + "; ".join(lines)
    return claim_sentence(claim, measured, holds)


# ----- 07: the best pipeline ---------------------------------------------------------------------


def best_pipeline(
    table: pd.DataFrame,
    reference: tuple[str, str] = ("unet", "baseline"),
    pipelines: Iterable[tuple[str, str]] | None = None,
    metric: str = "mean",
    tolerance: float = 0.0,
) -> str:
    """R §5: "After many attempts, the baseline model is still the best performing one".

    The claim is judged over ``pipelines`` (default: every row whose denoiser is not the clean
    upper bound); holds when no pipeline beats ``reference`` by more than ``tolerance``.
    """
    tolerance = check_tolerance(tolerance)
    check_metric(table, metric)
    if pipelines is None:
        rows = table[table["denoiser"] != "clean"]
    else:
        rows = pd.DataFrame([pipeline_row(table, d, s) for d, s in pipelines])
    ref = pipeline_row(table, *reference)
    ranked = rows.sort_values(metric, ascending=False)
    best = ranked.iloc[0]
    margin = best[metric] - ref[metric]
    holds = margin <= tolerance
    ranking = ", ".join(f"{r.denoiser} + {r.descriptor} {r[metric]:.3f}" for _, r in ranked.iterrows())
    measured = (
        f"best {best.denoiser} + {best.descriptor} {scores_text(best, metric)}; "
        f"{reference[0]} + {reference[1]} {scores_text(ref, metric)} ({-margin:+.3f} to the best); "
        f"ranking by {metric} mAP: {ranking}; " + spread_note([best, ref], [margin], metric)
    )
    claim = (
        f"{reference[0]} + {reference[1]} is still the best of the {len(rows)} pipelines compared "
        f"(within {tolerance:g} {metric} mAP)"
    )
    return claim_sentence(claim, measured, holds)
