"""The three HPatches tasks as slow, literal loops: the reference the fast evaluation is checked and timed against.

A transcription of the official hpatches-benchmark python code (``HPATCHES_SPEC.md`` 3.1-3.5), written
for clarity, not speed:

* ``reference_ap`` is the official ``pr()``: a stable sort, cumulative tp / fp, precision and recall
  (with the 1e-10 guards), and the trapezoid under precision over recall;
* verification computes one float64 distance per pair in a Python loop (``np.linalg.norm`` of the
  difference), then the AP of
  [negatives, first 20 % of positives] per noise level and negative kind;
* matching takes ``scipy.spatial.distance.cdist`` per image pair, ``argmin`` and ``min`` per row;
* retrieval takes ``cdist`` from every query to every distractor, then one ``pr()`` per query, noise
  level and pool size over [5 positives, the other sequences' distractors in file order].

Two users, nothing in the package calls it: ``tests/test_evaluation.py`` checks
:func:`nhpatches.evaluation.evaluate` against it (random data with many exact ties, L2 and L1), and
``benchmarks/bench_evaluation.py`` times it as the speed baseline. Descriptors are mappings
``sequence -> (16, N, D)`` arrays in ``IMAGE_TYPES`` order, as for :func:`~nhpatches.evaluation.evaluate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist

from nhpatches.core.config import IMAGE_TYPES, NOISE_LEVELS
from nhpatches.data.tasks import TaskSet
from nhpatches.evaluation.metrics import NUM_TARGETS, POOL_SIZES, check_distance

#: scipy's names of the supported distances.
CDIST_METRICS: dict[str, str] = {"L2": "euclidean", "L1": "cityblock"}
_trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")  # noqa: B009  (numpy < 2 has only trapz)


def reference_ap(distances: Any, labels: Any, num_positives: int | None = None) -> float:
    """The official ``pr()`` AP of a list ranked by ascending distance (mergesort: ties keep list order).

    Shape: ``(M,), (M,) 0/1 -> float``.
    """
    labels = np.asarray(labels, dtype=np.float64)
    positives = labels.sum() if num_positives is None else num_positives
    ranked = labels[np.argsort(np.asarray(distances, dtype=np.float64), kind="mergesort")]
    tp = np.concatenate([[0], np.cumsum(ranked == 1)])
    fp = np.concatenate([[0], np.cumsum(ranked == 0)])
    recall = tp / max(positives, 1e-10)
    precision = np.maximum(tp, 1e-10) / np.maximum(tp + fp, 1e-10)
    return float(_trapezoid(precision, recall))


def _norm(metric: str):
    """The float64 norm of a difference vector: Euclidean (L2) or sum of absolute values (L1)."""
    return (lambda diff: np.abs(diff).sum()) if metric == "L1" else np.linalg.norm


def image_of(noise: str, image_id: int) -> int:
    """A task image id (0 = ref, 1..5 = the noise level's targets) as an IMAGE_TYPES position."""
    return 0 if image_id == 0 else IMAGE_TYPES.index(f"{noise}{image_id}")


def reference_verification(
    descriptors: Mapping[str, np.ndarray], tasks: TaskSet, metric: str = "L2"
) -> dict[str, dict[str, float]]:
    """Imbalanced AP per noise level and negative kind: {noise: {'inter': ap, 'intra': ap}}.

    Each list is [negatives, first ⌊0.2·N_pos⌋ positives] with labels built from the actual list lengths.
    """
    norm = _norm(check_distance(metric))
    names, result = tasks.sequences, {}
    for noise in NOISE_LEVELS:
        images = [image_of(noise, k) for k in range(NUM_TARGETS + 1)]
        dist = {
            kind: np.array(
                [
                    norm(
                        descriptors[names[s1]][images[t1], i1].astype(np.float64)
                        - descriptors[names[s2]][images[t2], i2]
                    )
                    for s1, t1, i1, s2, t2, i2 in rows
                ]
            )
            for kind, rows in tasks.verification.items()
        }
        used = int(len(dist["pos"]) * 0.2)
        result[noise] = {
            kind: reference_ap(
                np.concatenate([dist[kind], dist["pos"][:used]]),
                np.concatenate([np.zeros(len(dist[kind])), np.ones(used)]),
            )
            for kind in ("inter", "intra")
        }
    return result


def reference_nearest(reference: np.ndarray, target: np.ndarray, metric: str = "L2") -> tuple[np.ndarray, np.ndarray]:
    """Nearest target of each reference row (first index on ties) and its distance, via cdist.

    Shape: ``(N, D), (M, D) -> (N,), (N,)``.
    """
    matrix = cdist(reference.astype(np.float64), target.astype(np.float64), CDIST_METRICS[metric])
    return np.argmin(matrix, axis=1), np.min(matrix, axis=1)


def reference_matching(
    descriptors: Mapping[str, np.ndarray], names: Sequence[str], metric: str = "L2"
) -> dict[str, dict[str, list[float]]]:
    """Matching AP per sequence, noise level and target 1..5 (P = N): {name: {noise: [5 APs]}}."""
    metric = check_distance(metric)
    result: dict[str, dict[str, list[float]]] = {}
    for name in names:
        array = descriptors[name]
        result[name] = {}
        for noise in NOISE_LEVELS:
            aps = []
            for k in range(1, NUM_TARGETS + 1):
                nearest, distance = reference_nearest(array[0], array[image_of(noise, k)], metric)
                labels = (nearest == np.arange(len(nearest))).astype(np.float64)
                aps.append(reference_ap(distance, labels, num_positives=len(nearest)))
            result[name][noise] = aps
    return result


def reference_retrieval(
    descriptors: Mapping[str, np.ndarray],
    tasks: TaskSet,
    metric: str = "L2",
    pool_sizes: Sequence[int] = POOL_SIZES,
) -> np.ndarray:
    """Retrieval AP per query, noise level and pool size. Shape: ``-> (Q, 3, len(pool_sizes))``.

    A query's list: its 5 positives, then the distractors of other sequences in file order; each
    pool size keeps that many first entries.
    """
    metric = check_distance(metric)
    names, scipy_metric = tasks.sequences, CDIST_METRICS[metric]
    distractors = np.array([descriptors[names[s]][0, i] for s, i in tasks.distractors], dtype=np.float64)
    queries = np.array([descriptors[names[s]][0, i] for s, i in tasks.queries], dtype=np.float64)
    matrix = cdist(queries, distractors, scipy_metric)
    ap = np.zeros((len(tasks.queries), len(NOISE_LEVELS), len(pool_sizes)))
    for q, (s, i) in enumerate(tasks.queries):
        kept = matrix[q][tasks.distractors[:, 0] != s]
        for a, noise in enumerate(NOISE_LEVELS):
            positives = [
                cdist(
                    queries[q : q + 1],
                    descriptors[names[s]][image_of(noise, k), i : i + 1].astype(np.float64),
                    scipy_metric,
                )[0, 0]
                for k in range(1, NUM_TARGETS + 1)
            ]
            distances = np.concatenate([positives, kept])
            labels = np.concatenate([np.ones(NUM_TARGETS), np.zeros(len(kept))])
            for p, pool in enumerate(pool_sizes):
                ap[q, a, p] = reference_ap(distances[:pool], labels[:pool])
    return ap


def retrieval_table(ap: np.ndarray, pool_sizes: Sequence[int] = POOL_SIZES) -> dict[str, dict[str, float]]:
    """Mean retrieval AP over queries per noise level and pool size, keyed as ``ap_per_noise_pool``.

    Shape: ``(Q, 3, P) -> {noise: {str(pool): mAP}}``.
    """
    mean = ap.mean(axis=0)
    return {
        noise: {str(k): float(mean[a, p]) for p, k in enumerate(pool_sizes)} for a, noise in enumerate(NOISE_LEVELS)
    }
