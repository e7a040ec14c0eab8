"""What the three HPatches tasks share: average precision, AUC, descriptor inputs and distance kernels.

AP follows ``HPATCHES_SPEC.md`` (ties broken as the official benchmark's stable sort); the
distance kernels work in float32 blocks and decide near-ties with float64 direct distances, so
rankings match the official code's. The task modules (``verification``, ``matching``, ``retrieval``)
run on them; :mod:`nhpatches.evaluation.hpatches` runs all three.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from nhpatches.core.config import IMAGE_TYPES

#: Retrieval pool sizes of the official protocol (list entries kept before ranking).
POOL_SIZES: tuple[int, ...] = (100, 500, 1000, 5000, 10000, 15000, 20000)
#: Supported distances.
DISTANCES: tuple[str, ...] = ("L2", "L1")
#: Sequence-name prefixes of the two HPatches subsets (illumination, viewpoint).
SUBSETS: tuple[str, ...] = ("i_", "v_")
#: Number of positives of a retrieval query (targets 1..5).
NUM_TARGETS = 5
TINY = 1e-10
ROW_BLOCK = 256
PAIR_BLOCK = 1024
NUM_THREADS = max(1, min(8, os.cpu_count() or 1))  # numpy releases the GIL in the distance kernels and BLAS
SCORE_BLOCK = 1 << 22
_F32_UNIT = float(np.finfo(np.float32).eps) / 2


# ----------------------------------------------------------------------------- AP and AUC
def ap_from_ranks(ranks: np.ndarray, num_positives: int) -> np.ndarray:
    """Spec 3.1 AP from the sorted 1-based ranks of the retrieved positives (last axis).

    Shape: ``(..., p) -> (...)``.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if num_positives <= 0:
        return np.zeros(ranks.shape[:-1])
    j = np.arange(1, ranks.shape[-1] + 1, dtype=np.float64)
    before = np.maximum(j - 1, TINY) / np.maximum(ranks - 1, TINY)
    return (0.5 * (j / ranks + before)).sum(axis=-1) / num_positives


def check_ranked_input(distances: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (distances, labels) pair of 1-D arrays of equal length."""
    dist = np.asarray(distances, dtype=np.float64)
    lab = np.asarray(labels)
    if dist.ndim != 1 or lab.shape != dist.shape:
        raise ValueError(f"distances and labels must be 1-D of equal length, got {dist.shape} and {lab.shape}")
    if not np.all(np.isfinite(dist)):
        raise ValueError("distances must be finite (no NaN or inf)")
    if not np.all((lab == 0) | (lab == 1)):
        raise ValueError("labels must be 0/1 or boolean")
    return dist, lab.astype(bool)


def average_precision(distances: Any, labels: Any, num_positives: int | None = None) -> float:
    """AP of spec 3.1 over the list ranked by ascending distance (stable: ties keep list order)."""
    dist, lab = check_ranked_input(distances, labels)
    found = int(lab.sum())
    total = found if num_positives is None else int(num_positives)
    if total < found:
        raise ValueError(f"num_positives={total} is smaller than the {found} positives in labels")
    order = np.argsort(dist, kind="stable")
    ranks = np.flatnonzero(lab[order]) + 1
    return float(ap_from_ranks(ranks, total))


def balanced_auc(distances: Any, labels: Any) -> float:
    """Area under the ROC curve (trapezoid of tpr over fpr) of the stably ranked list."""
    dist, lab = check_ranked_input(distances, labels)
    ranked = lab[np.argsort(dist, kind="stable")]
    positives, negatives = int(ranked.sum()), int((~ranked).sum())
    if positives == 0 or negatives == 0:
        return 0.0
    positives_before = np.cumsum(ranked)[~ranked]
    return float(positives_before.sum() / (positives * negatives))


# ----------------------------------------------------------------------------- inputs
def prepare_descriptors(descriptors: Mapping[str, np.ndarray], sequences: Sequence[str]) -> list[np.ndarray]:
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


def check_distance(distance: str) -> str:
    """Validate the distance name."""
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; expected one of {DISTANCES}")
    return distance


def array_sizes(arrays: Sequence[np.ndarray], sequences: Sequence[str]) -> dict[str, int]:
    """Patches per sequence."""
    return {name: int(a.shape[1]) for name, a in zip(sequences, arrays, strict=True)}


def prefix_masks(names: Sequence[str], seq_index: np.ndarray) -> dict[str, np.ndarray]:
    """Row masks per subset prefix (``SUBSETS``) for rows with sequence indices ``seq_index``; empty subsets omitted.

    Shape: ``(M,) -> {prefix: (M,) bool}``.
    """
    prefixed = {p: np.array([n.startswith(p) for n in names], dtype=bool) for p in SUBSETS}
    masks = {p: flags[seq_index] for p, flags in prefixed.items()}
    return {p: m for p, m in masks.items() if m.any()}


def progress_bar(total: int, desc: str, progress: bool | None) -> Any:
    """A tqdm bar: shown if progress is True, or if None and stderr is a terminal."""
    import sys

    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if progress is None else bool(progress)
    return tqdm(total=total, desc=desc, disable=not show, leave=False, file=sys.stderr)


# ----------------------------------------------------------------------------- threads
@contextlib.contextmanager
def single_threaded_blas() -> Iterator[int]:
    """How many worker threads to run independent blocks on inside the block.

    NUM_THREADS, with BLAS held to one thread each (threadpoolctl), or 1 where threadpoolctl is missing
    (BLAS keeps its own).

    A multi-threaded BLAS call (OpenBLAS: one thread per core) waits for all its threads at every call
    and spins them between calls; on a shared machine, where other processes hold the cores, that costs
    more than the products (matching ran 5x slower on 2 busy cores). Independent blocks on threads of our
    own, each calling a one-thread BLAS, keep the parallelism of an idle machine without the waiting.
    The limit is process-wide while the block runs.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield 1
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield NUM_THREADS


def map_blocks(function: Callable[[Any], Any], items: Iterable[Any], workers: int) -> list[Any]:
    """``[function(item) for item in items]``, on ``workers`` threads when more than one (order kept)."""
    if workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))


