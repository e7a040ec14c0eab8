"""Exact, vectorised HPatches evaluation: verification, matching and retrieval mAP.

Definitions follow ``HPATCHES_SPEC.md`` sections 3.0-3.5 (the official hpatches-benchmark python
code as used by the N-HPatches coursework), with its loops replaced by array code, one module per
task (:mod:`~nhpatches.evaluation.verification`, :mod:`~nhpatches.evaluation.matching`,
:mod:`~nhpatches.evaluation.retrieval`) on the kernels of :mod:`~nhpatches.evaluation.metrics`:

* distances are computed in float64 from float32 descriptors, directly as ``‖a − b‖``; where a fast
  float32 matrix product is used to *rank* candidates, every decision that the product's rounding
  could flip is re-decided with the direct float64 distance, so results equal the per-pair loop's
  (:mod:`nhpatches.evaluation.reference`, checked by ``tests/test_evaluation.py``);
* average precision is the trapezoid of spec 3.1 (not mean precision at hits), over a stably
  sorted list, with the tie order of each task (verification: negatives first; retrieval:
  positives first; matching: patch order).

Descriptors are mappings ``sequence -> (16, N, D)`` arrays in ``IMAGE_TYPES`` order and are
evaluated as float32 (like the official CSV reader). ``progress``: None shows tqdm bars only when
stderr is a terminal, True always, False never. L2 is the fast path; L1 is exact but slower.

Extra breakdowns, not in the official print-out: ``ap_per_noise`` for all three tasks and
``ap_per_prefix`` (``i_`` illumination / ``v_`` viewpoint sequences). For matching it is the mean
over the subset's (sequence, noise, target) APs; for verification it is the 6-AP mean recomputed
on the task rows whose *first* sequence (``s1``) has the prefix (inter negatives may pair it with a
sequence of the other kind); for retrieval it is the mean over the queries of that prefix.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from nhpatches.data.tasks import TaskSet, validate_tasks
from nhpatches.evaluation.matching import evaluate_matching, matching_results
from nhpatches.evaluation.metrics import POOL_SIZES, array_sizes, check_distance, prepare_descriptors
from nhpatches.evaluation.retrieval import check_retrieval_lists, evaluate_retrieval, retrieval_ap, retrieval_summary
from nhpatches.evaluation.verification import check_verification_lists, evaluate_verification, verification_results

__all__ = ["evaluate", "evaluate_matching", "evaluate_retrieval", "evaluate_verification"]


def evaluate(
    descriptors: Mapping[str, np.ndarray],
    tasks: TaskSet,
    distance: str = "L2",
    progress: bool | None = None,
) -> dict[str, Any]:
    """All three tasks, their summary, per-task evaluation seconds and the task provenance.

    ``descriptors``: sequence name -> (16, N, D) array for every test sequence of ``tasks``.
    """
    metric = check_distance(distance)
    arrays = prepare_descriptors(descriptors, tasks.sequences)
    validate_tasks(tasks, array_sizes(arrays, tasks.sequences))
    check_verification_lists(tasks)
    check_retrieval_lists(tasks)
    results: dict[str, Any] = {"split": tasks.split, "dim": int(arrays[0].shape[2]), "distance": metric}
    results["n_sequences"] = len(tasks.sequences)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    results["verification"] = verification_results(arrays, tasks, metric, progress)
    timings["verification"] = time.perf_counter() - start
    start = time.perf_counter()
    results["matching"] = matching_results(arrays, tasks.sequences, metric, progress)
    timings["matching"] = time.perf_counter() - start
    start = time.perf_counter()
    ap = retrieval_ap(arrays, tasks, metric, POOL_SIZES, progress)
    results["retrieval"] = retrieval_summary(ap, POOL_SIZES, tasks)
    timings["retrieval"] = time.perf_counter() - start
    results["summary"] = _summary(results)
    results["timings_s"] = timings
    results["tasks"] = dict(tasks.provenance)
    return results


def _summary(results: Mapping[str, Any]) -> dict[str, float]:
    """The three task mAPs and their mean (the coursework's final score)."""
    summary = {f"{task}_mAP": float(results[task]["mAP"]) for task in ("verification", "matching", "retrieval")}
    summary["mean_mAP"] = float(np.mean(list(summary.values())))
    return summary
