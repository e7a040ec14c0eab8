"""Evaluation results as a tidy table and as the official benchmark's text print-out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from nhpatches.core.config import NOISE_LEVELS
from nhpatches.evaluation.metrics import SUBSETS


def results_to_frame(results: Mapping[str, Any]) -> pd.DataFrame:
    """Tidy table: one row per (task, noise_level, subset) with its mAP; 'all' marks totals."""
    rows = []
    for task in ("verification", "matching", "retrieval"):
        if task not in results:
            continue
        entry = results[task]
        rows.append((task, "all", "all", entry["mAP"]))
        for noise, value in entry.get("ap_per_noise", {}).items():
            rows.append((task, NOISE_LEVELS.get(noise, noise), "all", value))
        for prefix, value in entry.get("ap_per_prefix", {}).items():
            rows.append((task, "all", prefix, value))
    return pd.DataFrame(rows, columns=["task", "noise_level", "subset", "mAP"])


def _provenance_line(provenance: Mapping[str, Any]) -> str:
    """One line describing where the task files came from."""
    keys = ("source", "split", "verification_seed", "retrieval_seed", "counts", "path")
    parts = [f"{k}={provenance[k]}" for k in keys if k in provenance]
    return "tasks: " + ", ".join(parts) if parts else "tasks: (no provenance)"


def format_results(results: Mapping[str, Any]) -> str:
    """Readable text table: per task mAP, easy/hard/tough and i_/v_ breakdowns, details."""
    frame = results_to_frame(results)
    columns = ["all", *NOISE_LEVELS.values(), *SUBSETS]
    lines = [
        f"HPatches evaluation  split={results.get('split')}  distance={results.get('distance')}  "
        f"dim={results.get('dim')}",
        _provenance_line(results.get("tasks", {})),
        "",
        f"{'task':<14}" + "".join(f"{c:>10}" for c in ["mAP", *columns[1:]]),
    ]
    for task, group in frame.groupby("task", sort=False):
        label = str(task)
        records = group.to_dict(orient="records")
        values = {row["subset"] if row["subset"] != "all" else row["noise_level"]: row["mAP"] for row in records}
        lines.append(f"{label:<14}" + "".join(f"{values[c]:>10.4f}" if c in values else f"{'-':>10}" for c in columns))
    if "summary" in results:
        lines.append(f"{'mean of tasks':<14}{results['summary']['mean_mAP']:>10.4f}")
    lines += _verification_lines(results.get("verification")) + _retrieval_lines(results.get("retrieval"))
    if "timings_s" in results:
        lines.append("evaluation seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in results["timings_s"].items()))
    return "\n".join(lines)


def _verification_lines(verification: Mapping[str, Any] | None) -> list[str]:
    """Verification detail: imbalanced AP and balanced AUC per noise level and negative kind."""
    if not verification:
        return []
    lines = ["", "verification       AP inter  AP intra  AUC inter  AUC intra"]
    for noise, name in NOISE_LEVELS.items():
        ap, auc = verification["ap_imbalanced"][noise], verification["auc_balanced"][noise]
        lines.append(f"  {name:<15}{ap['inter']:>10.4f}{ap['intra']:>10.4f}{auc['inter']:>11.4f}{auc['intra']:>11.4f}")
    return lines


def _retrieval_lines(retrieval: Mapping[str, Any] | None) -> list[str]:
    """Retrieval detail: mean AP per pool size and noise level."""
    if not retrieval:
        return []
    pools = [str(k) for k in retrieval["pool_sizes"]]
    lines = ["", "retrieval pool " + "".join(f"{k:>8}" for k in pools)]
    for noise, name in NOISE_LEVELS.items():
        row = retrieval["ap_per_noise_pool"][noise]
        lines.append(f"  {name:<13}" + "".join(f"{row[k]:>8.4f}" for k in pools))
    return lines
