"""Patch verification (``HPATCHES_SPEC.md`` 3.2): imbalanced AP and balanced AUC per noise level.

Every list (pos / intra / inter) is scored at every noise level with direct float64 distances
``‖a − b‖`` between float32 descriptors. For each negative kind the imbalanced AP ranks
[all negatives, first ⌊0.2·N_pos⌋ positives] with ties ranking negatives first; the balanced AUC
ranks all negatives and all positives the same way. Both only need sorted arrays: each is sorted
once per subset of sequences (``i_`` / ``v_`` / others) and the whole list is the merge of those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from nhpatches.core.config import IMAGE_TYPES, NOISE_LEVELS
from nhpatches.data.tasks import TaskSet, validate_tasks
from nhpatches.evaluation.metrics import (
    NUM_TARGETS,
    NUM_THREADS,
    PAIR_BLOCK,
    ap_from_ranks,
    array_sizes,
    check_distance,
    prefix_masks,
    prepare_descriptors,
    progress_bar,
)

#: The three verification lists.
KINDS: tuple[str, ...] = ("pos", "intra", "inter")
#: The negative kinds, each scored against the positives.
NEGATIVES: tuple[str, ...] = ("inter", "intra")


# ----------------------------------------------------------------------------- distances
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

    The left rows of a block are gathered and widened to float64 once for all right lists; each
    right block is gathered as float32 and subtracted from them in float64 (the same numbers as
    widening both, then subtracting). Shape: ``(R, D) table, (M,) keys -> (M,) per right list``.
    """
    size, dim = min(PAIR_BLOCK, max(len(left), 1)), table.shape[1]
    gathered = np.empty((size, dim), np.float32)
    left64, diff = np.empty((size, dim), np.float64), np.empty((size, dim), np.float64)
    for start in range(0, len(left), size):
        stop = min(start + size, len(left))
        m = stop - start
        np.take(table, left[start:stop], axis=0, out=gathered[:m])
        np.copyto(left64[:m], gathered[:m])
        for right, out in zip(rights, outs, strict=False):
            np.take(table, right[start:stop], axis=0, out=gathered[:m])
            np.subtract(left64[:m], gathered[:m], out=diff[:m])
            if metric == "L1":
                np.abs(diff[:m], out=diff[:m]).sum(axis=1, out=out[start:stop])
            else:
                np.sqrt(np.einsum("ij,ij->i", diff[:m], diff[:m]), out=out[start:stop])


def _parallel_distances(
    table: np.ndarray, left: np.ndarray, rights: Sequence[np.ndarray], metric: str, outs: Sequence[np.ndarray]
) -> None:
    """_distances_by_keys split over NUM_THREADS contiguous row ranges (numpy releases the GIL)."""
    edges = np.linspace(0, len(left), NUM_THREADS + 1).astype(int)
    parts = [slice(edges[i], edges[i + 1]) for i in range(NUM_THREADS)]
    with ThreadPoolExecutor(NUM_THREADS) as pool:
        jobs = [
            pool.submit(_distances_by_keys, table, left[p], [r[p] for r in rights], metric, [o[p] for o in outs])
            for p in parts
        ]
        for job in jobs:
            job.result()


def verification_distances(
    arrays: Sequence[np.ndarray], lists: Mapping[str, np.ndarray], metric: str, progress: bool | None
) -> dict[str, dict[str, np.ndarray]]:
    """Pair distances of every verification list at every noise level, in list order.

    Lists sharing their left (s1, t1, idx1) columns share its gathers; pairs are visited in left-row
    order. Shape: ``{kind: (M, 6)} -> {noise: {kind: (M,) float64}}``.
    """
    sizes = np.array([a.shape[1] for a in arrays], dtype=np.int64)
    groups: list[tuple[np.ndarray, list[str]]] = []  # (left row keys, kinds sharing them)
    for kind, rows in lists.items():
        match = [g for g in groups if np.array_equal(lists[g[1][0]][:, :3], rows[:, :3])]
        if match:
            match[0][1].append(kind)
        else:
            groups.append((_row_keys(sizes, *rows[:, :3].T), [kind]))
    keys = []
    for left, kinds in groups:
        order = np.argsort(left)  # visits equal left rows together; the distances do not depend on the order
        keys.append((order, left[order], [_row_keys(sizes, *lists[k][:, 3:].T)[order] for k in kinds]))
    table = np.empty((6 * int(sizes.sum()), arrays[0].shape[2]), np.float32)
    result: dict[str, dict[str, np.ndarray]] = {noise: {} for noise in NOISE_LEVELS}
    with progress_bar(len(NOISE_LEVELS) * len(lists), "verification", progress) as bar:
        for noise in NOISE_LEVELS:
            _fill_noise_table(arrays, noise, table)
            for (order, left, rights), (_, kinds) in zip(keys, groups, strict=False):
                sorted_out = [np.empty(len(order)) for _ in kinds]
                _parallel_distances(table, left, rights, metric, sorted_out)
                for kind, values in zip(kinds, sorted_out, strict=False):
                    result[noise][kind] = np.empty_like(values)
                    result[noise][kind][order] = values
                bar.update(len(kinds))
    return result


