"""Speed and memory of the HPatches evaluation at split-a scale, against a per-pair / per-query loop.

Synthetic 128-d float32 descriptors (a per-point vector plus noise growing e < h < t, L2-normalised)
for 40 test sequences of about 1,500 patches; task files generated with recipes V and R
(3 x 1,000,000 verification pairs, 10,000 queries, 20,000 distractors). Prints the seconds of each
task, the peak resident memory, and the speed ratio against a straightforward loop written like the
official code, run on a subsample in the same process; the loop's time is extrapolated to full scale
(and labelled as such). Both must give identical numbers on the subsample.

Usage: ``python benchmarks/bench_evaluation.py [--scale 0.1] [--seed 0]``
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.spatial.distance import cdist

from nhpatches.core.config import IMAGE_TYPES, NOISE_LEVELS
from nhpatches.data.tasks import TaskSet, generate_tasks
from nhpatches.evaluation import (
    POOL_SIZES,
    evaluate,
    evaluate_matching,
    evaluate_retrieval,
    evaluate_verification,
)

NOISE_SIGMA = {"ref": 1.0, "e": 1.1, "h": 1.4, "t": 1.8}
LOOP_PAIRS = 20_000
LOOP_SEQUENCES = 2
LOOP_QUERIES = 100


def make_descriptors(num_sequences: int, patches: int, dim: int, seed: int) -> dict[str, np.ndarray]:
    """Synthetic (16, N, D) float32 descriptors with point structure and growing noise."""
    rng = np.random.default_rng(seed)
    names = [f"{'iv'[k % 2]}_seq{k:03d}" for k in range(num_sequences)]
    sigma = np.array(
        [NOISE_SIGMA["ref"]] + [NOISE_SIGMA[t[0]] * (1 + 0.08 * int(t[1])) for t in IMAGE_TYPES[1:]],
        dtype=np.float32,
    )
    descriptors = {}
    for name in names:
        count = int(rng.integers(int(patches * 0.9), int(patches * 1.1) + 1))
        points = rng.standard_normal((1, count, dim), dtype=np.float32)
        array = rng.standard_normal((16, count, dim), dtype=np.float32)
        array *= sigma[:, None, None]
        array += points
        array /= np.linalg.norm(array, axis=2, keepdims=True)
        descriptors[name] = array
    return descriptors


# ----------------------------------------------------------------------------- the loop
def loop_ap(distances: np.ndarray, labels: np.ndarray, num_positives: int | None = None) -> float:
    """Official-style pr(): mergesort, cumulative tp/fp, precision/recall, trapezoid."""
    positives = int(labels.sum()) if num_positives is None else num_positives
    order = np.argsort(distances, kind="mergesort")
    ranked = labels[order]
    tp = np.concatenate([[0], np.cumsum(ranked == 1)])
    fp = np.concatenate([[0], np.cumsum(ranked == 0)])
    recall = tp / max(positives, 1e-10)
    precision = np.maximum(tp, 1e-10) / np.maximum(tp + fp, 1e-10)
    return float(np.trapezoid(precision, recall))


def loop_verification(descriptors: Mapping[str, np.ndarray], tasks: TaskSet) -> dict[str, dict[str, float]]:
    """One distance per pair in a python loop, then the imbalanced AP per noise and negative kind."""
    names = tasks.sequences
    result: dict[str, dict[str, float]] = {}
    for noise in NOISE_LEVELS:
        image = ["ref"] + [f"{noise}{k}" for k in range(1, 6)]
        lists = {}
        for kind, rows in tasks.verification.items():
            lists[kind] = np.array(
                [
                    np.linalg.norm(
                        descriptors[names[s1]][IMAGE_TYPES.index(image[t1]), i1].astype(np.float64)
                        - descriptors[names[s2]][IMAGE_TYPES.index(image[t2]), i2]
                    )
                    for s1, t1, i1, s2, t2, i2 in rows
                ]
            )
        used = int(len(lists["pos"]) * 0.2)
        result[noise] = {}
        for kind in ("inter", "intra"):
            distances = np.concatenate([lists[kind], lists["pos"][:used]])
            labels = np.concatenate([np.zeros(len(lists[kind])), np.ones(used)])
            result[noise][kind] = loop_ap(distances, labels)
    return result


def loop_matching(descriptors: Mapping[str, np.ndarray], sequences: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """Matching the official way: cdist per image pair, argmin, minimal distance, AP with P = N."""
    result: dict[str, dict[str, list[float]]] = {}
    for name in sequences:
        array = descriptors[name]
        result[name] = {}
        for noise in NOISE_LEVELS:
            aps = []
            for k in range(1, 6):
                matrix = cdist(array[0].astype(np.float64), array[IMAGE_TYPES.index(f"{noise}{k}")].astype(np.float64))
                nearest = np.argmin(matrix, axis=1)
                labels = (nearest == np.arange(len(nearest))).astype(float)
                aps.append(loop_ap(matrix.min(axis=1), labels, num_positives=len(nearest)))
            result[name][noise] = aps
    return result


def loop_retrieval(descriptors: Mapping[str, np.ndarray], tasks: TaskSet) -> np.ndarray:
    """Per query and noise: 5 positive distances, filtered distractors, one pr() per pool size."""
    names = tasks.sequences
    distractors = np.array([descriptors[names[s]][0, i] for s, i in tasks.distractors], dtype=np.float64)
    queries = np.array([descriptors[names[s]][0, i] for s, i in tasks.queries], dtype=np.float64)
    matrix = cdist(queries, distractors)
    ap = np.zeros((len(tasks.queries), 3, len(POOL_SIZES)))
    for q, (s, i) in enumerate(tasks.queries):
        kept = matrix[q][tasks.distractors[:, 0] != s]
        for a, noise in enumerate(NOISE_LEVELS):
            positives = [
                cdist(
                    queries[q : q + 1],
                    descriptors[names[s]][IMAGE_TYPES.index(f"{noise}{k}"), i : i + 1].astype(np.float64),
                )[0, 0]
                for k in range(1, 6)
            ]
            distances = np.concatenate([positives, kept])
            labels = np.concatenate([np.ones(5), np.zeros(len(kept))])
            for p, pool in enumerate(POOL_SIZES):
                ap[q, a, p] = loop_ap(distances[:pool], labels[:pool])
    return ap


# ----------------------------------------------------------------------------- comparison
def subsample(tasks: TaskSet, pairs: int, queries: int) -> TaskSet:
    """The first rows of each verification list and the first queries (all distractors)."""
    lists = {kind: rows[:pairs] for kind, rows in tasks.verification.items()}
    return dataclasses.replace(tasks, verification=lists, queries=tasks.queries[:queries])


def timed(function, *args) -> tuple[object, float]:
    """Result and wall seconds of one call."""
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def max_difference(fast: Mapping, loop: Mapping) -> float:
    """Largest absolute difference between matching leaves of two nested dicts/lists."""
    if isinstance(loop, Mapping):
        return max(max_difference(fast[k], loop[k]) for k in loop)
    return float(np.max(np.abs(np.asarray(fast, dtype=float) - np.asarray(loop, dtype=float))))


def compare_loops(
    descriptors: Mapping[str, np.ndarray], tasks: TaskSet, scale: float
) -> dict[str, tuple[float, float, float]]:
    """Per task: (loop seconds on subsample, extrapolated loop seconds, max |fast - loop|)."""
    pairs = min(int(LOOP_PAIRS * max(scale, 0.05)), len(tasks.verification["pos"]))
    small = subsample(tasks, pairs, min(LOOP_QUERIES, len(tasks.queries)))
    out = {}
    loop, seconds = timed(loop_verification, descriptors, small)
    fast = evaluate_verification(descriptors, small)["ap_imbalanced"]
    out["verification"] = (seconds, seconds * len(tasks.verification["pos"]) / pairs, max_difference(fast, loop))
    names = tasks.sequences[:LOOP_SEQUENCES]
    loop, seconds = timed(loop_matching, descriptors, names)
    fast = evaluate_matching(descriptors, names)["ap_per_seq"]
    out["matching"] = (seconds, seconds * len(tasks.sequences) / len(names), max_difference(fast, loop))
    loop, seconds = timed(loop_retrieval, descriptors, small)
    fast = evaluate_retrieval(descriptors, small)["ap_per_noise_pool"]
    loop_table = {
        n: {str(k): loop[:, a, p].mean() for p, k in enumerate(POOL_SIZES)} for a, n in enumerate(NOISE_LEVELS)
    }
    out["retrieval"] = (seconds, seconds * len(tasks.queries) / len(small.queries), max_difference(fast, loop_table))
    return out


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the split-a sizes (e.g. 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    descriptors = make_descriptors(40, max(20, round(1500 * args.scale)), 128, args.seed)
    sizes = {name: array.shape[1] for name, array in descriptors.items()}
    tasks = generate_tasks(
        sizes,
        "bench",
        seed=42,
        num_pairs=round(1_000_000 * args.scale),
        num_queries=round(10_000 * args.scale),
        num_distractors=round(20_000 * args.scale),
    )
    print(
        f"scale {args.scale}: {len(sizes)} sequences, {sum(sizes.values())} points x 16 images, D=128; "
        f"pairs {tasks.provenance['counts']}"
    )
    results = evaluate(descriptors, tasks, progress=False)
    total = sum(results["timings_s"].values())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    loops = compare_loops(descriptors, tasks, args.scale)
    print(
        f"{'task':<13}{'fast s':>9}{'mAP':>9}{'loop s (subsample)':>20}{'loop s (extrapolated)':>23}"
        f"{'ratio':>8}{'max |diff|':>12}"
    )
    for task, seconds in results["timings_s"].items():
        sub, full, diff = loops[task]
        print(
            f"{task:<13}{seconds:>9.2f}{results[task]['mAP']:>9.4f}{sub:>20.2f}{full:>23.1f}"
            f"{full / seconds:>7.0f}x{diff:>12.1e}"
        )
    loop_total = sum(v[1] for v in loops.values())
    print(f"{'all three':<13}{total:>9.2f}{'':>9}{'':>20}{loop_total:>23.1f}{loop_total / total:>7.0f}x")
    print(
        f"peak RSS after the fast evaluation: {peak_mb:.0f} MB "
        f"(descriptors alone {sum(a.nbytes for a in descriptors.values()) / 2**20:.0f} MB)"
    )
    print("loop times are measured on a subsample and extrapolated linearly to full scale")


if __name__ == "__main__":
    main()
