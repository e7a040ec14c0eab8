"""HPatches splits: reading and checking ``splits.json``, and the sequence names of a split.

A splits file maps each split name to ``{"name", "test": [...], "train": [...]}`` (``train``
optional); a dataset's own ``<data_dir>/splits.json`` wins over the official file shipped as
package data (``nhpatches/resources/hpatches_tasks/splits.json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nhpatches.core.config import SPLITS, resource_path
from nhpatches.data.layout import SEQUENCE_NAME, layout_error


def read_splits_file(path: Path | str) -> dict[str, Any]:
    """Read and validate a splits.json: {split: {name, test: [...], train?: [...]}}.

    Every split needs a non-empty ``test`` list; ``test`` and ``train`` list distinct sequence
    names like ``i_fog``. Errors name the file and the rule broken.
    """
    path = Path(path)
    if not path.is_file():
        raise layout_error(path, "splits file not found", FileNotFoundError)
    try:
        splits = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise layout_error(path, f"splits file is not valid JSON ({error})") from None
    if not isinstance(splits, dict) or not splits:
        raise layout_error(path, "splits file must be a JSON object keyed by split name")
    for name, entry in splits.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("test"), list) or not entry["test"]:
            raise layout_error(
                path,
                f"split {name!r} must be an object with a non-empty 'test' list (and optionally 'train' and 'name')",
            )
        for key in ("test", "train"):
            names = entry.get(key, [])
            if not isinstance(names, list) or not all(isinstance(n, str) and SEQUENCE_NAME.match(n) for n in names):
                raise layout_error(path, f"split {name!r} '{key}' must list sequence names like 'i_fog'")
            if len(set(names)) != len(names):
                raise layout_error(path, f"split {name!r} '{key}' lists a sequence twice")
    return splits


def read_splits(data_dir: Path | str) -> dict[str, Any]:
    """Splits of a dataset: <data_dir>/splits.json if present, else the official file shipped as package data."""
    local = Path(data_dir) / "splits.json"
    return read_splits_file(local if local.is_file() else resource_path("hpatches_tasks", "splits.json"))


def split_sequence_names(splits: Mapping[str, Any], split: str, subset: str) -> list[str]:
    """Sequence names of a split's subset ('test', 'train' or 'all' = test then train)."""
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(splits)} (HPatches: {SPLITS})")
    if subset not in ("test", "train", "all"):
        raise ValueError(f"unknown subset {subset!r}; expected 'test', 'train' or 'all'")
    entry = splits[split]
    names = {
        "test": entry["test"],
        "train": entry.get("train", []),
        "all": list(entry["test"]) + list(entry.get("train", [])),
    }[subset]
    if not names:
        raise ValueError(f"split {split!r} has no {subset!r} sequences")
    return list(names)


def select_sequences(names: list[str], sequences: Iterable[str] | None, split: str, subset: str) -> list[str]:
    """Restrict a split's sequence names to the requested ones (None: all), keeping split order."""
    if sequences is None:
        return names
    wanted = [sequences] if isinstance(sequences, str) else list(sequences)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(f"sequences {unknown} are not in split {split!r} subset {subset!r}")
    return [name for name in names if name in set(wanted)]
