"""The study's tables: Table 1 (epochs) and Table 2 (mAP) beside the report's, breakdowns, seed summaries.

Evaluation results are the dicts of ``Study.evaluate`` (``pipeline``, ``summary``, ``tasks`` and the
per-task records); a table has one row per pipeline, and says which task files produced it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nhpatches import evaluation
from nhpatches.core import config

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


#: Table 1 of the report: (denoiser epochs, descriptor epochs) of each Table 2 pipeline.
REPORT_TABLE1 = {
    ("unet", "baseline"): (40, 40),
    ("dncnn_adam", "baseline"): (5, 40),
    ("dncnn_adam", "updated"): (5, 40),
    ("dncnn_adam", "deep"): (5, 40),
    ("unet", "retrained"): (40, 13),
    ("dncnn_adam", "retrained"): (5, 13),
}


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
        row: dict[str, Any] = {
            "pipeline": pipeline_label(result["pipeline"]["denoiser"], result["pipeline"]["descriptor"]),
            "task_files": task_files_label(result.get("tasks", {})),
        }
        for record in tidy.to_dict(orient="records"):
            task, subset, level = str(record["task"])[:5], record["subset"], record["noise_level"]
            if subset == "all" and level != "all":
                row[f"{task} {level}"] = record["mAP"]
            elif subset != "all" and level == "all":
                row[f"{task} {subset}"] = record["mAP"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame[[c for c in frame.columns if c != "task_files"] + ["task_files"]]


#: Columns a seed summary averages (and gives the std of).
SCORE_COLUMNS: tuple[str, ...] = (*config.TASKS, "mean")


def seed_summary(
    tables: Sequence[pd.DataFrame], seeds: Sequence[int], keys: Sequence[str] = ("denoiser", "descriptor")
) -> pd.DataFrame:
    """Per-seed tables (same rows) as one table: the score columns averaged over the seeds.

    Each score gets a ``<score> std`` column (sample std, ddof=1; NaN with one seed), and ``seeds``
    lists the seeds. Other columns are taken from the first seed's table.
    """
    if len(tables) != len(seeds) or not tables:
        raise ValueError(f"need one table per seed, got {len(tables)} tables for seeds {list(seeds)}")
    keys = list(keys)
    order = [tuple(row) for row in tables[0][keys].itertuples(index=False)]
    for seed, table in zip(seeds, tables, strict=True):
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


def with_report_note(table: pd.DataFrame, note: str = "not in the report") -> pd.DataFrame:
    """A pipeline table with an "in report" column after descriptor: which rows are the report's Table 2.

    Rows that are not in the report's Table 2 get ``note``.
    """
    reported = set(zip(REPORT_TABLE2.denoiser, REPORT_TABLE2.descriptor, strict=True))
    source = [
        "report Table 2" if (d, s) in reported else note for d, s in zip(table.denoiser, table.descriptor, strict=True)
    ]
    out = table.copy()
    out.insert(list(out.columns).index("descriptor") + 1, "in report", source)
    return out
