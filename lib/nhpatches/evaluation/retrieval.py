"""Patch retrieval (``HPATCHES_SPEC.md`` 3.4): mean AP over queries per noise level and pool size.

A query's list is its 5 positives (its point in the targets 1..5 of a noise level) followed by the
distractors of other sequences in file order, cut to each pool size; ties rank positives first.
Each positive's rank is its place among the positives plus the distractors closer than it, so only
counts are needed: per query chunk one float32 matrix product scores every distractor, the few
that could beat a positive are bucketed by the sorted positive distances, and every comparison
the product's rounding could flip is re-decided with the direct float64 distance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from nhpatches.core.config import IMAGE_TYPES, NOISE_LEVELS
from nhpatches.data.tasks import TaskSet, validate_tasks
from nhpatches.evaluation.metrics import (
    NUM_TARGETS,
    POOL_SIZES,
    SCORE_BLOCK,
    ap_from_ranks,
    array_sizes,
    augment_right,
    check_distance,
    gather,
    indexed_distances,
    map_blocks,
    pair_distances,
    prefix_masks,
    prepare_descriptors,
    progress_bar,
    score_matrix,
    single_threaded_blas,
    to_score,
    upper_limit,
)


def check_pools(pool_sizes: Iterable[int]) -> tuple[int, ...]:
    """Validate pool sizes: distinct integers >= 5 (the 5 positives always fit)."""
    pools = tuple(int(k) for k in pool_sizes)
    if not pools or len(set(pools)) != len(pools) or min(pools) < NUM_TARGETS:
        raise ValueError(f"pool sizes must be distinct integers >= {NUM_TARGETS}, got {pools}")
    return pools


def _positive_distances(
    arrays: Sequence[np.ndarray], queries: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Query ref descriptors and the distances to their 5 positives per noise level.

    Shape: ``(Q, 2) -> (Q, D), (Q, 3, 5)``.
    """
    seq, idx = queries[:, 0], queries[:, 1]
    reference = gather(arrays, seq, np.zeros_like(idx), idx)
    positives = np.empty((len(queries), len(NOISE_LEVELS), NUM_TARGETS))
    for a, noise in enumerate(NOISE_LEVELS):
        for k in range(1, NUM_TARGETS + 1):
            image = np.full_like(idx, IMAGE_TYPES.index(f"{noise}{k}"))
            positives[:, a, k - 1] = pair_distances(reference, gather(arrays, seq, image, idx), metric)
    return reference, positives


class _Candidates:
    """The distractors of a query chunk that may beat one of its positives, with what every noise level shares.

    Entries are (row, column) of the chunk's score matrix in row-major order; ``base`` is the
    first histogram bin of each entry (row, pool segment of its column).
    """

    def __init__(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, tol: np.ndarray, bounds: np.ndarray):
        self.rows, self.cols, self.values = rows, cols, values
        self.tol = tol[rows]
        self.num_segments = len(bounds) + 1
        self.base = (rows * self.num_segments + np.searchsorted(bounds, cols, side="right")) * (NUM_TARGETS + 1)


def _counts_below(
    candidates: _Candidates,
    positives: np.ndarray,
    exact_distances: Callable[[np.ndarray, np.ndarray], np.ndarray],
    metric: str,
) -> np.ndarray:
    """Per query, pool bound b and sorted positive j: #distractors among the first b with d < d_j.

    Candidates whose comparison with a positive their error bound cannot settle get their
    direct distance from ``exact_distances(rows, cols)``.
    Shape: ``(C, 5) positives (sorted per row) -> (C, len(bounds), 5)``.
    """
    thresholds = to_score(positives, metric)
    keep = np.flatnonzero(candidates.values <= thresholds[:, -1][candidates.rows] + candidates.tol)
    rows, values, row_tol = candidates.rows[keep], candidates.values[keep], candidates.tol[keep]
    bucket = np.zeros(len(keep), np.int64)
    ambiguous = np.zeros(len(keep), bool)
    for j in range(NUM_TARGETS):
        threshold = thresholds[:, j][rows]
        bucket += values >= threshold
        ambiguous |= np.abs(values - threshold) <= row_tol
    ambiguous = np.flatnonzero(ambiguous)
    if len(ambiguous):
        exact = exact_distances(rows[ambiguous], candidates.cols[keep[ambiguous]])
        bucket[ambiguous] = (positives[rows[ambiguous]] <= exact[:, None]).sum(axis=1)
    bins = candidates.num_segments * (NUM_TARGETS + 1)
    hist = np.bincount(candidates.base[keep] + bucket, minlength=len(positives) * bins)
    hist = hist.reshape(len(positives), candidates.num_segments, NUM_TARGETS + 1)
    return hist.cumsum(axis=2)[:, :, :NUM_TARGETS].cumsum(axis=1)[:, :-1, :]


