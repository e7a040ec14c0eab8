"""HPatches task files: splits, verification pairs and retrieval lists (spec sections 2, 3.2, 3.4, 3.6).

Task files are read and written in the official CSV layout. For datasets without official lists
they are generated with recipes V and R of the spec (numpy ``default_rng``, deterministic by seed,
vectorised). For the genuine ``hpatches-release`` data the official retrieval lists and
``splits.json`` ship with the package; the official verification lists are not available, so they
are generated with recipe V. Every TaskSet carries a provenance dict saying which of these it is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nhpatches.core.cache import atomic_path
from nhpatches.core.config import resource_path
from nhpatches.data.hpatches import read_splits_file

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
DEFAULT_SEED = 42
#: Clean ref patches with a pixel std at or below this (0..255 scale) are not used for retrieval.
MIN_PATCH_STD = 10.0


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


# ----------------------------------------------------------------------------- splits
def split_sequences(splits: Mapping[str, Any], split: str, source: str = "splits.json") -> tuple[str, ...]:
    """Test sequences of ``split``, in file order."""
    if split not in splits:
        raise ValueError(f"{source}: unknown split {split!r}; expected one of {sorted(splits)}")
    return tuple(splits[split]["test"])


# ----------------------------------------------------------------------------- recipes
def _patch_counts(sizes: Mapping[str, int]) -> np.ndarray:
    """Patch counts as an int64 array in mapping order, validated positive."""
    if not sizes:
        raise ValueError("sizes must name at least one test sequence")
    counts = np.array([int(n) for n in sizes.values()], dtype=np.int64)
    bad = [name for name, n in zip(sizes, counts) if n < 1]
    if bad:
        raise ValueError(f"sequences {bad} have no patches")
    return counts


def generate_verification_pairs(sizes: Mapping[str, int], num_pairs: int, seed: int) -> dict[str, np.ndarray]:
    """Recipe V: pos/intra/inter pair lists (M, 6) drawn in the spec's order."""
    counts = _patch_counts(sizes)
    small = [name for name, n in zip(sizes, counts) if n < 2]
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


def task_counts(taskset: TaskSet) -> dict[str, int]:
    """Rows per task list."""
    counts = {kind: len(rows) for kind, rows in taskset.verification.items()}
    counts.update(queries=len(taskset.queries), distractors=len(taskset.distractors))
    return counts


# ----------------------------------------------------------------------------- validation
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
            _check_images(rows[:, image_col], label)
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


def _check_images(images: np.ndarray, label: str) -> None:
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


# ----------------------------------------------------------------------------- files
def _write_json(path: Path, data: Any) -> None:
    """Atomically write JSON."""
    with atomic_path(path) as temp:
        temp.write_text(json.dumps(data, indent=1) + "\n")


def _write_rows(path: Path, header: tuple[str, ...], rows: np.ndarray, sequences: tuple[str, ...]) -> None:
    """Atomically write a task CSV, replacing sequence indices by names."""
    names = np.asarray(sequences, dtype=object)
    columns = {}
    for position, column in enumerate(header):
        values = rows[:, position]
        columns[column] = names[values] if column in ("s", "s1", "s2") else values
    frame = pd.DataFrame(columns)
    with atomic_path(path) as temp:
        frame.to_csv(temp, index=False)


def write_tasks(taskset: TaskSet, directory: str | os.PathLike[str]) -> None:
    """Write the five task CSVs, update splits.json and write tasks_provenance_split-NAME.json."""
    directory = Path(directory)
    provenance_path = directory / f"tasks_provenance_split-{taskset.split}.json"
    provenance_path.unlink(missing_ok=True)
    for kind, stem in VERIFICATION_FILES.items():
        _write_rows(
            directory / task_file_name(stem, taskset.split),
            VERIFICATION_HEADER,
            taskset.verification[kind],
            taskset.sequences,
        )
    _write_rows(
        directory / task_file_name(RETRIEVAL_FILES["queries"], taskset.split),
        RETRIEVAL_HEADER,
        taskset.queries,
        taskset.sequences,
    )
    _write_rows(
        directory / task_file_name(RETRIEVAL_FILES["distractors"], taskset.split),
        RETRIEVAL_HEADER,
        taskset.distractors,
        taskset.sequences,
    )
    _update_splits(directory / "splits.json", taskset.split, taskset.sequences)
    record = {key: value for key, value in taskset.provenance.items() if key != "path"}
    _write_json(provenance_path, {**record, "split": taskset.split, "counts": task_counts(taskset)})


