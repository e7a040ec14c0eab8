"""Speed and memory of the HPatches evaluation at split-a scale, against a per-pair / per-query loop.

Synthetic 128-d float32 descriptors (a per-point vector plus noise growing e < h < t, L2-normalised)
for 40 test sequences of about 1,500 patches; task files generated with recipes V and R
(3 x 1,000,000 verification pairs, 10,000 queries, 20,000 distractors). Prints the seconds of each
task, the peak resident memory, and the speed ratio against the loops of
``nhpatches.evaluation.reference`` (a literal transcription of the official code, also the tests'
reference), run on a subsample in the same process; the loop's time is extrapolated to full scale
(and labelled as such). Both must give identical numbers on the subsample.

Usage: ``python benchmarks/bench_evaluation.py [--scale 0.1] [--seed 0]``
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time
from collections.abc import Mapping

import numpy as np

from nhpatches.core.config import IMAGE_TYPES
from nhpatches.data.tasks import TaskSet, generate_tasks
from nhpatches.evaluation import (
    evaluate,
    evaluate_matching,
    evaluate_retrieval,
    evaluate_verification,
)
from nhpatches.evaluation.reference import (
    reference_matching,
    reference_retrieval,
    reference_verification,
    retrieval_table,
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
    loop, seconds = timed(reference_verification, descriptors, small)
    fast = evaluate_verification(descriptors, small)["ap_imbalanced"]
    out["verification"] = (seconds, seconds * len(tasks.verification["pos"]) / pairs, max_difference(fast, loop))
    names = tasks.sequences[:LOOP_SEQUENCES]
    loop, seconds = timed(reference_matching, descriptors, names)
    fast = evaluate_matching(descriptors, names)["ap_per_seq"]
    out["matching"] = (seconds, seconds * len(tasks.sequences) / len(names), max_difference(fast, loop))
    loop, seconds = timed(reference_retrieval, descriptors, small)
    fast = evaluate_retrieval(descriptors, small)["ap_per_noise_pool"]
    out["retrieval"] = (
        seconds,
        seconds * len(tasks.queries) / len(small.queries),
        max_difference(fast, retrieval_table(loop)),
    )
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
        f"{'task':<13}{'fast s':>9}{'mAP':>9}{'loop s (subsample)':>20}"
        f"{'loop s (extrapolated)':>23}{'ratio':>8}{'max |diff|':>12}"
    )
    for task, seconds in results["timings_s"].items():
        sub, full, diff = loops[task]
        print(
            f"{task:<13}{seconds:>9.2f}{results[task]['mAP']:>9.4f}{sub:>20.2f}"
            f"{full:>23.1f}{full / seconds:>7.0f}x{diff:>12.1e}"
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
