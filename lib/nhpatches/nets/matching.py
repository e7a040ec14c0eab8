"""Descriptor matching: nearest neighbours by L2 distance, computed in row chunks (pure numpy).

``match_descriptors(d1, d2)`` never holds the N1 x N2 distance matrix: rows of ``d1`` are taken
``chunk`` at a time (default: about 4 M distances, 16 MB of float32, per chunk), so 100,000 x
100,000 descriptors need memory for one chunk only. Like kornia's ``match_nn`` / ``match_mnn`` /
``match_snn`` (``kornia.feature.matching``), with the mutual check and Lowe's ratio test as options.

Ties are broken deterministically: the lowest index wins, in both directions. Squared distances are
compared as |a|^2 + |b|^2 - 2 a.b (clipped at 0), in float32 when both inputs are float32 or
float16, else float64; the chunk can change them in the last bits only (BLAS blocking), so it
changes no match but a near-tie within that rounding. The distances returned are computed
directly from the matched pairs.
"""

from __future__ import annotations

import numpy as np

#: Distances held per chunk when ``chunk`` is not given (rows of d1 per chunk = this // N2).
CHUNK_ELEMENTS = 1 << 22


def _check_descriptors(d1: np.ndarray, d2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both descriptor sets as 2-d arrays of one float dtype, checked. Shape: (N1, D), (N2, D)."""
    arrays = []
    for name, descriptors in (("d1", d1), ("d2", d2)):
        array = np.asarray(descriptors)
        if array.ndim != 2:
            raise ValueError(f"{name}: expected descriptors of shape (N, D), got shape {array.shape}")
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"{name}: expected float32 or float64 descriptors, got dtype {array.dtype}")
        arrays.append(array)
    if arrays[0].shape[1] != arrays[1].shape[1]:
        raise ValueError(f"d1 and d2: expected the same dimension D, got {arrays[0].shape[1]} and {arrays[1].shape[1]}")
    dtype = np.result_type(arrays[0].dtype, arrays[1].dtype, np.float32)
    first, second = (array.astype(dtype, copy=False) for array in arrays)
    if not (np.isfinite(first).all() and np.isfinite(second).all()):
        raise ValueError("d1 and d2: expected finite descriptors (no NaN or inf)")
    return first, second


def nearest_neighbours(
    d1: np.ndarray, d2: np.ndarray, chunk: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest neighbours both ways and the second-nearest distance, in chunks of d1 rows.

    Returns, from d1 into d2: nearest index (N1,), its squared distance (N1,), the second-smallest
    squared distance (N1,) (inf when N2 < 2); from d2 into d1: nearest index (N2,) and its squared
    distance (N2,). Ties go to the lowest index. Shape: (N1, D), (N2, D) -> (N1,) x 3, (N2,) x 2
    """
    first, second = _check_descriptors(d1, d2)
    count1, count2 = len(first), len(second)
    rows = chunk if chunk is not None else max(1, CHUNK_ELEMENTS // max(count2, 1))
    if not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ValueError(f"chunk: expected a positive number of rows, got {chunk!r}")
    norms2 = np.einsum("ij,ij->i", second, second)
    nearest = np.zeros(count1, np.int64)
    best, runner_up = np.full(count1, np.inf, first.dtype), np.full(count1, np.inf, first.dtype)
    back_nearest, back_best = np.zeros(count2, np.int64), np.full(count2, np.inf, first.dtype)
    if count1 == 0 or count2 == 0:
        return nearest, best, runner_up, back_nearest, back_best
    for start in range(0, count1, rows):
        block = first[start : start + rows]
        distances = block @ second.T  # in place from here: no temporaries of the chunk's size
        distances *= -2
        distances += np.einsum("ij,ij->i", block, block)[:, None]
        distances += norms2[None, :]
        np.maximum(distances, 0, out=distances)
        index = np.arange(len(block))
        column = np.argmin(distances, axis=1)  # the first minimum: lowest index on ties
        nearest[start : start + rows] = column
        best[start : start + rows] = distances[index, column]
        back_rows = np.argmin(distances, axis=0)
        back_values = distances[back_rows, np.arange(count2)]
        better = back_values < back_best  # strict: an earlier chunk keeps a tie
        back_nearest[better], back_best[better] = back_rows[better] + start, back_values[better]
        distances[index, column] = np.inf
        runner_up[start : start + rows] = distances.min(axis=1)
    return nearest, best, runner_up, back_nearest, back_best


def match_descriptors(
    d1: np.ndarray,
    d2: np.ndarray,
    mutual: bool = True,
    ratio: float | None = None,
    chunk: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Match two descriptor sets by nearest L2 neighbour: (i, j) pairs and their distances.

    Every row i of ``d1`` is matched to its nearest row j of ``d2``; ``mutual`` keeps a pair only
    when i is also j's nearest row of ``d1`` (mutual nearest neighbours); ``ratio`` (Lowe's test,
    e.g. 0.8) keeps it only when its distance is below ``ratio`` times the distance to i's
    second-nearest row of ``d2``. ``chunk``: rows of ``d1`` per distance block (default: about 4 M
    distances per block), which never changes the result. Ties go to the lowest index.

    Shape: (N1, D), (N2, D) float -> matches (M, 2) int64 (i into d1, j into d2, increasing i),
    distances (M,) L2, float32 for float32 inputs, else float64
    """
    if ratio is not None and not 0 < ratio <= 1:
        raise ValueError(f"ratio: expected a number in (0, 1] (Lowe's test, e.g. 0.8) or None, got {ratio}")
    nearest, best, runner_up, back_nearest, _ = nearest_neighbours(d1, d2, chunk)
    keep = np.ones(len(nearest), bool) if len(back_nearest) else np.zeros(len(nearest), bool)
    if mutual and len(back_nearest):
        keep &= back_nearest[nearest] == np.arange(len(nearest))
    if ratio is not None:
        keep &= best < ratio**2 * runner_up  # squared distances: d1 < ratio * d2
    rows = np.flatnonzero(keep)
    first, second = _check_descriptors(d1, d2)
    distances = np.linalg.norm(first[rows] - second[nearest[rows]], axis=1)  # exact, whatever the chunk
    return np.stack([rows, nearest[rows]], axis=1), distances