# ----------------------------------------------------------------------------- distances
def pair_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Row-wise distances in float64, computed directly from the differences.

    Works in blocks of ROW_BLOCK rows with two small float64 buffers (large fresh temporaries
    cost more in page faults than the arithmetic). Shape: ``(M, D), (M, D) -> (M,)``.
    """
    out = np.empty(len(a), dtype=np.float64)
    size = min(ROW_BLOCK, max(len(a), 1))
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


def indexed_distances(
    left: np.ndarray, left_rows: np.ndarray, right: np.ndarray, right_rows: np.ndarray, metric: str
) -> np.ndarray:
    """Direct distances between ``left[left_rows]`` and ``right[right_rows]``, in chunks."""
    out = np.empty(len(left_rows), dtype=np.float64)
    for start in range(0, len(left_rows), ROW_BLOCK):
        part = slice(start, start + ROW_BLOCK)
        out[part] = pair_distances(
            np.take(left, left_rows[part], axis=0), np.take(right, right_rows[part], axis=0), metric
        )
    return out


def gather(arrays: Sequence[np.ndarray], seq: np.ndarray, image: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Descriptor rows ``arrays[seq][image, idx]`` grouped by sequence.

    Shape: ``(M,), (M,), (M,) -> (M, D)``.
    """
    out = np.empty((len(seq), arrays[0].shape[2]), dtype=np.float32)
    order = np.argsort(seq, kind="stable")
    bounds = np.searchsorted(seq[order], np.arange(len(arrays) + 1))
    for u in np.flatnonzero(np.diff(bounds)):
        rows = order[bounds[u] : bounds[u + 1]]
        array = arrays[int(u)]
        flat = array.reshape(-1, array.shape[2])
        out[rows] = np.take(flat, image[rows] * array.shape[1] + idx[rows], axis=0)
    return out


