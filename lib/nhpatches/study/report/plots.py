"""The study's figures: patch grids, training triplets, loss curves, HPatches bars and the noise sweep.

Every function returns a matplotlib Figure (saved with :func:`.files.save_figure`); the history
helpers reshape per-epoch DataFrames so that curves of different runs compare.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nhpatches import evaluation
from nhpatches.core import config
from nhpatches.study.report.tables import pipeline_label


def plot_patch_grid(rows: Mapping[str, np.ndarray], columns: int = 8) -> Figure:
    """One row of patches per entry (e.g. noisy / denoised / clean), same patches in every row.

    Shape: each value (K, P, P) uint8, K >= columns.
    """
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.2 * columns, 1.3 * len(rows)), squeeze=False)
    for r, (label, patches) in enumerate(rows.items()):
        for c in range(columns):
            axes[r, c].imshow(patches[c], cmap="gray", vmin=0, vmax=255)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def plot_loss_curves(histories: Mapping[str, pd.DataFrame], metric: str = "loss", title: str | None = None) -> Figure:
    """Training (solid) and validation (dashed) curves of several runs against epochs."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, (label, history) in enumerate(histories.items()):
        color = f"C{i}"
        ax.plot(history["epoch"], history[metric], color=color, marker="o", label=f"{label} train")
        if f"val_{metric}" in history:
            ax.plot(
                history["epoch"],
                history[f"val_{metric}"],
                color=color,
                ls="--",
                marker="s",
                label=f"{label} validation",
            )
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def descriptor_loss_part(history: pd.DataFrame) -> pd.DataFrame:
    """A joint run's history with its descriptor-loss columns as ``loss`` / ``val_loss``, for comparable curves.

    A joint run's total loss also holds the λ·MAE term; other histories are returned unchanged.
    """
    if "descriptors_loss" not in history.columns:
        return history
    parts = {"descriptors_loss": "loss", "val_descriptors_loss": "val_loss"}
    return history.drop(columns=[c for c in parts.values() if c in history.columns]).rename(columns=parts)


def mark_epoch(fig: Figure, epoch: int, label: str) -> Figure:
    """Draw a dotted vertical line at ``epoch`` on every axis of a loss-curve figure (e.g. the kept epoch)."""
    for ax in fig.axes:
        ax.axvline(epoch, color="k", ls=":", lw=1.2, label=label)
        ax.legend(fontsize=8)
    return fig


