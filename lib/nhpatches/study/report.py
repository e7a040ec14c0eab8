"""Figures and tables of the study: patch grids, loss curves, Table 1 (epochs) and Table 2 (mAP).

Every figure and table a notebook shows is also written under ``figures/<profile>/``
(PNG at a fixed dpi; CSV + Markdown), atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nhpatches import evaluation
from nhpatches.core import config
from nhpatches.core.cache import atomic_path

if TYPE_CHECKING:  # annotations only: the module itself loads no Keras backend
    import keras

#: Figure resolution of saved PNGs.
DPI = 150

#: Table 2 of the report (mAP, split a, real N-HPatches noisy test patches). Quoted, not measured here.
REPORT_TABLE2 = pd.DataFrame(
    [
        ("unet", "baseline", 0.841989, 0.260636, 0.563411),
        ("dncnn_adam", "baseline", 0.831896, 0.257823, 0.546754),
        ("dncnn_adam", "updated", 0.76265, 0.185319, 0.481561),
        ("dncnn_adam", "deep", 0.837206, 0.250349, 0.542044),
        ("unet", "retrained", 0.816596, 0.240827, 0.544785),
        ("dncnn_adam", "retrained", 0.812047, 0.243429, 0.535071),
    ],
    columns=["denoiser", "descriptor", "verification", "matching", "retrieval"],
)


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
    """A joint run's history with its descriptor-loss columns as ``loss`` / ``val_loss`` (its total
    loss also holds the λ·MAE term); other histories unchanged. For comparable loss curves."""
    if "descriptors_loss" not in history.columns:
        return history
    parts = {"descriptors_loss": "loss", "val_descriptors_loss": "val_loss"}
    return history.drop(columns=[c for c in parts.values() if c in history.columns]).rename(columns=parts)


def pipeline_label(denoiser: str, descriptor: str) -> str:
    """Readable name of a pipeline, e.g. 'unet + baseline'."""
    return f"{denoiser} + {descriptor}"


def task_files_label(provenance: Mapping) -> str:
    """One line saying which task files produced a number: source, seeds and counts."""
    counts, source = provenance.get("counts", {}), str(provenance.get("source", "unknown task files"))
    if source.startswith("official"):
        origin = f"official retrieval lists, verification recipe V seed {provenance.get('verification_seed')}"
    elif source.startswith("generated"):
        origin = (
            f"generated, recipe V seed {provenance.get('verification_seed')}, "
            f"recipe R seed {provenance.get('retrieval_seed')}"
        )
    else:
        origin = f"{source} at {provenance.get('path', '?')}"
    return (
        f"{origin}; {counts.get('pos', '?')} pairs, {counts.get('queries', '?')} queries, "
        f"{counts.get('distractors', '?')} distractors"
    )


def table_mean_map(results: Sequence[Mapping]) -> pd.DataFrame:
    """Task mAPs of several evaluated pipelines: one row each, with the task files used."""
    rows = []
    for result in results:
        pipeline, summary = result["pipeline"], result["summary"]
        rows.append(
            {
                "denoiser": pipeline["denoiser"],
                "descriptor": pipeline["descriptor"],
                "verification": summary["verification_mAP"],
                "matching": summary["matching_mAP"],
                "retrieval": summary["retrieval_mAP"],
                "mean": summary["mean_mAP"],
                "task_files": task_files_label(result.get("tasks", {})),
            }
        )
    return pd.DataFrame(rows)


def table2(results: Sequence[Mapping]) -> pd.DataFrame:
    """Table 2: measured task mAPs beside the report's numbers for the same pipelines."""
    measured = table_mean_map(results)
    report = REPORT_TABLE2.rename(columns={t: f"report {t}" for t in config.TASKS})
    merged = measured.merge(report, on=["denoiser", "descriptor"], how="left")
    return merged[[c for c in merged.columns if c != "task_files"] + ["task_files"]]