def _retrieval_chunk(
    queries_ref: np.ndarray,
    positives: np.ndarray,
    pool_ref: np.ndarray,
    pool_augmented: np.ndarray | None,
    bounds: np.ndarray,
    slots: np.ndarray,
    metric: str,
    workspace: np.ndarray | None = None,
) -> np.ndarray:
    """AP of a chunk of queries sharing one filtered distractor list (``pool_augmented``: see augment_right).

    Shape: ``(C, D), (C, 3, 5), (K, D) -> (C, 3, len(slots))``.
    """
    scores, tol = score_matrix(queries_ref, pool_ref, metric, right_augmented=pool_augmented, workspace=workspace)
    ordered = np.sort(positives, axis=2)
    limit = upper_limit(to_score(ordered[:, :, -1], metric).max(axis=1) + tol, scores.dtype)
    flat = np.flatnonzero(scores <= limit[:, None])
    rows, cols = np.divmod(flat, scores.shape[1])
    candidates = _Candidates(rows, cols, scores.reshape(-1)[flat].astype(np.float64), tol, bounds)

    def exact_distances(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return indexed_distances(queries_ref, r, pool_ref, c, metric)

    out = np.empty((len(queries_ref), positives.shape[1], len(slots)))
    for a in range(positives.shape[1]):
        counts = _counts_below(candidates, ordered[:, a], exact_distances, metric)
        ranks = np.arange(1, NUM_TARGETS + 1) + counts[:, slots, :]
        out[:, a] = ap_from_ranks(ranks, NUM_TARGETS)
    return out


def retrieval_ap(
    arrays: Sequence[np.ndarray], tasks: TaskSet, metric: str, pools: tuple[int, ...], progress: bool | None
) -> np.ndarray:
    """AP per query, noise level and pool size. Shape: ``-> (Q, 3, len(pools))``."""
    queries, distractors = tasks.queries, tasks.distractors
    queries_ref, positives = _positive_distances(arrays, queries, metric)
    distractors_ref = gather(arrays, distractors[:, 0], np.zeros_like(distractors[:, 1]), distractors[:, 1])
    ap = np.empty((len(queries), len(NOISE_LEVELS), len(pools)))
    local = threading.local()

    def one_sequence(seq: int) -> None:
        if not hasattr(local, "workspace"):  # one per thread: fresh multi-MB arrays cost page faults
            local.workspace = np.empty(max(SCORE_BLOCK, len(distractors)), np.float32)
        members = np.flatnonzero(queries[:, 0] == seq)
        kept = np.flatnonzero(distractors[:, 0] != seq)[: max(pools) - NUM_TARGETS]
        num_distractors = np.minimum(np.array(pools) - NUM_TARGETS, len(kept))
        bounds = np.unique(num_distractors)
        slots = np.searchsorted(bounds, num_distractors)
        pool_ref = distractors_ref[kept]
        pool_augmented = augment_right(pool_ref) if metric == "L2" else None
        step = max(1, SCORE_BLOCK // max(len(kept), 1))
        for start in range(0, len(members), step):
            chunk = members[start : start + step]
            ap[chunk] = _retrieval_chunk(
                queries_ref[chunk], positives[chunk], pool_ref, pool_augmented, bounds, slots, metric, local.workspace
            )
            bar.update(len(chunk))

    with progress_bar(len(queries), "retrieval", progress) as bar, single_threaded_blas() as workers:
        map_blocks(one_sequence, np.unique(queries[:, 0]), workers)
    return ap


def retrieval_summary(ap: np.ndarray, pools: tuple[int, ...], tasks: TaskSet) -> dict[str, Any]:
    """Aggregates of spec 3.5 from the per-query APs (the ``retrieval`` entry of evaluate())."""
    table = ap.mean(axis=0) if len(ap) else np.zeros(ap.shape[1:])
    noises = list(NOISE_LEVELS)
    result: dict[str, Any] = {
        "ap_per_noise_pool": {
            n: {str(k): float(table[a, i]) for i, k in enumerate(pools)} for a, n in enumerate(noises)
        },
        "mean_over_noise_per_pool": {str(k): float(table[:, i].mean()) for i, k in enumerate(pools)},
        "ap_per_noise": {n: float(table[a].mean()) for a, n in enumerate(noises)},
        "mAP": float(table.mean()),
        "mAP_official_float32": float(np.mean(np.mean(table.astype(np.float32), axis=0))),
        "n_queries": len(ap),
        "n_distractors": len(tasks.distractors),
        "pool_sizes": list(pools),
    }
    masks = prefix_masks(tasks.sequences, tasks.queries[:, 0])
    result["ap_per_prefix"] = {p: float(ap[m].mean()) for p, m in masks.items()}
    return result


def check_retrieval_lists(tasks: TaskSet) -> None:
    """At least one retrieval query is needed."""
    if len(tasks.queries) == 0:
        raise ValueError("the retrieval query list is empty")


def evaluate_retrieval(
    descriptors: Mapping[str, np.ndarray],
    tasks: TaskSet,
    distance: str = "L2",
    pool_sizes: Iterable[int] = POOL_SIZES,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Patch retrieval (spec 3.4): mean AP over queries per noise level and pool size.

    ``descriptors``: sequence name -> (16, N, D) array. Returns ``ap_per_noise_pool``
    ({noise: {pool: mAP}}), ``mean_over_noise_per_pool``, ``ap_per_noise``, ``mAP``, ``ap_per_prefix``
    and the list sizes.
    """
    metric = check_distance(distance)
    pools = check_pools(pool_sizes)
    arrays = prepare_descriptors(descriptors, tasks.sequences)
    validate_tasks(tasks, array_sizes(arrays, tasks.sequences))
    check_retrieval_lists(tasks)
    return retrieval_summary(retrieval_ap(arrays, tasks, metric, pools, progress), pools, tasks)