def continued_history(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """``second`` with its epochs shifted to continue after ``first`` (fine-tuning after training)."""
    return second.assign(epoch=second["epoch"] + int(first["epoch"].max()))


def _as_patches(array: np.ndarray) -> np.ndarray:
    """Model-input patches (B, P, P, 1) float or (B, P, P) to (B, P, P) uint8 (clipped to 0..255)."""
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise ValueError(f"patches must have shape (B, P, P) or (B, P, P, 1), got {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return array


def plot_triplet(anchor: np.ndarray, positive: np.ndarray, negative: np.ndarray, columns: int = 6) -> Figure:
    """Training triplets as a picture: rows anchor / positive / negative, one triplet per column.

    Shape: each (B, P, P, 1) float32 0..255 (a TripletBatches item) or (B, P, P) uint8; B >= 1.
    Shows min(columns, B) triplets.
    """
    rows = {"anchor": _as_patches(anchor), "positive": _as_patches(positive), "negative": _as_patches(negative)}
    shapes = {patches.shape for patches in rows.values()}
    if len(shapes) != 1:
        raise ValueError(f"anchor, positive and negative must have the same shape, got {sorted(shapes)}")
    count = min(int(columns), next(iter(shapes))[0])
    if count < 1:
        raise ValueError(f"need at least one triplet and columns >= 1, got {shapes} and columns={columns}")
    return plot_patch_grid(rows, columns=count)


def _level_scores(results: Sequence[Mapping]) -> pd.DataFrame:
    """Tidy per-level mAPs of one seed's results: pipeline, task, noise_level, mAP."""
    frames = []
    for result in results:
        tidy = evaluation.results_to_frame(result)
        tidy["pipeline"] = pipeline_label(result["pipeline"]["denoiser"], result["pipeline"]["descriptor"])
        frames.append(tidy[(tidy.subset == "all") & (tidy.noise_level != "all")])
    return pd.concat(frames, ignore_index=True)


def plot_hpatches_bars(results: Sequence[Mapping] | Sequence[Sequence[Mapping]]) -> Figure:
    """HPatches-paper style: one panel per task, a bar group per pipeline, a bar per noise level (seaborn).

    ``results`` is one seed's list of evaluation results, or a list of them per seed (the same
    pipelines): bars are then the mean over the seeds with error bars of one std.
    """
    import seaborn as sns

    if results and isinstance(results[0], Mapping):  # one seed's results
        per_seed = [cast(Sequence[Mapping[str, Any]], results)]
    else:
        per_seed = list(cast(Sequence[Sequence[Mapping[str, Any]]], results))
    tidy = pd.concat([_level_scores(r).assign(seed=i) for i, r in enumerate(per_seed)], ignore_index=True)
    tidy["mAP"] = tidy["mAP"] * 100
    tidy["noise"] = tidy["noise_level"].str[0].str.upper()
    palette = {"E": "#4daf4a", "H": "#ff7f00", "T": "#e41a1c"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.45 * len(per_seed[0]) + 1.8), sharey=True)
    for ax, task in zip(axes, config.TASKS, strict=True):
        sns.barplot(
            data=tidy[tidy.task == task],
            y="pipeline",
            x="mAP",
            hue="noise",
            hue_order=list(palette),
            palette=palette,
            errorbar="sd" if len(per_seed) > 1 else None,
            err_kws={"linewidth": 0.8},
            capsize=0.15,
            ax=ax,
            legend=ax is axes[0],
        )
        title = f"{task} mAP [%]" + (f", mean ± std of {len(per_seed)} seeds" if len(per_seed) > 1 else "")
        ax.set(title=title, xlabel="", ylabel="")
        ax.grid(axis="x", alpha=0.3)
    axes[0].legend(title="noise", fontsize=8)
    fig.tight_layout()
    return fig


def plot_noise_sweep(sweep: pd.DataFrame, reference_sigmas: Mapping[str, float] | None = None) -> Figure:
    """Task mAPs against the noise std σ, one panel per task, one line per pipeline (seaborn).

    ``sweep`` has columns sigma, denoiser, descriptor and the task mAPs (Study.noise_sweep, or the
    real-sample check); rows repeated per seed are drawn as their mean with a ±1 std band.
    ``reference_sigmas`` marks σ values with vertical lines (e.g. the easy / hard / tough levels).
    """
    import seaborn as sns

    frame = sweep.assign(pipeline=[pipeline_label(d, s) for d, s in zip(sweep.denoiser, sweep.descriptor, strict=True)])
    long = frame.melt(id_vars=["sigma", "pipeline"], value_vars=list(config.TASKS), var_name="task", value_name="mAP")
    long["mAP"] = long["mAP"] * 100
    classical = {label: label.split(" + ")[1] in ("raw", "sift") for label in frame.pipeline.unique()}
    dashes = {label: (4, 2) if is_classical else "" for label, is_classical in classical.items()}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharex=True)
    for ax, task in zip(axes, config.TASKS, strict=True):
        sns.lineplot(
            data=long[long.task == task],
            x="sigma",
            y="mAP",
            hue="pipeline",
            style="pipeline",
            dashes=dashes,
            markers=True,
            markersize=5,
            errorbar="sd",
            ax=ax,
            legend=ax is axes[0],
        )
        for name, sigma in (reference_sigmas or {}).items():
            ax.axvline(sigma, color="0.7", lw=0.8, zorder=0)
            ax.annotate(
                name,
                (sigma, 0.02),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                color="0.45",
                ha="right",
                va="bottom",
                rotation=90,
            )
        ax.set(title=f"{task} mAP [%]", xlabel="noise std σ (0..255)", ylabel="")
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    axes[0].get_legend().remove()
    fig.legend(handles, names, loc="lower center", ncol=min(4, len(names)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 * ((len(names) + 3) // 4), 1, 1))
    return fig