def table2_breakdown(results: Sequence[Mapping]) -> pd.DataFrame:
    """Per task: mAP per noise level (easy/hard/tough) and per subset (i_/v_), one row per pipeline."""
    rows = []
    for result in results:
        tidy = evaluation.results_to_frame(result)
        row = {
            "pipeline": pipeline_label(result["pipeline"]["denoiser"], result["pipeline"]["descriptor"]),
            "task_files": task_files_label(result.get("tasks", {})),
        }
        for record in tidy.itertuples(index=False):
            if record.subset == "all" and record.noise_level != "all":
                row[f"{record.task[:5]} {record.noise_level}"] = record.mAP
            elif record.subset != "all" and record.noise_level == "all":
                row[f"{record.task[:5]} {record.subset}"] = record.mAP
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame[[c for c in frame.columns if c != "task_files"] + ["task_files"]]


#: Columns a seed summary averages (and gives the std of).
SCORE_COLUMNS: tuple[str, ...] = (*config.TASKS, "mean")


def seed_summary(
    tables: Sequence[pd.DataFrame], seeds: Sequence[int], keys: Sequence[str] = ("denoiser", "descriptor")
) -> pd.DataFrame:
    """Per-seed tables (same rows) -> one table: score columns averaged over the seeds, a
    ``<score> std`` column for each (sample std, ddof=1; NaN with one seed) and ``seeds``.

    Other columns are taken from the first seed's table.
    """
    if len(tables) != len(seeds) or not tables:
        raise ValueError(f"need one table per seed, got {len(tables)} tables for seeds {list(seeds)}")
    keys = list(keys)
    order = [tuple(row) for row in tables[0][keys].itertuples(index=False)]
    for seed, table in zip(seeds, tables):
        if [tuple(row) for row in table[keys].itertuples(index=False)] != order:
            raise ValueError(f"the table of seed {seed} does not have the same pipelines as the first seed's")
    scores = [c for c in SCORE_COLUMNS if c in tables[0].columns]
    stacked = np.stack([table[scores].to_numpy(dtype=float) for table in tables])  # (seeds, rows, scores)
    out = tables[0].copy()
    out[scores] = stacked.mean(axis=0)
    spread = stacked.std(axis=0, ddof=1) if len(tables) > 1 else np.full(stacked.shape[1:], np.nan)
    position = out.columns.get_loc(scores[-1]) + 1
    for i, column in enumerate(scores):
        out.insert(position + i, f"{column} std", spread[:, i])
    out.insert(position + len(scores), "seeds", ",".join(str(s) for s in seeds))
    return out


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

    per_seed = [results] if results and isinstance(results[0], Mapping) else list(results)
    tidy = pd.concat([_level_scores(r).assign(seed=i) for i, r in enumerate(per_seed)], ignore_index=True)
    tidy["mAP"] = tidy["mAP"] * 100
    tidy["noise"] = tidy["noise_level"].str[0].str.upper()
    palette = {"E": "#4daf4a", "H": "#ff7f00", "T": "#e41a1c"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.45 * len(per_seed[0]) + 1.8), sharey=True)
    for ax, task in zip(axes, config.TASKS):
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
    """mAP against the noise std σ, one panel per task, one line per pipeline (seaborn).

    ``sweep`` has columns sigma, denoiser, descriptor and the task mAPs (Study.noise_sweep, or the
    real-sample check); rows repeated per seed are drawn as their mean with a ±1 std band.
    ``reference_sigmas`` marks σ values with vertical lines (e.g. the easy / hard / tough levels).
    """
    import seaborn as sns

    frame = sweep.assign(pipeline=[pipeline_label(d, s) for d, s in zip(sweep.denoiser, sweep.descriptor)])
    long = frame.melt(id_vars=["sigma", "pipeline"], value_vars=list(config.TASKS), var_name="task", value_name="mAP")
    long["mAP"] = long["mAP"] * 100
    classical = {label: label.split(" + ")[1] in ("raw", "sift") for label in frame.pipeline.unique()}
    dashes = {label: (4, 2) if is_classical else "" for label, is_classical in classical.items()}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharex=True)
    for ax, task in zip(axes, config.TASKS):
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


