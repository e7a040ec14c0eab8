"""Image matching (``HPATCHES_SPEC.md`` 3.3): AP per test sequence, noise level and target image.

Each ``ref`` patch is matched to its nearest patch of the target image (first index on ties); the
matches are ranked by that distance and a match is correct when it is the same point, with P = N.
The nearest neighbours come from float32 matrix products of the ``ref`` patches against the five
targets of a noise level at once, with every decision their rounding could flip re-decided with
direct float64 distances (:func:`nhpatches.evaluation.metrics.nearest_from_scores`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nhpatches.core.config import IMAGE_TYPES, NOISE_LEVELS
from nhpatches.data.tasks import TaskSet
from nhpatches.evaluation.metrics import (
    NUM_TARGETS,
    ap_from_ranks,
    augment_left,
    augment_right,
    check_distance,
    l1_scores,
    l2_tolerance,
    map_blocks,
    nearest_from_scores,
    prefix_masks,
    prepare_descriptors,
    progress_bar,
    single_threaded_blas,
)

#: Float32 scores per matrix product: ref rows x all targets of a noise level (16 MB: stays in a shared L3).
MATCH_BLOCK = 1 << 22


def target_images(noise: str) -> list[int]:
    """IMAGE_TYPES positions of the targets 1..5 of a noise level."""
    return [IMAGE_TYPES.index(f"{noise}{k}") for k in range(1, NUM_TARGETS + 1)]


def _ranked_ap(distance: np.ndarray, correct: np.ndarray) -> float:
    """Spec 3.1 AP of matches ranked by ascending distance (stable), P = number of matches.

    The inputs are the matcher's own finite arrays, so average_precision's input checks are skipped.
    Shape: ``(N,), (N,) bool -> float``.
    """
    ranks = np.flatnonzero(correct[np.argsort(distance, kind="stable")]) + 1
    return float(ap_from_ranks(ranks, len(distance)))


def matching_aps(
    reference: np.ndarray, targets: np.ndarray, metric: str, workspace: np.ndarray | None = None
) -> list[float]:
    """AP per target image: ref patches ranked by their nearest-neighbour distance, P = N.

    L2: one float32 product scores a block of ref rows against all T targets at once (few, large
    products), each target's nearest neighbours are then read off its slice of the scores.
    ``workspace``: a flat float32 array reused for the scores (at least min(N, rows per block)·T·M
    entries; see MATCH_BLOCK). Shape: ``(N, D), (T, M, D) -> T APs``.
    """
    num_targets, size, dim = targets.shape
    if metric == "L1":
        pairs = [nearest_from_scores(*l1_scores(reference, t), reference, t, metric) for t in targets]
    else:
        left_aug, left_norm = augment_left(reference, add_left_norm=False)
        right_aug = [augment_right(t) for t in targets]
        stacked = np.concatenate(right_aug)
        rows = max(1, min(len(reference), MATCH_BLOCK // len(stacked)))
        if workspace is None or workspace.size < rows * len(stacked):
            workspace = np.empty(rows * len(stacked), np.float32)
        parts: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in targets]
        for start in range(0, len(reference), rows):
            block = slice(start, start + rows)
            count = len(left_aug[block])
            scores = np.matmul(left_aug[block], stacked.T, out=workspace[: count * len(stacked)].reshape(count, -1))
            scores = scores.reshape(count, num_targets, size)
            for k, target in enumerate(targets):
                tol = l2_tolerance(left_norm[block], right_aug[k], dim)
                parts[k].append(nearest_from_scores(scores[:, k], tol, reference[block], target, metric))
        pairs = [(np.concatenate([n for n, _ in p]), np.concatenate([d for _, d in p])) for p in parts]
    every = np.arange(len(reference))
    return [_ranked_ap(distance, nearest == every) for nearest, distance in pairs]


def matching_results(
    arrays: Sequence[np.ndarray], sequences: Sequence[str], metric: str, progress: bool | None
) -> dict[str, Any]:
    """Matching results from prepared arrays (the ``matching`` entry of evaluate())."""
    largest = max(a.shape[1] for a in arrays)
    size = min(largest * NUM_TARGETS * largest, max(MATCH_BLOCK, NUM_TARGETS * largest))
    local = threading.local()

    def one_sequence(array: np.ndarray) -> dict[str, list[float]]:
        if not hasattr(local, "workspace"):
            local.workspace = np.empty(size, np.float32)  # one per thread: fresh multi-MB arrays cost page faults
        aps = {
            noise: matching_aps(array[0], array[target_images(noise)], metric, local.workspace)
            for noise in NOISE_LEVELS
        }
        bar.update(1)
        return aps

    with progress_bar(len(sequences), "matching", progress) as bar, single_threaded_blas() as workers:
        per_seq = dict(zip(sequences, map_blocks(one_sequence, arrays, workers), strict=False))
    table = np.array([[per_seq[name][noise] for noise in NOISE_LEVELS] for name in sequences])
    result: dict[str, Any] = {"ap_per_seq": per_seq}
    result["ap_per_noise"] = {noise: float(table[:, i].mean()) for i, noise in enumerate(NOISE_LEVELS)}
    masks = prefix_masks(sequences, np.arange(len(sequences)))
    result["ap_per_prefix"] = {prefix: float(table[mask].mean()) for prefix, mask in masks.items()}
    result["mAP"] = float(np.mean(list(result["ap_per_noise"].values())))
    return result


def evaluate_matching(
    descriptors: Mapping[str, np.ndarray],
    sequences: Sequence[str] | TaskSet,
    distance: str = "L2",
    progress: bool | None = False,
) -> dict[str, Any]:
    """Image matching (spec 3.3): AP per test sequence, noise level and target image 1..5.

    ``descriptors``: sequence name -> (16, N, D) array. Returns ``ap_per_seq`` ({name: {noise: 5 APs}}),
    ``ap_per_noise``, ``ap_per_prefix`` and ``mAP``.
    """
    metric = check_distance(distance)
    names = tuple(sequences.sequences if isinstance(sequences, TaskSet) else sequences)
    arrays = prepare_descriptors(descriptors, names)
    return matching_results(arrays, names, metric, progress)
