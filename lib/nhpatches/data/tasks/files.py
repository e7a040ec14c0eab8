"""Task files in the official CSV layout: reading, writing, the shipped official lists, reuse by provenance.

Generated task files are written with a ``tasks_provenance_split-NAME.json`` record (last), which
says how they were made; :func:`load_or_generate_tasks` reuses a folder only when that record
matches the request. For the genuine ``hpatches-release`` the official retrieval lists and
``splits.json`` ship with the package (:func:`official_tasks`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nhpatches.core.cache import atomic_path
from nhpatches.core.config import resource_path
from nhpatches.data.splits import read_splits_file
from nhpatches.data.tasks.recipes import DEFAULT_SEED, generate_tasks, generate_verification_pairs
from nhpatches.data.tasks.taskset import (
    NUM_DISTRACTORS,
    NUM_PAIRS,
    NUM_QUERIES,
    RETRIEVAL_FILES,
    RETRIEVAL_HEADER,
    VERIFICATION_FILES,
    VERIFICATION_HEADER,
    TaskSet,
    check_image_ids,
    split_sequences,
    task_counts,
    task_file_name,
    validate_tasks,
)


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
    provenance_path = _provenance_path(directory, taskset.split)
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
        check_image_ids(verification[kind][:, 1], str(path))
        check_image_ids(verification[kind][:, 4], str(path))
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