def _update_splits(path: Path, split: str, sequences: tuple[str, ...]) -> None:
    """Add or replace one split's test list in splits.json, keeping the others."""
    splits = read_splits_file(path) if path.exists() else {}
    entry = dict(splits.get(split, {}))
    if entry.get("test") != list(sequences):
        entry = {"name": split, "test": list(sequences)}
    splits[split] = entry
    _write_json(path, splits)


def _read_rows(path: Path, header: tuple[str, ...], sequences: tuple[str, ...]) -> np.ndarray:
    """Read one task CSV into an int64 array with sequence names replaced by indices."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: task file not found")
    with path.open() as handle:
        first = handle.readline().strip()
    if tuple(part.strip() for part in first.split(",")) != header:
        raise ValueError(f"{path}: header is {first!r}; expected {','.join(header)!r}")
    names = {c: str for c in header if c in ("s", "s1", "s2")}
    try:
        frame = pd.read_csv(path, dtype=names, keep_default_na=False)
        columns = [_column(frame, c, sequences, path) for c in header]
    except (ValueError, pd.errors.ParserError) as error:
        raise ValueError(f"{path}: malformed task file ({error})") from None
    return np.stack(columns, axis=1) if columns else np.empty((0, len(header)), np.int64)


def _column(frame: pd.DataFrame, column: str, sequences: tuple[str, ...], path: Path) -> np.ndarray:
    """One column as int64: sequence names to split indices, others non-negative integers."""
    if column in ("s", "s1", "s2"):
        codes = pd.Categorical(frame[column], categories=list(sequences)).codes.astype(np.int64)
        bad = np.flatnonzero(codes < 0)
        if len(bad):
            raise ValueError(
                f"data row {bad[0] + 1}, column {column}: sequence {frame[column].iloc[bad[0]]!r} "
                f"is not a test sequence of the split"
            )
        return codes
    values = pd.to_numeric(frame[column], errors="raise")
    if not pd.api.types.is_integer_dtype(values) or (len(values) and values.min() < 0):
        raise ValueError(f"column {column}: expected non-negative integers")
    return values.to_numpy(dtype=np.int64)


def _provenance_path(directory: Path, split: str) -> Path:
    """Path of the provenance record written next to generated task files."""
    return directory / f"tasks_provenance_split-{split}.json"


def _read_provenance(directory: Path, split: str) -> dict[str, Any] | None:
    """The provenance record of ``split`` in ``directory``, or None if absent or unreadable."""
    path = _provenance_path(directory, split)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def load_tasks(directory: str | os.PathLike[str], split: str) -> TaskSet:
    """Read splits.json and the five task CSVs of ``split``; validate headers, names and image ids."""
    directory = Path(directory)
    sequences = split_sequences(read_splits_file(directory / "splits.json"), split, str(directory / "splits.json"))
    verification = {}
    for kind, stem in VERIFICATION_FILES.items():
        path = directory / task_file_name(stem, split)
        verification[kind] = _read_rows(path, VERIFICATION_HEADER, sequences)
        _check_images(verification[kind][:, 1], str(path))
        _check_images(verification[kind][:, 4], str(path))
    queries = _read_rows(directory / task_file_name(RETRIEVAL_FILES["queries"], split), RETRIEVAL_HEADER, sequences)
    distractors = _read_rows(
        directory / task_file_name(RETRIEVAL_FILES["distractors"], split), RETRIEVAL_HEADER, sequences
    )
    provenance = _read_provenance(directory, split) or {"source": "task files (no provenance record)"}
    taskset = TaskSet(split, sequences, verification, queries, distractors, provenance)
    provenance.update(split=split, path=str(directory.resolve()), counts=task_counts(taskset))
    return taskset


def official_tasks(
    split: str, sizes: Mapping[str, int], seed: int = DEFAULT_SEED, num_pairs: int = NUM_PAIRS
) -> TaskSet:
    """Shipped official retrieval lists and splits.json, with recipe-V verification pairs for ``sizes``."""
    directory = resource_path("hpatches_tasks")
    sequences = split_sequences(read_splits_file(directory / "splits.json"), split, "official splits.json")
    missing = [name for name in sequences if name not in sizes]
    if missing:
        raise ValueError(f"official split {split!r} needs patch counts for sequences {missing}")
    ordered = {name: int(sizes[name]) for name in sequences}
    queries = _read_rows(directory / task_file_name(RETRIEVAL_FILES["queries"], split), RETRIEVAL_HEADER, sequences)
    distractors = _read_rows(
        directory / task_file_name(RETRIEVAL_FILES["distractors"], split), RETRIEVAL_HEADER, sequences
    )
    verification = generate_verification_pairs(ordered, num_pairs, seed)
    provenance = {
        "source": "official HPatches retrieval lists (shipped); verification generated with recipe V",
        "split": split,
        "verification_seed": seed,
        "retrieval_seed": None,
        "numpy": np.__version__,
        "path": str(directory),
    }
    taskset = TaskSet(split, sequences, verification, queries, distractors, provenance)
    provenance["counts"] = task_counts(taskset)
    try:
        validate_tasks(taskset, ordered)
    except ValueError as error:
        raise ValueError(f"the official retrieval lists do not fit these patch counts: {error}") from None
    return taskset


def load_or_generate_tasks(
    directory: str | os.PathLike[str],
    split: str,
    sizes: Mapping[str, int],
    seed: int = DEFAULT_SEED,
    clean_ref: Mapping[str, np.ndarray] | None = None,
    **sizes_kw: int,
) -> TaskSet:
    """Reuse generated task files in ``directory`` if they match the request, else generate and write them.

    ``sizes_kw`` may set num_pairs, num_queries and num_distractors. Files without a matching
    ``tasks_provenance_split-NAME.json`` (written last by write_tasks) are regenerated.
    """
    directory = Path(directory)
    record = _read_provenance(directory, split)
    if record is not None and _matches(record, sizes, seed, clean_ref is not None, sizes_kw):
        try:
            taskset = load_tasks(directory, split)
            if taskset.sequences == tuple(sizes):
                validate_tasks(taskset, sizes)
                return taskset
        except (FileNotFoundError, ValueError):
            pass
    taskset = generate_tasks(sizes, split, seed=seed, clean_ref=clean_ref, **sizes_kw)
    write_tasks(taskset, directory)
    return load_tasks(directory, split)


def _matches(
    record: Mapping[str, Any], sizes: Mapping[str, int], seed: int, texture: bool, sizes_kw: Mapping[str, int]
) -> bool:
    """Whether a provenance record describes the generation requested."""
    requested = {
        "pairs": sizes_kw.get("num_pairs", NUM_PAIRS),
        "queries": sizes_kw.get("num_queries", NUM_QUERIES),
        "distractors": sizes_kw.get("num_distractors", NUM_DISTRACTORS),
    }
    unknown = set(sizes_kw) - {"num_pairs", "num_queries", "num_distractors"}
    if unknown:
        raise ValueError(f"unknown task size arguments {sorted(unknown)}")
    return (
        record.get("verification_seed") == seed
        and record.get("retrieval_seed") == seed
        and record.get("texture_filter") == texture
        and record.get("requested") == requested
        and record.get("patches_per_sequence") == {name: int(n) for name, n in sizes.items()}
        and record.get("numpy") == np.__version__
    )
