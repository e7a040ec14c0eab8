"""Descriptor folders in the official layout: ``<root>/<seq>/<type>.csv`` (or ``.npy``), N rows x D columns."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from nhpatches.core.cache import atomic_path
from nhpatches.core.config import IMAGE_TYPES


def _read_csv(path: Path) -> np.ndarray:
    """One descriptor CSV (',' or ';' separated, no header) as a float32 (N, D) array."""
    with path.open() as handle:
        first = handle.readline()
    if not first.strip():
        raise ValueError(f"{path}: empty descriptor file; expected one row of D numbers per patch")
    delimiter = ";" if ";" in first else ","
    try:
        frame = pd.read_csv(path, sep=delimiter, header=None, skipinitialspace=True, dtype=np.float32)
    except (ValueError, pd.errors.ParserError) as error:
        raise ValueError(
            f"{path}: malformed descriptor CSV; expected numbers separated by {delimiter!r}, "
            f"no header ({str(error).splitlines()[0]})"
        ) from None
    return frame.to_numpy(dtype=np.float32)


def _read_file(directory: Path, image_type: str) -> tuple[np.ndarray, Path]:
    """The descriptors of one image and their path: ``<type>.npy`` if present, else ``<type>.csv``."""
    npy, csv = directory / f"{image_type}.npy", directory / f"{image_type}.csv"
    if npy.is_file():
        try:
            array = np.load(npy, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise ValueError(f"{npy}: unreadable .npy file ({error})") from None
        path = npy
    elif csv.is_file():
        array, path = _read_csv(csv), csv
    else:
        raise FileNotFoundError(f"{csv}: descriptor file not found (expected {image_type}.csv or {image_type}.npy)")
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{path}: expected a 2-D table of N patches x D values, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise ValueError(f"{path}: contains NaN, infinite or non-numeric values")
    return array.astype(np.float32, copy=False), path


def _read_sequence(directory: Path, dim: int | None) -> np.ndarray:
    """The 16 descriptor files of one sequence as a (16, N, D) float32 array."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: sequence folder not found")
    files = [_read_file(directory, image_type) for image_type in IMAGE_TYPES]
    rows, width = files[0][0].shape
    expected = width if dim is None else dim
    for array, path in files:
        if array.shape[0] != rows:
            raise ValueError(f"{path}: has {array.shape[0]} rows; expected {rows} like ref (one row per patch)")
        if array.shape[1] != expected:
            raise ValueError(f"{path}: has {array.shape[1]} columns; expected descriptor dimension {expected}")
    return np.stack([array for array, _ in files])


def read_descriptor_dir(path: str | os.PathLike[str], sequences: Iterable[str]) -> dict[str, np.ndarray]:
    """Descriptors of ``sequences`` from ``path``: {seq: (16, N, D) float32}; other folders are ignored."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: descriptor folder not found")
    names = list(sequences)
    if not any(entry.is_dir() for entry in root.iterdir()):
        raise FileNotFoundError(f"{root}: folder is empty; expected one sub-folder per test sequence")
    descriptors: dict[str, np.ndarray] = {}
    dim = None
    for name in names:
        descriptors[name] = _read_sequence(root / name, dim)
        dim = descriptors[name].shape[2]
    return descriptors


def write_descriptor_dir(descriptors: Mapping[str, np.ndarray], path: str | os.PathLike[str], fmt: str = "csv") -> None:
    """Write {seq: (16, N, D)} descriptors as ``<path>/<seq>/<type>.csv`` or ``.npy`` (atomic per file)."""
    if fmt not in ("csv", "npy"):
        raise ValueError(f"unknown descriptor format {fmt!r}; expected 'csv' or 'npy'")
    for name, array in descriptors.items():
        array = np.asarray(array, dtype=np.float32)
        if array.ndim != 3 or array.shape[0] != len(IMAGE_TYPES):
            raise ValueError(f"descriptors of {name!r} have shape {array.shape}; expected (16, N, D)")
        for image_type, rows in zip(IMAGE_TYPES, array, strict=True):
            target = Path(path) / name / f"{image_type}.{fmt}"
            with atomic_path(target) as temp:
                _writer(rows, fmt)(temp)


def _writer(rows: np.ndarray, fmt: str) -> Callable[[Path], None]:
    """A function writing ``rows`` to a temp path in ``fmt`` (9 significant digits round-trip float32)."""
    if fmt == "npy":

        def write(temp: Path) -> None:
            """Save as .npy."""
            with open(temp, "wb") as handle:
                np.save(handle, rows)

        return write
    return lambda temp: np.savetxt(temp, rows, fmt="%.9g", delimiter=",")
