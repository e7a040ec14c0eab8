"""From patches to photographs: the figures of notebook 11 and of ``hpatches-match-bench``.

Keypoint measurement regions drawn on a photograph, match drawings, and the image-matching
benchmark's seaborn figures: MMA against the threshold (D2-Net) and MMA@3 / homography accuracy
against the noise sigma. A summary here is flat, as :func:`nhpatches.study.photographs.summary_table`
returns it.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nhpatches.data import regions
from nhpatches.evaluation import image_matching as bench
from nhpatches.study.photographs import MEASURES


def region_outlines(keypoints: np.ndarray, magnification: float) -> np.ndarray:
    """Each keypoint's measurement region as :func:`nhpatches.extract_patches` cuts it: a closed square.

    The square has half-width ``magnification`` x the keypoint's sigma and turns with its angle
    (:func:`nhpatches.data.regions.keypoint_frames`); the sixth point is the middle of the side the
    patch's x axis points to. Shape: (N, 4) -> (N, 6, 2) image (x, y)
    """
    corners = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, 0.0]])
    return regions.frame_points(regions.keypoint_frames(keypoints, magnification), corners)


def plot_regions(image: np.ndarray, keypoints: np.ndarray, magnification: float, title: str = "") -> Figure:
    """A photograph with the numbered regions of some keypoints and a line from each centre to its x axis.

    Shape: image (H, W) uint8, keypoints (n, 4) -> Figure
    """
    outlines = region_outlines(keypoints, magnification)
    height, width = image.shape[:2]
    fig, axis = plt.subplots(figsize=(7.5, 7.5 * height / width))
    axis.imshow(image, cmap="gray", vmin=0, vmax=255)
    colours = sns.color_palette("husl", len(outlines))
    for number, (outline, keypoint, colour) in enumerate(zip(outlines, keypoints, colours, strict=False), start=1):
        axis.plot(outline[:5, 0], outline[:5, 1], color=colour, linewidth=1.6)
        axis.plot([keypoint[0], outline[5, 0]], [keypoint[1], outline[5, 1]], color=colour, linewidth=1.2)
        axis.text(
            outline[0, 0],
            outline[0, 1],
            str(number),
            color=colour,
            fontsize=9,
            fontweight="bold",
            ha="right",
            va="bottom",
        )
    axis.set(xlim=(0, width), ylim=(height, 0), title=title)
    axis.set_axis_off()
    fig.tight_layout()
    return fig


def plot_drawings(drawings: Mapping[str, np.ndarray]) -> Figure:
    """Match drawings (BGR, as ``hpatches-match`` draws them) one under the other, each titled.

    Shape: each (H, W, 3) uint8 BGR -> Figure
    """
    first = next(iter(drawings.values()))
    width = 12.0
    fig, axes = plt.subplots(
        len(drawings), 1, figsize=(width, len(drawings) * width * first.shape[0] / first.shape[1] + 0.4), squeeze=False
    )
    for axis, (title, drawing) in zip(axes[:, 0], drawings.items(), strict=False):
        axis.imshow(drawing[:, :, ::-1])
        axis.set_title(title, fontsize=10)
        axis.set_axis_off()
    fig.tight_layout()
    return fig


def plot_mma_curves(records: pd.DataFrame, title: str = "Mean matching accuracy (D2-Net protocol)") -> Figure:
    """MMA against the threshold (1..10 px), one panel per sigma, one line per method."""
    grid = sns.relplot(
        data=bench.mma_curves(records),
        x="threshold",
        y="mma",
        hue="method",
        col="sigma",
        kind="line",
        marker="o",
        height=3.2,
        aspect=0.9,
        facet_kws={"ylim": (0, 1)},
    )
    grid.set_titles("σ = {col_name:g}")
    grid.set_axis_labels("threshold (px)", "MMA")
    grid.figure.suptitle(title, y=1.03)
    return grid.figure


def plot_against_sigma(summary: pd.DataFrame, column: str, axis: Axes | None = None, title: str = "") -> Figure:
    """One measure of a flat summary (e.g. ``mma_3``, ``h_acc_3``) against sigma, one line per method."""
    if column not in summary.columns:
        raise ValueError(f"column {column!r} is not in the summary; columns: {list(summary.columns)}")
    if axis is None:
        _, axis = plt.subplots(figsize=(5.5, 3.8))
    fig = axis.get_figure(root=True)
    if fig is None:
        raise ValueError("axis: expected axes placed on a figure")
    sns.lineplot(data=summary, x="sigma", y=column, hue="method", style="method", markers=True, ax=axis)
    axis.set(xlabel="noise σ (0..255)", ylabel=MEASURES.get(column, column), ylim=(0, 1), title=title)
    axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_sigma_panels(summary: pd.DataFrame, title: str = "") -> Figure:
    """MMA@3 and homography accuracy at 3 px against sigma, side by side."""
    fig, axes = plt.subplots(1, len(MEASURES), figsize=(11, 3.9))
    for axis, column in zip(axes, MEASURES, strict=False):
        plot_against_sigma(summary, column, axis)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