#: Table 1 of the report: (denoiser epochs, descriptor epochs) of each Table 2 pipeline.
REPORT_TABLE1 = {
    ("unet", "baseline"): (40, 40),
    ("dncnn_adam", "baseline"): (5, 40),
    ("dncnn_adam", "updated"): (5, 40),
    ("dncnn_adam", "deep"): (5, 40),
    ("unet", "retrained"): (40, 13),
    ("dncnn_adam", "retrained"): (5, 13),
}


def table1_pipelines(rows: Sequence[Mapping]) -> pd.DataFrame:
    """Table 1: per pipeline, the epochs used (denoiser: the kept epoch) beside the report's, and costs.

    Each row: denoiser, descriptor, denoiser_metrics (None for 'none'/'clean'), descriptor_metrics.
    """
    out = []
    for row in rows:
        den, desc = row["denoiser_metrics"], row["descriptor_metrics"]
        reported = REPORT_TABLE1.get((row["denoiser"], row["descriptor"]), (None, None))
        out.append(
            {
                "denoiser": row["denoiser"],
                "descriptor": row["descriptor"],
                "denoiser epochs": None if den is None else den.get("kept_epoch", den["epochs"]),
                "descriptor epochs": desc["epochs"],
                "report denoiser epochs": reported[0],
                "report descriptor epochs": reported[1],
                "descriptor trained on": desc.get("source"),
                "fine-tuned from": desc.get("init_from") or "",
                "denoiser seconds": None if den is None else den["train_seconds"],
                "descriptor seconds": desc["train_seconds"],
            }
        )
    return pd.DataFrame(out)


def table1_epochs(runs: Mapping[str, Mapping]) -> pd.DataFrame:
    """Table 1: epochs and training cost of each model, from its run metrics (name -> metrics.json)."""
    rows = []
    for name, metrics in runs.items():
        final = metrics["final"]
        rows.append(
            {
                "model": name,
                "epochs": metrics["epochs"],
                "patches_fed": metrics["patches_fed"],
                "train_seconds": metrics["train_seconds"],
                "patches_per_second": metrics["patches_per_second"],
                "final_loss": final.get("loss"),
                "final_val_loss": final.get("val_loss"),
                "parameters": metrics["parameters"],
            }
        )
    return pd.DataFrame(rows)


# ----- views of the networks and the training data (notebooks 01-08) -------------------------


def _pair(value: object) -> str:
    """'3x3' for (3, 3), '2' for 2, '' for None."""
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value)
    return str(value)


def _initializer_name(initializer: object) -> str:
    """Class name of a Keras initializer, with the gain of an orthogonal one."""
    if initializer is None:
        return ""
    name = type(initializer).__name__
    gain = getattr(initializer, "gain", None)
    return f"{name}(gain={gain:g})" if gain is not None else name


def _output_shape(layer: object) -> str:
    """The layer's output shape without the batch axis, e.g. '(32, 32, 16)'."""
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return ""
    return str(tuple(shape[1:]))


def _layer_details(layer: object) -> str:
    """What else defines a layer: pool or upsampling size, dropout rate, BN settings, scale."""
    import keras  # imported here: the rest of this module does not need a backend

    if isinstance(layer, keras.layers.Dropout):
        return f"rate {layer.rate:g}"
    if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        return f"pool {_pair(layer.pool_size)}"
    if isinstance(layer, keras.layers.UpSampling2D):
        return f"size {_pair(layer.size)}"
    if isinstance(layer, keras.layers.BatchNormalization):
        affine = "affine" if (layer.center or layer.scale) else "affine-free"
        return f"{affine}, momentum {layer.momentum:g}"
    if isinstance(layer, keras.layers.Rescaling):
        return f"x {float(layer.scale):.4g}"
    if isinstance(layer, keras.layers.Conv2D):
        return f"padding {layer.padding}"
    return ""


