"""Task sets generated with recipes V (verification pairs) and R (retrieval lists) of spec section 3.6.

Both recipes draw with numpy's ``default_rng`` (deterministic by seed) and are vectorised. They
serve datasets without official lists, and the verification side of the genuine
``hpatches-release`` (whose official verification lists are not available offline).
:func:`focus_tasks` narrows a task set to the questions about one sequence.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from nhpatches.data.tasks.taskset import NUM_DISTRACTORS, NUM_PAIRS, NUM_QUERIES, TaskSet, task_counts

DEFAULT_SEED = 42
#: Clean ref patches with a pixel std at or below this (0..255 scale) are not used for retrieval.
MIN_PATCH_STD = 10.0


def _patch_counts(sizes: Mapping[str, int]) -> np.ndarray:
    """Patch counts as an int64 array in mapping order, validated positive."""
    if not sizes:
        raise ValueError("sizes must name at least one test sequence")
    counts = np.array([int(n) for n in sizes.values()], dtype=np.int64)
    bad = [name for name, n in zip(sizes, counts, strict=True) if n < 1]
    if bad:
        raise ValueError(f"sequences {bad} have no patches")
    return counts


def generate_verification_pairs(sizes: Mapping[str, int], num_pairs: int, seed: int) -> dict[str, np.ndarray]:
    """Recipe V: pos/intra/inter pair lists (M, 6) drawn in the spec's order."""
    counts = _patch_counts(sizes)
    small = [name for name, n in zip(sizes, counts, strict=True) if n < 2]
    if small:
        raise ValueError(f"verification needs at least 2 patches per sequence; {small} have fewer")
    rng = np.random.default_rng(seed)
    total = len(counts)
    s = rng.integers(0, total, num_pairs)
    n = counts[s]
    a = rng.integers(0, n)
    b = (a + rng.integers(1, n)) % n
    t1 = rng.integers(0, 5, num_pairs)
    t2 = (t1 + rng.integers(1, 5, num_pairs)) % 5
    s2 = rng.integers(0, total, num_pairs)
    c = rng.integers(0, counts[s2])
    return {
        "pos": np.stack([s, t1, a, s, t2, a], axis=1),
        "intra": np.stack([s, t1, a, s, t2, b], axis=1),
        "inter": np.stack([s, t1, a, s2, t2, c], axis=1),
    }


def _textured(seq: np.ndarray, idx: np.ndarray, texture: list[np.ndarray] | None) -> np.ndarray:
    """Mask of candidates whose clean ref patch has pixel std above MIN_PATCH_STD."""
    if texture is None:
        return np.ones(len(seq), dtype=bool)
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in texture])])
    return np.concatenate(texture)[offsets[seq] + idx]


def _first_unique(seq: np.ndarray, idx: np.ndarray, width: int) -> np.ndarray:
    """Positions of the first occurrence of each (seq, idx), in draw order."""
    _, first = np.unique(seq * width + idx, return_index=True)
    return np.sort(first)


