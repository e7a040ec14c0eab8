"""Exact, vectorised HPatches evaluation: verification, matching and retrieval mAP.

Definitions follow ``HPATCHES_SPEC.md`` sections 3.0-3.5 (the official hpatches-benchmark python
code as used by the N-HPatches coursework), with its loops replaced by array code:

* distances are computed in float64 from float32 descriptors, directly as ``‖a − b‖``; where a fast
  float32 matrix product is used to *rank* candidates, every decision that the product's rounding
  could flip is re-decided with the direct float64 distance, so results equal the per-pair loop's;
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

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from nhpatches.core.config import IMAGE_TYPES, NOISE_LEVELS
from nhpatches.data.tasks import TaskSet, validate_tasks

#: Retrieval pool sizes of the official protocol (list entries kept before ranking).
POOL_SIZES: tuple[int, ...] = (100, 500, 1000, 5000, 10000, 15000, 20000)
#: Supported distances.
DISTANCES: tuple[str, ...] = ("L2", "L1")
#: Sequence-name prefixes of the two HPatches subsets (illumination, viewpoint).
SUBSETS: tuple[str, ...] = ("i_", "v_")
#: Number of positives of a retrieval query (targets 1..5).
NUM_TARGETS = 5
_TINY = 1e-10
_ROW_BLOCK = 256
_PAIR_BLOCK = 2048
_NUM_THREADS = max(1, min(8, os.cpu_count() or 1))  # numpy releases the GIL in the distance kernels
_SCORE_BLOCK = 1 << 22
_F32_UNIT = float(np.finfo(np.float32).eps) / 2


# ----------------------------------------------------------------------------- AP and AUC
def _ap_from_ranks(ranks: np.ndarray, num_positives: int) -> np.ndarray:
    """Spec 3.1 AP from the sorted 1-based ranks of the retrieved positives (last axis).

    Shape: ``(..., p) -> (...)``.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if num_positives <= 0:
        return np.zeros(ranks.shape[:-1])
    j = np.arange(1, ranks.shape[-1] + 1, dtype=np.float64)
    before = np.maximum(j - 1, _TINY) / np.maximum(ranks - 1, _TINY)
    return (0.5 * (j / ranks + before)).sum(axis=-1) / num_positives