def layer_table(model: keras.Model) -> pd.DataFrame:
    """One row per layer of a Keras model: what the report's schematics (R Fig. 1, 3, 4) show.

    Columns: name, type, output shape (no batch axis), filters, kernel, strides, activation,
    initializer, bias, parameters and details (pool size, dropout rate, BN settings, padding).
    Empty strings where a column does not apply to a layer.
    """
    import keras

    rows = []
    for layer in model.layers:
        activation = getattr(layer, "activation", None)
        if isinstance(layer, keras.layers.ReLU):
            activation_name = "relu"
        elif activation is not None:
            activation_name = getattr(activation, "__name__", str(activation))
        else:
            activation_name = ""
        rows.append(
            {
                "name": layer.name,
                "type": type(layer).__name__,
                "output shape": _output_shape(layer),
                "filters": getattr(layer, "filters", "") or "",
                "kernel": _pair(getattr(layer, "kernel_size", None)),
                "strides": _pair(getattr(layer, "strides", None)),
                "activation": activation_name,
                "initializer": _initializer_name(getattr(layer, "kernel_initializer", None)),
                "bias": "" if not hasattr(layer, "use_bias") else bool(layer.use_bias),
                "parameters": int(layer.count_params()) if layer.built else 0,
                "details": _layer_details(layer),
            }
        )
    return pd.DataFrame(rows)


def architecture_summary(networks: Mapping[str, keras.Model]) -> pd.DataFrame:
    """A compact side-by-side of several networks: one row each.

    Columns: network, conv layers, filters (in order), strides (in order), initializer(s),
    dropout layers (with rates), batch normalisation layers, parameters.
    """
    rows = []
    for label, model in networks.items():
        table = layer_table(model)
        conv = table[table["type"] == "Conv2D"]
        dropout = table[table["type"] == "Dropout"]
        rows.append(
            {
                "network": label,
                "conv layers": len(conv),
                "filters": ", ".join(str(f) for f in conv["filters"]),
                "strides": ", ".join(s.split("x")[0] for s in conv["strides"]),
                "initializer": ", ".join(dict.fromkeys(conv["initializer"])),
                "dropout layers": f"{len(dropout)} ({', '.join(dict.fromkeys(dropout['details']))})"
                if len(dropout)
                else "0",
                "batch norm layers": int((table["type"] == "BatchNormalization").sum()),
                "parameters": int(model.count_params()),
            }
        )
    return pd.DataFrame(rows)


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


def mark_epoch(fig: Figure, epoch: int, label: str) -> Figure:
    """Draw a dotted vertical line at ``epoch`` on every axis of a loss-curve figure (e.g. the kept epoch)."""
    for ax in fig.axes:
        ax.axvline(epoch, color="k", ls=":", lw=1.2, label=label)
        ax.legend(fontsize=8)
    return fig


def continued_history(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """``second`` with its epochs shifted to continue after ``first`` (fine-tuning after training)."""
    return second.assign(epoch=second["epoch"] + int(first["epoch"].max()))


def with_report_note(table: pd.DataFrame, note: str = "not in the report") -> pd.DataFrame:
    """A pipeline table with an "in report" column (after descriptor) saying which rows are the
    report's Table 2 rows; the others get ``note``."""
    reported = set(zip(REPORT_TABLE2.denoiser, REPORT_TABLE2.descriptor))
    source = ["report Table 2" if (d, s) in reported else note for d, s in zip(table.denoiser, table.descriptor)]
    out = table.copy()
    out.insert(list(out.columns).index("descriptor") + 1, "in report", source)
    return out