def generate_retrieval_lists(
    sizes: Mapping[str, int],
    num_queries: int,
    num_distractors: int,
    seed: int,
    clean_ref: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Recipe R: (Q, 2) queries and (D, 2) distractors (seq_index, idx), disjoint, deduplicated."""
    counts = _patch_counts(sizes)
    texture = _texture_flags(sizes, clean_ref)
    rng = np.random.default_rng(seed)
    qs = rng.integers(0, len(counts), 4 * num_queries)
    qi = rng.integers(0, counts[qs])
    ds = rng.integers(0, len(counts), 10 * num_distractors)
    di = rng.integers(0, counts[ds])
    width = int(counts.max())
    keep_q, keep_d = _textured(qs, qi, texture), _textured(ds, di, texture)
    qs, qi, ds, di = qs[keep_q], qi[keep_q], ds[keep_d], di[keep_d]
    first = _first_unique(qs, qi, width)[:num_queries]
    queries = np.stack([qs[first], qi[first]], axis=1)
    first = _first_unique(ds, di, width)
    not_query = ~np.isin(ds[first] * width + di[first], queries[:, 0] * width + queries[:, 1])
    first = first[not_query][:num_distractors]
    return queries, np.stack([ds[first], di[first]], axis=1)


def _texture_flags(sizes: Mapping[str, int], clean_ref: Mapping[str, np.ndarray] | None) -> list[np.ndarray] | None:
    """Per sequence, whether each clean ref patch passes the texture filter (std > 10)."""
    if clean_ref is None:
        return None
    flags = []
    for name, count in sizes.items():
        if name not in clean_ref:
            raise ValueError(f"clean_ref has no patches for sequence {name!r}")
        patches = np.asarray(clean_ref[name])
        if patches.ndim != 3 or len(patches) != count:
            raise ValueError(
                f"clean_ref[{name!r}] has shape {patches.shape}; expected ({count}, P, P) clean ref patches"
            )
        flags.append(patches.reshape(count, -1).astype(np.float64).std(axis=1) > MIN_PATCH_STD)
    return flags


def generate_tasks(
    sizes: Mapping[str, int],
    split: str,
    seed: int = DEFAULT_SEED,
    num_pairs: int = NUM_PAIRS,
    num_queries: int = NUM_QUERIES,
    num_distractors: int = NUM_DISTRACTORS,
    clean_ref: Mapping[str, np.ndarray] | None = None,
) -> TaskSet:
    """Task set for any dataset: recipe V and recipe R (spec 3.6), both seeded with ``seed``.

    ``sizes`` maps the split's test sequences, in split order, to their patch counts.
    """
    sequences = tuple(sizes)
    verification = generate_verification_pairs(sizes, num_pairs, seed)
    queries, distractors = generate_retrieval_lists(sizes, num_queries, num_distractors, seed, clean_ref)
    provenance = {
        "source": "generated (recipes V and R of spec 3.6)",
        "split": split,
        "verification_seed": seed,
        "retrieval_seed": seed,
        "texture_filter": clean_ref is not None,
        "numpy": np.__version__,
        "requested": {"pairs": num_pairs, "queries": num_queries, "distractors": num_distractors},
        "patches_per_sequence": {name: int(n) for name, n in sizes.items()},
    }
    taskset = TaskSet(split, sequences, verification, queries, distractors, provenance)
    provenance["counts"] = task_counts(taskset)
    return taskset


def focus_tasks(taskset: TaskSet, sequence: str) -> TaskSet:
    """The task set restricted to questions about one sequence; the others only supply negatives.

    Verification keeps the pairs whose first patch is in ``sequence`` (positives and intra
    negatives lie inside it; inter negatives pair it with any sequence). Retrieval keeps the
    queries from ``sequence``; every distractor stays, and the other sequences' queries become
    distractors too (they are reference patches of other scenes). So a small real sequence can be
    scored with the HPatches protocol, with other sequences standing in for the rest of a test split.
    """
    if sequence not in taskset.sequences:
        raise ValueError(f"sequence {sequence!r} is not in the task set's sequences {taskset.sequences}")
    index = taskset.sequences.index(sequence)
    verification = {kind: rows[rows[:, 0] == index] for kind, rows in taskset.verification.items()}
    mine = taskset.queries[:, 0] == index
    queries = taskset.queries[mine]
    if not len(queries) or not all(len(rows) for rows in verification.values()):
        raise ValueError(f"the task set has no verification pairs or queries in {sequence!r}: generate more")
    distractors = np.concatenate([taskset.distractors, taskset.queries[~mine]])
    provenance = {**taskset.provenance, "focus": sequence}
    focused = TaskSet(taskset.split, taskset.sequences, verification, queries, distractors, provenance)
    provenance["counts"] = task_counts(focused)
    return focused
