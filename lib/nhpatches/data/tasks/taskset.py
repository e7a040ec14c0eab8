"""The task set of one split: verification pairs and retrieval lists, their file names and their checks.

A :class:`TaskSet` holds indices into its ``sequences``; :func:`validate_tasks` checks every
sequence, image id and patch index against the patch counts of the descriptors to be scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Verification list kinds, keyed as in TaskSet.verification, with their file stems.
VERIFICATION_FILES: dict[str, str] = {"pos": "verif_pos", "intra": "verif_neg_intra", "inter": "verif_neg_inter"}
#: Retrieval list stems.
RETRIEVAL_FILES: dict[str, str] = {"queries": "retr_queries", "distractors": "retr_distractors"}
VERIFICATION_HEADER: tuple[str, ...] = ("s1", "t1", "idx1", "s2", "t2", "idx2")
RETRIEVAL_HEADER: tuple[str, ...] = ("s", "idx")
#: Official list sizes.
NUM_PAIRS = 1_000_000
NUM_QUERIES = 10_000
NUM_DISTRACTORS = 20_000


@dataclass(frozen=True)
class TaskSet:
    """Verification pairs and retrieval lists of one split, with indices into ``sequences``.

    ``verification[kind]`` (kind in pos/intra/inter) is an int array (M, 6) of columns
    (seq_index1, image1, idx1, seq_index2, image2, idx2); ``queries`` and ``distractors`` are
    (Q, 2) and (D, 2) int arrays (seq_index, idx) of ref patches.
    """

    split: str
    sequences: tuple[str, ...]
    verification: dict[str, np.ndarray]
    queries: np.ndarray
    distractors: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)


def task_file_name(stem: str, split: str) -> str:
    """File name of a task list, e.g. ``verif_pos_split-a.csv``."""
    return f"{stem}_split-{split}.csv"


def split_sequences(splits: Mapping[str, Any], split: str, source: str = "splits.json") -> tuple[str, ...]:
    """Test sequences of ``split``, in file order."""
    if split not in splits:
        raise ValueError(f"{source}: unknown split {split!r}; expected one of {sorted(splits)}")
    return tuple(splits[split]["test"])


def task_counts(taskset: TaskSet) -> dict[str, int]:
    """Rows per task list."""
    counts = {kind: len(rows) for kind, rows in taskset.verification.items()}
    counts.update(queries=len(taskset.queries), distractors=len(taskset.distractors))
    return counts


def validate_tasks(taskset: TaskSet, sizes: Mapping[str, int]) -> None:
    """Check every sequence, image id and patch index of ``taskset`` against patch counts."""
    counts = []
    for name in taskset.sequences:
        if name not in sizes:
            raise ValueError(f"task set of split {taskset.split!r} names sequence {name!r} with no descriptors")
        counts.append(int(sizes[name]))
    counts_array = np.array(counts, dtype=np.int64)
    folder = Path(taskset.provenance.get("path", ""))
    for kind, rows in taskset.verification.items():
        label = str(folder / task_file_name(VERIFICATION_FILES.get(kind, kind), taskset.split))
        _check_shape(rows, 6, label)
        for seq_col, image_col, idx_col in ((0, 1, 2), (3, 4, 5)):
            _check_indices(rows[:, seq_col], rows[:, idx_col], counts_array, taskset, label)
            check_image_ids(rows[:, image_col], label)
    retrieval = {"queries": taskset.queries, "distractors": taskset.distractors}
    for stem, rows in ((RETRIEVAL_FILES[kind], rows) for kind, rows in retrieval.items()):
        label = str(folder / task_file_name(stem, taskset.split))
        _check_shape(rows, 2, label)
        _check_indices(rows[:, 0], rows[:, 1], counts_array, taskset, label)


def _check_shape(rows: np.ndarray, width: int, label: str) -> None:
    """An integer (M, width) array."""
    if not isinstance(rows, np.ndarray) or rows.ndim != 2 or rows.shape[1] != width:
        raise ValueError(f"{label}: expected an integer array of shape (M, {width})")
    if not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"{label}: expected integer entries, got dtype {rows.dtype}")


def check_image_ids(images: np.ndarray, label: str) -> None:
    """Image ids must be 0..5."""
    bad = np.flatnonzero((images < 0) | (images > 5))
    if len(bad):
        raise ValueError(f"{label}: data row {bad[0] + 1} has image id {images[bad[0]]}; expected 0..5")


def _check_indices(seq: np.ndarray, idx: np.ndarray, counts: np.ndarray, taskset: TaskSet, label: str) -> None:
    """Sequence indices into taskset.sequences and patch indices below the sequence's count."""
    bad = np.flatnonzero((seq < 0) | (seq >= len(counts)))
    if len(bad):
        raise ValueError(f"{label}: row {bad[0] + 1} has sequence index {seq[bad[0]]} outside the split")
    bad = np.flatnonzero((idx < 0) | (idx >= counts[seq]))
    if len(bad):
        row = bad[0]
        name = taskset.sequences[seq[row]]
        raise ValueError(
            f"{label}: data row {row + 1} has patch index {idx[row]} for sequence {name!r}, "
            f"which has {counts[seq[row]]} patches (expected 0..{counts[seq[row]] - 1})"
        )