def _check_ranked_input(distances: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (distances, labels) pair of 1-D arrays of equal length."""
    dist = np.asarray(distances, dtype=np.float64)
    lab = np.asarray(labels)
    if dist.ndim != 1 or lab.shape != dist.shape:
        raise ValueError(
            f"distances and labels must be 1-D of equal length, got {dist.shape} and {lab.shape}"
        )
    if not np.all(np.isfinite(dist)):
        raise ValueError("distances must be finite (no NaN or inf)")
    if not np.all((lab == 0) | (lab == 1)):
        raise ValueError("labels must be 0/1 or boolean")
    return dist, lab.astype(bool)


def average_precision(distances: Any, labels: Any, num_positives: int | None = None) -> float:
    """AP of spec 3.1 over the list ranked by ascending distance (stable: ties keep list order)."""
    dist, lab = _check_ranked_input(distances, labels)
    found = int(lab.sum())
    total = found if num_positives is None else int(num_positives)
    if total < found:
        raise ValueError(f"num_positives={total} is smaller than the {found} positives in labels")
    order = np.argsort(dist, kind="stable")
    ranks = np.flatnonzero(lab[order]) + 1
    return float(_ap_from_ranks(ranks, total))


def balanced_auc(distances: Any, labels: Any) -> float:
    """Area under the ROC curve (trapezoid of tpr over fpr) of the stably ranked list."""
    dist, lab = _check_ranked_input(distances, labels)
    ranked = lab[np.argsort(dist, kind="stable")]
    positives, negatives = int(ranked.sum()), int((~ranked).sum())
    if positives == 0 or negatives == 0:
        return 0.0
    positives_before = np.cumsum(ranked)[~ranked]
    return float(positives_before.sum() / (positives * negatives))


# ----------------------------------------------------------------------------- inputs
def _prepare_descriptors(
    descriptors: Mapping[str, np.ndarray], sequences: Sequence[str]
) -> list[np.ndarray]:
    """Validate descriptors of the test sequences; float32 (16, N, D) arrays in split order."""
    if not isinstance(descriptors, Mapping):
        raise ValueError("descriptors must be a mapping: sequence name -> (16, N, D) array")
    arrays, dim = [], None
    for name in sequences:
        if name not in descriptors:
            raise ValueError(f"descriptors for test sequence {name!r} are missing")
        array = np.asarray(descriptors[name], dtype=np.float32)
        if array.ndim != 3 or array.shape[0] != len(IMAGE_TYPES) or array.shape[1] < 1:
            raise ValueError(
                f"descriptors of {name!r} have shape {array.shape}; expected (16, N, D) with "
                f"N >= 1 in the order {', '.join(IMAGE_TYPES)}"
            )
        if dim is not None and array.shape[2] != dim:
            raise ValueError(f"descriptors of {name!r} have dimension {array.shape[2]}, others {dim}")
        dim = array.shape[2]
        if not np.all(np.isfinite(array)):
            raise ValueError(f"descriptors of {name!r} contain NaN or infinite values")
        arrays.append(np.ascontiguousarray(array))
    if not arrays:
        raise ValueError("no test sequences to evaluate")
    return arrays


def _check_distance(distance: str) -> str:
    """Validate the distance name."""
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; expected one of {DISTANCES}")
    return distance


def _sizes(arrays: Sequence[np.ndarray], sequences: Sequence[str]) -> dict[str, int]:
    """Patches per sequence."""
    return {name: int(a.shape[1]) for name, a in zip(sequences, arrays)}


def _type_index(image_ids: np.ndarray, noise: str) -> np.ndarray:
    """Map task image ids 0..5 to IMAGE_TYPES positions for noise level ``noise``."""
    base = IMAGE_TYPES.index(f"{noise}1") - 1
    return np.where(image_ids == 0, 0, image_ids + base)


def _progress_bar(total: int, desc: str, progress: bool | None) -> Any:
    """A tqdm bar: shown if progress is True, or if None and stderr is a terminal."""
    import sys

    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if progress is None else bool(progress)
    return tqdm(total=total, desc=desc, disable=not show, leave=False, file=sys.stderr)


# ----------------------------------------------------------------------------- distances
def _pair_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Row-wise distances in float64, computed directly from the differences.

    Works in blocks of _ROW_BLOCK rows with two small float64 buffers (large fresh temporaries
    cost more in page faults than the arithmetic). Shape: ``(M, D), (M, D) -> (M,)``.
    """
    out = np.empty(len(a), dtype=np.float64)
    size = min(_ROW_BLOCK, max(len(a), 1))
    diff, other = np.empty((size, a.shape[1])), np.empty((size, a.shape[1]))
    for start in range(0, len(a), size):
        m = min(size, len(a) - start)
        np.copyto(diff[:m], a[start : start + m])
        np.copyto(other[:m], b[start : start + m])
        np.subtract(diff[:m], other[:m], out=diff[:m])
        if metric == "L1":
            out[start : start + m] = np.abs(diff[:m], out=diff[:m]).sum(axis=1)
        else:
            out[start : start + m] = np.einsum("ij,ij->i", diff[:m], diff[:m])
    return out if metric == "L1" else np.sqrt(out, out=out)


def _indexed_distances(
    left: np.ndarray, left_rows: np.ndarray, right: np.ndarray, right_rows: np.ndarray, metric: str
) -> np.ndarray:
    """Direct distances between ``left[left_rows]`` and ``right[right_rows]``, in chunks."""
    out = np.empty(len(left_rows), dtype=np.float64)
    for start in range(0, len(left_rows), _ROW_BLOCK):
        part = slice(start, start + _ROW_BLOCK)
        out[part] = _pair_distances(
            np.take(left, left_rows[part], axis=0), np.take(right, right_rows[part], axis=0), metric
        )
    return out


def _gather(arrays: Sequence[np.ndarray], seq: np.ndarray, image: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Descriptor rows ``arrays[seq][image, idx]`` grouped by sequence.

    Shape: ``(M,), (M,), (M,) -> (M, D)``.
    """
    out = np.empty((len(seq), arrays[0].shape[2]), dtype=np.float32)
    order = np.argsort(seq, kind="stable")
    bounds = np.searchsorted(seq[order], np.arange(len(arrays) + 1))
    for u in np.flatnonzero(np.diff(bounds)):
        rows = order[bounds[u] : bounds[u + 1]]
        array = arrays[u]
        flat = array.reshape(-1, array.shape[2])
        out[rows] = np.take(flat, image[rows] * array.shape[1] + idx[rows], axis=0)
    return out


def _score_matrix(
    left: np.ndarray,
    right: np.ndarray,
    metric: str,
    add_left_norm: bool = True,
    right_augmented: np.ndarray | None = None,
    workspace: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fast scores (squared L2 via float32 expansion, or exact L1) and a per-row error bound.

    The true score (``‖a−b‖²`` for L2, ``‖a−b‖₁`` for L1) of entry (i, j) lies within ``tol[i]``
    of the returned value; with ``add_left_norm=False`` the L2 scores omit the row constant
    ``‖a_i‖²`` (enough to rank within a row); ``right_augmented`` = _augment_right(right), if
    already computed; ``workspace``: a flat float32 array of at least C·K entries reused for the
    scores (fresh multi-MB arrays cost page faults). Shape: ``(C, D), (K, D) -> (C, K), (C,)``.
    """
    if metric == "L1":
        return _l1_scores(left, right)
    left_norm = np.einsum("ij,ij->i", left, left)
    right_aug = _augment_right(right) if right_augmented is None else right_augmented
    left_aug = np.empty((len(left), left.shape[1] + 2), np.float32)
    np.multiply(left, np.float32(-2.0), out=left_aug[:, :-2])
    left_aug[:, -2] = 1.0
    left_aug[:, -1] = left_norm if add_left_norm else 0.0
    size = len(left) * len(right_aug)
    out = None
    if workspace is not None and workspace.size >= size:
        out = workspace[:size].reshape(len(left), len(right_aug))
    scores = np.matmul(left_aug, right_aug.T, out=out)
    coef = (4.0 * left.shape[1] + 16.0) * _F32_UNIT
    tol = coef * (left_norm.astype(np.float64) + float(right_aug[:, -2].max(initial=0.0))) * 1.01
    return scores, tol


def _l1_scores(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L1 distances accumulated per dimension in float64, with a bound on their rounding error."""
    scores = np.zeros((len(left), len(right)), dtype=np.float64)
    for k in range(left.shape[1]):
        scores += np.abs(np.subtract.outer(left[:, k].astype(np.float64), right[:, k].astype(np.float64)))
    unit = float(np.finfo(np.float64).eps)
    return scores, 4.0 * (left.shape[1] + 2.0) * unit * scores.max(axis=1, initial=0.0)


def _augment_right(right: np.ndarray) -> np.ndarray:
    """Rows ``[x, ‖x‖², 1]``: one product with ``[−2a, 1, ‖a‖²]`` gives ‖a−x‖².

    Shape: ``(K, D) -> (K, D+2)``.
    """
    out = np.empty((len(right), right.shape[1] + 2), np.float32)
    out[:, :-2] = right
    out[:, -2] = np.einsum("ij,ij->i", right, right)
    out[:, -1] = 1.0
    return out


def _to_score(distances: np.ndarray, metric: str) -> np.ndarray:
    """Distances to the score space of _score_matrix."""
    return distances if metric == "L1" else distances * distances


def _upper_limit(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 limits cast to ``dtype`` rounding up, so ``x <= limit`` never loses an entry."""
    cast = values.astype(dtype)
    return np.where(cast < values, np.nextafter(cast, np.inf), cast).astype(dtype)


def _nearest_neighbours(
    reference: np.ndarray, target: np.ndarray, metric: str, workspace: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest target of each reference row (first index on ties) and its distance.

    Rows whose fast-score minimum is not clear by the error bound are re-decided with direct
    float64 distances. Shape: ``(N, D), (M, D) -> (N,), (N,)``.
    """
    scores, tol = _score_matrix(reference, target, metric, add_left_norm=False, workspace=workspace)
    return _nearest_from_scores(scores, tol, reference, target, metric)


def _nearest_from_scores(
    scores: np.ndarray, tol: np.ndarray, reference: np.ndarray, target: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """_nearest_neighbours given the fast scores and their per-row error bound."""
    nearest = scores.argmin(axis=1)
    every = np.arange(len(scores))
    lowest = scores[every, nearest]
    limit = _upper_limit(lowest.astype(np.float64) + 2.0 * tol, scores.dtype)
    scores[every, nearest] = np.inf
    unclear = np.flatnonzero(scores.min(axis=1) <= limit)
    scores[every, nearest] = lowest
    if len(unclear):
        rows, cols = np.nonzero(scores[unclear] <= limit[unclear, None])
        rows = unclear[rows]
        exact = _indexed_distances(reference, rows, target, cols, metric)
        order = np.lexsort((cols, exact, rows))
        rows, cols = rows[order], cols[order]
        first = np.ones(len(rows), dtype=bool)
        first[1:] = rows[1:] != rows[:-1]
        nearest[rows[first]] = cols[first]
    return nearest, _pair_distances(reference, target[nearest], metric)


# ----------------------------------------------------------------------------- verification
def _row_keys(sizes: np.ndarray, seq: np.ndarray, image: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Row of (seq, image id 0..5, idx) in a per-noise table of the images ref, n1..n5 of all sequences."""
    offsets = np.concatenate([[0], np.cumsum(6 * sizes)[:-1]])
    return offsets[seq] + image * sizes[seq] + idx


def _fill_noise_table(arrays: Sequence[np.ndarray], noise: str, table: np.ndarray) -> np.ndarray:
    """Copy images ref, n1..n5 of every sequence row-wise into ``table``. Shape: ``-> (6·ΣN, D)``."""
    images = [0] + [IMAGE_TYPES.index(f"{noise}{k}") for k in range(1, NUM_TARGETS + 1)]
    row = 0
    for array in arrays:
        for image in images:
            table[row : row + array.shape[1]] = array[image]
            row += array.shape[1]
    return table


def _distances_by_keys(
    table: np.ndarray, left: np.ndarray, rights: Sequence[np.ndarray], metric: str, outs: Sequence[np.ndarray]
) -> None:
    """Fill ``outs[i][r] = d(table[left[r]], table[rights[i][r]])`` in row blocks with reused buffers.

    Same arithmetic as _pair_distances (float64 differences, then einsum or abs-sum).
    """
    size, dim = min(_PAIR_BLOCK, max(len(left), 1)), table.shape[1]
    gathered = np.empty((size, dim), np.float32)
    left64, diff = np.empty((size, dim), np.float64), np.empty((size, dim), np.float64)
    for start in range(0, len(left), size):
        stop = min(start + size, len(left))
        m = stop - start
        np.take(table, left[start:stop], axis=0, out=gathered[:m])
        np.copyto(left64[:m], gathered[:m])
        for right, out in zip(rights, outs):
            np.take(table, right[start:stop], axis=0, out=gathered[:m])
            np.copyto(diff[:m], gathered[:m])
            np.subtract(left64[:m], diff[:m], out=diff[:m])
            if metric == "L1":
                out[start:stop] = np.abs(diff[:m], out=diff[:m]).sum(axis=1)
            else:
                out[start:stop] = np.sqrt(np.einsum("ij,ij->i", diff[:m], diff[:m]))


def _verification_distances(
    arrays: Sequence[np.ndarray], lists: Mapping[str, np.ndarray], metric: str, progress: bool | None
) -> dict[str, dict[str, np.ndarray]]:
    """Pair distances of every verification list at every noise level (lists sharing left pairs share gathers)."""
    sizes = np.array([a.shape[1] for a in arrays], dtype=np.int64)
    groups: list[tuple[np.ndarray, list[str]]] = []
    for kind, rows in lists.items():
        match = [g for g in groups if np.array_equal(lists[g[1][0]][:, :3], rows[:, :3])]
        if match:
            match[0][1].append(kind)
        else:
            groups.append((np.argsort(_row_keys(sizes, *rows[:, :3].T), kind="stable"), [kind]))
    keys = [
        (
            order,
            _row_keys(sizes, *lists[kinds[0]][order, :3].T),
            [_row_keys(sizes, *lists[k][order, 3:].T) for k in kinds],
        )
        for order, kinds in groups
    ]
    table = np.empty((6 * int(sizes.sum()), arrays[0].shape[2]), np.float32)
    result: dict[str, dict[str, np.ndarray]] = {noise: {} for noise in NOISE_LEVELS}
    with _progress_bar(len(NOISE_LEVELS) * len(lists), "verification", progress) as bar:
        for noise in NOISE_LEVELS:
            _fill_noise_table(arrays, noise, table)
            for (order, left, rights), (_, kinds) in zip(keys, groups):
                sorted_out = [np.empty(len(order)) for _ in kinds]
                _parallel_distances(table, left, rights, metric, sorted_out)
                for kind, values in zip(kinds, sorted_out):
                    result[noise][kind] = np.empty_like(values)
                    result[noise][kind][order] = values
                bar.update(len(kinds))
    return result


def _parallel_distances(
    table: np.ndarray, left: np.ndarray, rights: Sequence[np.ndarray], metric: str, outs: Sequence[np.ndarray]
) -> None:
    """_distances_by_keys split over _NUM_THREADS contiguous row ranges (numpy releases the GIL)."""
    edges = np.linspace(0, len(left), _NUM_THREADS + 1).astype(int)
    parts = [slice(edges[i], edges[i + 1]) for i in range(_NUM_THREADS)]
    with ThreadPoolExecutor(_NUM_THREADS) as pool:
        jobs = [
            pool.submit(_distances_by_keys, table, left[p], [r[p] for r in rights], metric, [o[p] for o in outs])
            for p in parts
        ]
        for job in jobs:
            job.result()


def _imbalanced_ap(sorted_negatives: np.ndarray, positives: np.ndarray) -> float:
    """AP of [all negatives, first ⌊0.2·N_pos⌋ positives], ties ranking negatives first."""
    used = np.sort(positives[: int(len(positives) * 0.2)])
    if len(used) == 0:
        return 0.0
    before = np.searchsorted(sorted_negatives, used, side="right")
    ranks = np.arange(1, len(used) + 1) + before
    return float(_ap_from_ranks(ranks, len(used)))


def _balanced_auc_sorted(sorted_negatives: np.ndarray, sorted_positives: np.ndarray) -> float:
    """ROC AUC of [all negatives, all positives], ties ranking negatives first."""
    if len(sorted_negatives) == 0 or len(sorted_positives) == 0:
        return 0.0
    positives_before = np.searchsorted(sorted_positives, sorted_negatives, side="left")
    return float(positives_before.sum() / (len(sorted_negatives) * len(sorted_positives)))


def _verification_noise(lists: Mapping[str, np.ndarray]) -> tuple[dict[str, float], dict[str, float]]:
    """Imbalanced AP and balanced AUC per negative kind, for the lists of one noise level."""
    sorted_positives = np.sort(lists["pos"])
    ap, auc = {}, {}
    for kind in ("inter", "intra"):
        sorted_negatives = np.sort(lists[kind])
        ap[kind] = _imbalanced_ap(sorted_negatives, lists["pos"])
        auc[kind] = _balanced_auc_sorted(sorted_negatives, sorted_positives)
    return ap, auc


def _verification_tables(subsets: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]) -> dict[str, dict[str, Any]]:
    """Imbalanced AP, balanced AUC and mAP per subset, from {subset: {noise: {pos/intra/inter: d}}}."""
    jobs = [(subset, noise, lists) for subset, v in subsets.items() for noise, lists in v.items()]
    with ThreadPoolExecutor(_NUM_THREADS) as pool:
        done = list(pool.map(lambda job: _verification_noise(job[2]), jobs))
    tables: dict[str, dict[str, Any]] = {}
    for (subset, noise, _), (ap, auc) in zip(jobs, done):
        table = tables.setdefault(subset, {"ap_imbalanced": {}, "auc_balanced": {}})
        table["ap_imbalanced"][noise], table["auc_balanced"][noise] = ap, auc
    for table in tables.values():
        aps = table["ap_imbalanced"]
        table["ap_per_noise"] = {noise: float(np.mean(list(v.values()))) for noise, v in aps.items()}
        table["mAP"] = float(np.mean([value for v in aps.values() for value in v.values()]))
    return tables


def _prefix_masks(names: Sequence[str], seq_index: np.ndarray) -> dict[str, np.ndarray]:
    """Row masks per subset prefix, for the rows' sequence indices; empty subsets omitted."""
    prefixed = {p: np.array([n.startswith(p) for n in names], dtype=bool) for p in SUBSETS}
    masks = {p: flags[seq_index] for p, flags in prefixed.items()}
    return {p: m for p, m in masks.items() if m.any()}


def _verification(
    arrays: Sequence[np.ndarray], tasks: TaskSet, metric: str, progress: bool | None
) -> dict[str, Any]:
    """Verification results from prepared arrays."""
    lists = tasks.verification
    distances = _verification_distances(arrays, lists, metric, progress)
    masks = {kind: _prefix_masks(tasks.sequences, rows[:, 0]) for kind, rows in lists.items()}
    subsets: dict[str, Any] = {"all": distances}
    for prefix in masks["pos"]:
        subsets[prefix] = {
            noise: {kind: d[masks[kind][prefix]] if prefix in masks[kind] else d[:0] for kind, d in v.items()}
            for noise, v in distances.items()
        }
    tables = _verification_tables(subsets)
    result = tables.pop("all")
    result["ap_per_prefix"] = {prefix: table["mAP"] for prefix, table in tables.items()}
    result["counts"] = {kind: int(len(rows)) for kind, rows in lists.items()}
    return result


def evaluate_verification(
    descriptors: Mapping[str, np.ndarray], tasks: TaskSet, distance: str = "L2", progress: bool | None = False
) -> dict[str, Any]:
    """Patch verification (spec 3.2): imbalanced AP and balanced AUC per noise level and negative kind."""
    metric = _check_distance(distance)
    arrays = _prepare_descriptors(descriptors, tasks.sequences)
    validate_tasks(tasks, _sizes(arrays, tasks.sequences))
    _check_verification_lists(tasks)
    return _verification(arrays, tasks, metric, progress)


def _check_verification_lists(tasks: TaskSet) -> None:
    """The three verification lists must be present."""
    missing = [kind for kind in ("pos", "intra", "inter") if kind not in tasks.verification]
    if missing:
        raise ValueError(f"verification lists {missing} are missing from the task set")


# ----------------------------------------------------------------------------- matching
def _target_images(noise: str) -> list[int]:
    """IMAGE_TYPES positions of the targets 1..5 of a noise level."""
    return [IMAGE_TYPES.index(f"{noise}{k}") for k in range(1, NUM_TARGETS + 1)]


def _matching_aps(
    reference: np.ndarray, targets: np.ndarray, metric: str, workspace: np.ndarray | None = None
) -> list[float]:
    """AP per target image: ref patches ranked by their nearest-neighbour distance, P = N.

    Shape: ``(N, D), (T, N, D) -> T APs``.
    """
    aps = []
    for target in targets:
        nearest, distance = _nearest_neighbours(reference, target, metric, workspace)
        aps.append(average_precision(distance, nearest == np.arange(len(reference)), num_positives=len(reference)))
    return aps


def _matching(
    arrays: Sequence[np.ndarray], sequences: Sequence[str], metric: str, progress: bool | None
) -> dict[str, Any]:
    """Matching results from prepared arrays."""
    per_seq: dict[str, dict[str, list[float]]] = {}
    workspace = np.empty(max(a.shape[1] for a in arrays) ** 2, np.float32)
    with _progress_bar(len(sequences), "matching", progress) as bar:
        for name, array in zip(sequences, arrays):
            per_seq[name] = {
                noise: _matching_aps(array[0], array[_target_images(noise)], metric, workspace)
                for noise in NOISE_LEVELS
            }
            bar.update(1)
    table = np.array([[per_seq[name][noise] for noise in NOISE_LEVELS] for name in sequences])
    result: dict[str, Any] = {"ap_per_seq": per_seq}
    result["ap_per_noise"] = {noise: float(table[:, i].mean()) for i, noise in enumerate(NOISE_LEVELS)}
    masks = _prefix_masks(sequences, np.arange(len(sequences)))
    result["ap_per_prefix"] = {prefix: float(table[mask].mean()) for prefix, mask in masks.items()}
    result["mAP"] = float(np.mean(list(result["ap_per_noise"].values())))
    return result


def evaluate_matching(
    descriptors: Mapping[str, np.ndarray],
    sequences: Sequence[str] | TaskSet,
    distance: str = "L2",
    progress: bool | None = False,
) -> dict[str, Any]:
    """Image matching (spec 3.3): AP per test sequence, noise level and target image 1..5."""
    metric = _check_distance(distance)
    names = tuple(sequences.sequences if isinstance(sequences, TaskSet) else sequences)
    arrays = _prepare_descriptors(descriptors, names)
    return _matching(arrays, names, metric, progress)


# ----------------------------------------------------------------------------- retrieval
def _check_pools(pool_sizes: Iterable[int]) -> tuple[int, ...]:
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
    reference = _gather(arrays, seq, np.zeros_like(idx), idx)
    positives = np.empty((len(queries), len(NOISE_LEVELS), NUM_TARGETS))
    for a, noise in enumerate(NOISE_LEVELS):
        for k in range(1, NUM_TARGETS + 1):
            image = np.full_like(idx, IMAGE_TYPES.index(f"{noise}{k}"))
            positives[:, a, k - 1] = _pair_distances(reference, _gather(arrays, seq, image, idx), metric)
    return reference, positives


def _counts_below(
    entries: tuple[np.ndarray, np.ndarray, np.ndarray],
    tol: np.ndarray,
    positives: np.ndarray,
    exact_distances: Any,
    bounds: np.ndarray,
    metric: str,
) -> np.ndarray:
    """Per query, pool bound b and sorted positive j: #distractors among the first b with d < d_j.

    ``entries`` = (rows, cols, fast scores) of the distractors that may beat a positive; entries
    whose comparison the error bound ``tol`` cannot settle get their direct distance from
    ``exact_distances(rows, cols)``. Shape: ``(C, 5) positives (sorted) -> (C, len(bounds), 5)``.
    """
    rows, cols, values = entries
    thresholds = _to_score(positives, metric)
    keep = values <= thresholds[rows, -1] + tol[rows]
    rows, cols, values = rows[keep], cols[keep], values[keep][:, None]
    row_thresholds = thresholds[rows]
    bucket = (values >= row_thresholds).sum(axis=1)
    ambiguous = np.flatnonzero((np.abs(values - row_thresholds) <= tol[rows, None]).any(axis=1))
    if len(ambiguous):
        exact = exact_distances(rows[ambiguous], cols[ambiguous])
        bucket[ambiguous] = (positives[rows[ambiguous]] <= exact[:, None]).sum(axis=1)
    num_segments = len(bounds) + 1
    key = (rows * num_segments + np.searchsorted(bounds, cols, side="right")) * 6 + bucket
    hist = np.bincount(key, minlength=len(positives) * num_segments * 6)
    hist = hist.reshape(len(positives), num_segments, 6)
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
    """AP of a chunk of queries sharing one filtered distractor list (``pool_augmented``: see _augment_right).

    Shape: ``(C, D), (C, 3, 5), (K, D) -> (C, 3, len(slots))``.
    """
    scores, tol = _score_matrix(queries_ref, pool_ref, metric, right_augmented=pool_augmented, workspace=workspace)
    ordered = np.sort(positives, axis=2)
    limit = _upper_limit(_to_score(ordered[:, :, -1], metric).max(axis=1) + tol, scores.dtype)
    flat = np.flatnonzero(scores <= limit[:, None])
    rows, cols = np.divmod(flat, scores.shape[1])
    entries = (rows, cols, scores.reshape(-1)[flat].astype(np.float64))

    def exact_distances(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return _indexed_distances(queries_ref, r, pool_ref, c, metric)

    out = np.empty((len(queries_ref), positives.shape[1], len(slots)))
    for a in range(positives.shape[1]):
        counts = _counts_below(entries, tol, ordered[:, a], exact_distances, bounds, metric)
        ranks = np.arange(1, NUM_TARGETS + 1) + counts[:, slots, :]
        out[:, a] = _ap_from_ranks(ranks, NUM_TARGETS)
    return out


def _retrieval_ap(
    arrays: Sequence[np.ndarray], tasks: TaskSet, metric: str, pools: tuple[int, ...], progress: bool | None
) -> np.ndarray:
    """AP per query, noise level and pool size. Shape: ``-> (Q, 3, len(pools))``."""
    queries, distractors = tasks.queries, tasks.distractors
    queries_ref, positives = _positive_distances(arrays, queries, metric)
    distractors_ref = _gather(arrays, distractors[:, 0], np.zeros_like(distractors[:, 1]), distractors[:, 1])
    ap = np.empty((len(queries), len(NOISE_LEVELS), len(pools)))
    workspace = np.empty(max(_SCORE_BLOCK, len(distractors)), np.float32)
    with _progress_bar(len(queries), "retrieval", progress) as bar:
        for seq in np.unique(queries[:, 0]):
            members = np.flatnonzero(queries[:, 0] == seq)
            kept = np.flatnonzero(distractors[:, 0] != seq)[: max(pools) - NUM_TARGETS]
            num_distractors = np.minimum(np.array(pools) - NUM_TARGETS, len(kept))
            bounds = np.unique(num_distractors)
            slots = np.searchsorted(bounds, num_distractors)
            pool_ref = distractors_ref[kept]
            pool_augmented = _augment_right(pool_ref) if metric == "L2" else None
            step = max(1, _SCORE_BLOCK // max(len(kept), 1))
            for start in range(0, len(members), step):
                chunk = members[start : start + step]
                ap[chunk] = _retrieval_chunk(
                    queries_ref[chunk], positives[chunk], pool_ref, pool_augmented, bounds, slots, metric, workspace
                )
                bar.update(len(chunk))
    return ap


def _retrieval_summary(ap: np.ndarray, pools: tuple[int, ...], tasks: TaskSet) -> dict[str, Any]:
    """Aggregates of spec 3.5 from the per-query APs."""
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
        "n_queries": int(len(ap)),
        "n_distractors": int(len(tasks.distractors)),
        "pool_sizes": list(pools),
    }
    masks = _prefix_masks(tasks.sequences, tasks.queries[:, 0])
    result["ap_per_prefix"] = {p: float(ap[m].mean()) for p, m in masks.items()}
    return result


def _check_retrieval_lists(tasks: TaskSet) -> None:
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
    """Patch retrieval (spec 3.4): mean AP over queries per noise level and pool size."""
    metric = _check_distance(distance)
    pools = _check_pools(pool_sizes)
    arrays = _prepare_descriptors(descriptors, tasks.sequences)
    validate_tasks(tasks, _sizes(arrays, tasks.sequences))
    _check_retrieval_lists(tasks)
    return _retrieval_summary(_retrieval_ap(arrays, tasks, metric, pools, progress), pools, tasks)


# ----------------------------------------------------------------------------- all tasks
def evaluate(
    descriptors: Mapping[str, np.ndarray],
    tasks: TaskSet,
    distance: str = "L2",
    progress: bool | None = None,
) -> dict[str, Any]:
    """All three tasks, their summary, per-task evaluation seconds and the task provenance."""
    metric = _check_distance(distance)
    arrays = _prepare_descriptors(descriptors, tasks.sequences)
    validate_tasks(tasks, _sizes(arrays, tasks.sequences))
    _check_verification_lists(tasks)
    _check_retrieval_lists(tasks)
    results: dict[str, Any] = {"split": tasks.split, "dim": int(arrays[0].shape[2]), "distance": metric}
    results["n_sequences"] = len(tasks.sequences)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    results["verification"] = _verification(arrays, tasks, metric, progress)
    timings["verification"] = time.perf_counter() - start
    start = time.perf_counter()
    results["matching"] = _matching(arrays, tasks.sequences, metric, progress)
    timings["matching"] = time.perf_counter() - start
    start = time.perf_counter()
    ap = _retrieval_ap(arrays, tasks, metric, POOL_SIZES, progress)
    results["retrieval"] = _retrieval_summary(ap, POOL_SIZES, tasks)
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
        values = {row.subset if row.subset != "all" else row.noise_level: row.mAP for row in group.itertuples()}
        lines.append(f"{task:<14}" + "".join(f"{values[c]:>10.4f}" if c in values else f"{'-':>10}" for c in columns))
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
        lines.append(
            f"  {name:<15}{ap['inter']:>10.4f}{ap['intra']:>10.4f}{auc['inter']:>11.4f}{auc['intra']:>11.4f}"
        )
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