# ----------------------------------------------------------------------------- AP and AUC
def imbalanced_ap(sorted_negatives: np.ndarray, used_positives: np.ndarray) -> float:
    """AP of [all negatives, the used positives], ties ranking negatives first.

    ``used_positives``: the first ⌊0.2·N_pos⌋ positives, sorted. Shape: ``(N,), (P,) -> float``.
    """
    if len(used_positives) == 0:
        return 0.0
    before = np.searchsorted(sorted_negatives, used_positives, side="right")
    ranks = np.arange(1, len(used_positives) + 1) + before
    return float(ap_from_ranks(ranks, len(used_positives)))


def balanced_auc_sorted(sorted_negatives: np.ndarray, sorted_positives: np.ndarray) -> float:
    """ROC AUC of [all negatives, all positives], ties ranking negatives first. Shape: ``(N,), (P,) -> float``."""
    if len(sorted_negatives) == 0 or len(sorted_positives) == 0:
        return 0.0
    positives_before = np.searchsorted(sorted_positives, sorted_negatives, side="left")
    return float(positives_before.sum() / (len(sorted_negatives) * len(sorted_positives)))


def _sorted_by_group(values: np.ndarray, masks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Sorted values of each masked group and of the whole list (the stable merge of the groups' sorted runs).

    ``masks``: disjoint row masks. Shape: ``(M,) -> {group: (M_g,)} plus 'all': (M,)``.
    """
    groups = {name: np.sort(values[mask]) for name, mask in masks.items()}
    covered = np.zeros(len(values), dtype=bool)
    for mask in masks.values():
        covered |= mask
    runs = [*groups.values(), np.sort(values[~covered])]
    # timsort (kind="stable") merges the concatenated sorted runs in linear time: equal to np.sort(values)
    groups["all"] = np.sort(np.concatenate(runs), kind="stable") if len(runs) > 1 else runs[0]
    return groups


def _used_positives(positives: np.ndarray) -> np.ndarray:
    """The first ⌊0.2·N_pos⌋ positives in list order, sorted. Shape: ``(P,) -> (⌊0.2·P⌋,)``."""
    return np.sort(positives[: int(len(positives) * 0.2)])


def _noise_tables(
    lists: Mapping[str, np.ndarray], masks: Mapping[str, Mapping[str, np.ndarray]], subsets: Sequence[str]
) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
    """Imbalanced AP and balanced AUC per negative kind for each subset ('all' and the prefixes), one noise level."""
    ordered = {kind: _sorted_by_group(lists[kind], masks[kind]) for kind in KINDS}
    empty = lists["pos"][:0]
    out = {}
    for subset in ("all", *subsets):
        positives = lists["pos"] if subset == "all" else lists["pos"][masks["pos"][subset]]
        used = _used_positives(positives)
        ap, auc = {}, {}
        for kind in NEGATIVES:
            negatives = ordered[kind].get(subset, empty)
            ap[kind] = imbalanced_ap(negatives, used)
            auc[kind] = balanced_auc_sorted(negatives, ordered["pos"][subset])
        out[subset] = (ap, auc)
    return out


def verification_results(
    arrays: Sequence[np.ndarray], tasks: TaskSet, metric: str, progress: bool | None
) -> dict[str, Any]:
    """Verification results from prepared arrays (the ``verification`` entry of evaluate())."""
    lists = tasks.verification
    distances = verification_distances(arrays, lists, metric, progress)
    masks = {kind: prefix_masks(tasks.sequences, rows[:, 0]) for kind, rows in lists.items()}
    subsets = list(masks["pos"])
    with ThreadPoolExecutor(NUM_THREADS) as pool:
        done = list(pool.map(lambda noise: _noise_tables(distances[noise], masks, subsets), NOISE_LEVELS))
    tables: dict[str, dict[str, Any]] = {}
    for noise, per_subset in zip(NOISE_LEVELS, done, strict=False):
        for subset, (ap, auc) in per_subset.items():
            table = tables.setdefault(subset, {"ap_imbalanced": {}, "auc_balanced": {}})
            table["ap_imbalanced"][noise], table["auc_balanced"][noise] = ap, auc
    for table in tables.values():
        aps = table["ap_imbalanced"]
        table["ap_per_noise"] = {noise: float(np.mean(list(v.values()))) for noise, v in aps.items()}
        table["mAP"] = float(np.mean([value for v in aps.values() for value in v.values()]))
    result = tables.pop("all")
    result["ap_per_prefix"] = {prefix: table["mAP"] for prefix, table in tables.items()}
    result["counts"] = {kind: len(rows) for kind, rows in lists.items()}
    return result


def check_verification_lists(tasks: TaskSet) -> None:
    """The three verification lists must be present."""
    missing = [kind for kind in KINDS if kind not in tasks.verification]
    if missing:
        raise ValueError(f"verification lists {missing} are missing from the task set")


def evaluate_verification(
    descriptors: Mapping[str, np.ndarray], tasks: TaskSet, distance: str = "L2", progress: bool | None = False
) -> dict[str, Any]:
    """Patch verification (spec 3.2): imbalanced AP and balanced AUC per noise level and negative kind.

    ``descriptors``: sequence name -> (16, N, D) array. Returns ``ap_imbalanced`` and ``auc_balanced``
    ({noise: {inter/intra: value}}), ``ap_per_noise``, ``mAP``, ``ap_per_prefix`` and ``counts``.
    """
    metric = check_distance(distance)
    arrays = prepare_descriptors(descriptors, tasks.sequences)
    validate_tasks(tasks, array_sizes(arrays, tasks.sequences))
    check_verification_lists(tasks)
    return verification_results(arrays, tasks, metric, progress)
