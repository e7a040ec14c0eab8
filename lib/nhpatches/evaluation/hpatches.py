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

import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from nhpatches.core.config import IMAGE_TYPES, NOISE_LEVELS
from nhpatches.data.tasks import TaskSet, validate_tasks
from nhpatches.evaluation.metrics import (
    NUM_TARGETS,
    NUM_THREADS,
    PAIR_BLOCK,
    POOL_SIZES,
    SCORE_BLOCK,
    SUBSETS,
    ap_from_ranks,
    array_sizes,
    augment_right,
    average_precision,
    check_distance,
    gather,
    indexed_distances,
    nearest_neighbours,
    pair_distances,
    prepare_descriptors,
    progress_bar,
    score_matrix,
    to_score,
    upper_limit,
)


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

    Same arithmetic as pair_distances (float64 differences, then einsum or abs-sum).
    """
    size, dim = min(PAIR_BLOCK, max(len(left), 1)), table.shape[1]
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
    with progress_bar(len(NOISE_LEVELS) * len(lists), "verification", progress) as bar:
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


def _imbalanced_ap(sorted_negatives: np.ndarray, positives: np.ndarray) -> float:
    """AP of [all negatives, first ⌊0.2·N_pos⌋ positives], ties ranking negatives first."""
    used = np.sort(positives[: int(len(positives) * 0.2)])
    if len(used) == 0:
        return 0.0
    before = np.searchsorted(sorted_negatives, used, side="right")
    ranks = np.arange(1, len(used) + 1) + before
    return float(ap_from_ranks(ranks, len(used)))


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
    with ThreadPoolExecutor(NUM_THREADS) as pool:
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


def _verification(arrays: Sequence[np.ndarray], tasks: TaskSet, metric: str, progress: bool | None) -> dict[str, Any]:
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
    result["counts"] = {kind: len(rows) for kind, rows in lists.items()}
    return result


def evaluate_verification(
    descriptors: Mapping[str, np.ndarray], tasks: TaskSet, distance: str = "L2", progress: bool | None = False
) -> dict[str, Any]:
    """Patch verification (spec 3.2): imbalanced AP and balanced AUC per noise level and negative kind."""
    metric = check_distance(distance)
    arrays = prepare_descriptors(descriptors, tasks.sequences)
    validate_tasks(tasks, array_sizes(arrays, tasks.sequences))
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
        nearest, distance = nearest_neighbours(reference, target, metric, workspace)
        aps.append(average_precision(distance, nearest == np.arange(len(reference)), num_positives=len(reference)))
    return aps


def _matching(
    arrays: Sequence[np.ndarray], sequences: Sequence[str], metric: str, progress: bool | None
) -> dict[str, Any]:
    """Matching results from prepared arrays."""
    per_seq: dict[str, dict[str, list[float]]] = {}
    workspace = np.empty(max(a.shape[1] for a in arrays) ** 2, np.float32)
    with progress_bar(len(sequences), "matching", progress) as bar:
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
    metric = check_distance(distance)
    names = tuple(sequences.sequences if isinstance(sequences, TaskSet) else sequences)
    arrays = prepare_descriptors(descriptors, names)
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
    reference = gather(arrays, seq, np.zeros_like(idx), idx)
    positives = np.empty((len(queries), len(NOISE_LEVELS), NUM_TARGETS))
    for a, noise in enumerate(NOISE_LEVELS):
        for k in range(1, NUM_TARGETS + 1):
            image = np.full_like(idx, IMAGE_TYPES.index(f"{noise}{k}"))
            positives[:, a, k - 1] = pair_distances(reference, gather(arrays, seq, image, idx), metric)
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
    thresholds = to_score(positives, metric)
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
    """AP of a chunk of queries sharing one filtered distractor list (``pool_augmented``: see augment_right).

    Shape: ``(C, D), (C, 3, 5), (K, D) -> (C, 3, len(slots))``.
    """
    scores, tol = score_matrix(queries_ref, pool_ref, metric, right_augmented=pool_augmented, workspace=workspace)
    ordered = np.sort(positives, axis=2)
    limit = upper_limit(to_score(ordered[:, :, -1], metric).max(axis=1) + tol, scores.dtype)
    flat = np.flatnonzero(scores <= limit[:, None])
    rows, cols = np.divmod(flat, scores.shape[1])
    entries = (rows, cols, scores.reshape(-1)[flat].astype(np.float64))

    def exact_distances(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return indexed_distances(queries_ref, r, pool_ref, c, metric)

    out = np.empty((len(queries_ref), positives.shape[1], len(slots)))
    for a in range(positives.shape[1]):
        counts = _counts_below(entries, tol, ordered[:, a], exact_distances, bounds, metric)
        ranks = np.arange(1, NUM_TARGETS + 1) + counts[:, slots, :]
        out[:, a] = ap_from_ranks(ranks, NUM_TARGETS)
    return out


def _retrieval_ap(
    arrays: Sequence[np.ndarray], tasks: TaskSet, metric: str, pools: tuple[int, ...], progress: bool | None
) -> np.ndarray:
    """AP per query, noise level and pool size. Shape: ``-> (Q, 3, len(pools))``."""
    queries, distractors = tasks.queries, tasks.distractors
    queries_ref, positives = _positive_distances(arrays, queries, metric)
    distractors_ref = gather(arrays, distractors[:, 0], np.zeros_like(distractors[:, 1]), distractors[:, 1])
    ap = np.empty((len(queries), len(NOISE_LEVELS), len(pools)))
    workspace = np.empty(max(SCORE_BLOCK, len(distractors)), np.float32)
    with progress_bar(len(queries), "retrieval", progress) as bar:
        for seq in np.unique(queries[:, 0]):
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
        "n_queries": len(ap),
        "n_distractors": len(tasks.distractors),
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
    metric = check_distance(distance)
    pools = _check_pools(pool_sizes)
    arrays = prepare_descriptors(descriptors, tasks.sequences)
    validate_tasks(tasks, array_sizes(arrays, tasks.sequences))
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
    metric = check_distance(distance)
    arrays = prepare_descriptors(descriptors, tasks.sequences)
    validate_tasks(tasks, array_sizes(arrays, tasks.sequences))
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