def score_matrix(
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
    ``‖a_i‖²`` (enough to rank within a row); ``right_augmented`` = augment_right(right), if
    already computed; ``workspace``: a flat float32 array of at least C·K entries reused for the
    scores (fresh multi-MB arrays cost page faults). Shape: ``(C, D), (K, D) -> (C, K), (C,)``.
    """
    if metric == "L1":
        return l1_scores(left, right)
    left_aug, left_norm = augment_left(left, add_left_norm)
    right_aug = augment_right(right) if right_augmented is None else right_augmented
    size = len(left) * len(right_aug)
    out = None
    if workspace is not None and workspace.size >= size:
        out = workspace[:size].reshape(len(left), len(right_aug))
    scores = np.matmul(left_aug, right_aug.T, out=out)
    return scores, l2_tolerance(left_norm, right_aug, left.shape[1])


def augment_left(left: np.ndarray, add_left_norm: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[−2a, 1, ‖a‖²]`` (``‖a‖²`` left out, as 0, if not ``add_left_norm``) and the float32 ``‖a‖²``.

    Shape: ``(C, D) -> (C, D+2), (C,)``.
    """
    left_norm = np.einsum("ij,ij->i", left, left)
    left_aug = np.empty((len(left), left.shape[1] + 2), np.float32)
    np.multiply(left, np.float32(-2.0), out=left_aug[:, :-2])
    left_aug[:, -2] = 1.0
    left_aug[:, -1] = left_norm if add_left_norm else 0.0
    return left_aug, left_norm


def l2_tolerance(left_norm: np.ndarray, right_aug: np.ndarray, dim: int) -> np.ndarray:
    """Per-row bound on the float32 rounding error of the L2 scores of augment_left(·) @ right_aug.T.

    Shape: ``(C,), (K, D+2) -> (C,)`` float64.
    """
    coef = (4.0 * dim + 16.0) * _F32_UNIT
    return coef * (left_norm.astype(np.float64) + float(right_aug[:, -2].max(initial=0.0))) * 1.01


def l1_scores(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L1 distances accumulated per dimension in float64, with a bound on their rounding error."""
    scores = np.zeros((len(left), len(right)), dtype=np.float64)
    for k in range(left.shape[1]):
        scores += np.abs(np.subtract.outer(left[:, k].astype(np.float64), right[:, k].astype(np.float64)))
    unit = float(np.finfo(np.float64).eps)
    return scores, 4.0 * (left.shape[1] + 2.0) * unit * scores.max(axis=1, initial=0.0)


def augment_right(right: np.ndarray) -> np.ndarray:
    """Rows ``[x, ‖x‖², 1]``: one product with ``[−2a, 1, ‖a‖²]`` gives ‖a−x‖².

    Shape: ``(K, D) -> (K, D+2)``.
    """
    out = np.empty((len(right), right.shape[1] + 2), np.float32)
    out[:, :-2] = right
    out[:, -2] = np.einsum("ij,ij->i", right, right)
    out[:, -1] = 1.0
    return out


def to_score(distances: np.ndarray, metric: str) -> np.ndarray:
    """Distances to the score space of score_matrix."""
    return distances if metric == "L1" else distances * distances


def upper_limit(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 limits cast to ``dtype`` rounding up, so ``x <= limit`` never loses an entry."""
    cast = values.astype(dtype)
    return np.where(cast < values, np.nextafter(cast, np.inf), cast).astype(dtype)


def nearest_neighbours(
    reference: np.ndarray, target: np.ndarray, metric: str, workspace: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest target of each reference row (first index on ties) and its distance.

    Rows whose fast-score minimum is not clear by the error bound are re-decided with direct
    float64 distances. Shape: ``(N, D), (M, D) -> (N,), (N,)``.
    """
    scores, tol = score_matrix(reference, target, metric, add_left_norm=False, workspace=workspace)
    return nearest_from_scores(scores, tol, reference, target, metric)


def nearest_from_scores(
    scores: np.ndarray, tol: np.ndarray, reference: np.ndarray, target: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """nearest_neighbours given the fast scores and their per-row error bound."""
    nearest = scores.argmin(axis=1)
    every = np.arange(len(scores))
    lowest = scores[every, nearest]
    limit = upper_limit(lowest.astype(np.float64) + 2.0 * tol, scores.dtype)
    scores[every, nearest] = np.inf
    unclear = np.flatnonzero(scores.min(axis=1) <= limit)
    scores[every, nearest] = lowest
    if len(unclear):
        rows, cols = np.nonzero(scores[unclear] <= limit[unclear, None])
        rows = unclear[rows]
        exact = indexed_distances(reference, rows, target, cols, metric)
        order = np.lexsort((cols, exact, rows))
        rows, cols = rows[order], cols[order]
        first = np.ones(len(rows), dtype=bool)
        first[1:] = rows[1:] != rows[:-1]
        nearest[rows[first]] = cols[first]
    return nearest, pair_distances(reference, target[nearest], metric)
