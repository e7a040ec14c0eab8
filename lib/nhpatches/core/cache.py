"""Run keys and atomic writes: a cached run is either complete or not there.

A run lives in ``<results>/<experiment>/<key>/`` where the key hashes the run's
settings and the data fingerprint. Files are written under a temporary name and
moved into place with :func:`os.replace`; ``metrics.json`` is written last, so a
folder without it (an interrupted run) is never taken as a hit.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

#: The file whose presence marks a finished run.
DONE_FILE = "metrics.json"


def run_key(settings: Mapping[str, Any], length: int = 12) -> str:
    """Short stable hash of JSON-serialisable settings (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path | str, payload: Any) -> None:
    """Write JSON atomically (indent 1, numpy scalars converted)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True, default=_to_builtin))


def read_json(path: Path | str) -> Any:
    """Read a JSON file, naming the file if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: expected a JSON file, found none")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def _to_builtin(value: Any) -> Any:
    """JSON fallback for numpy scalars/arrays and paths."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class RunDir:
    """One cached run: ``<root>/<experiment>/<key>/`` with settings, artefacts and metrics."""

    def __init__(self, root: Path | str, experiment: str, settings: Mapping[str, Any]) -> None:
        self.experiment = experiment
        self.settings = dict(settings)
        self.key = run_key(self.settings)
        self.path = Path(root) / experiment / self.key

    def is_complete(self) -> bool:
        """True when the run finished (its metrics file exists and parses)."""
        try:
            read_json(self.path / DONE_FILE)
        except (FileNotFoundError, ValueError):
            return False
        return True

    def file(self, name: str) -> Path:
        """Path of an artefact inside the run folder (folder created)."""
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path / name

    def metrics(self) -> dict:
        """The finished run's metrics."""
        return read_json(self.path / DONE_FILE)

    def finish(self, metrics: Mapping[str, Any]) -> None:
        """Write settings, then the metrics file that marks the run complete."""
        write_json(self.file("settings.json"), {"experiment": self.experiment, "key": self.key, **self.settings})
        write_json(self.file(DONE_FILE), dict(metrics))


def load_or_compute(run: RunDir, compute: Callable[[RunDir], Mapping[str, Any]], force: bool = False) -> dict:
    """Return the run's metrics, computing (and caching) them unless already complete."""
    if force or not run.is_complete():
        (run.path / DONE_FILE).unlink(missing_ok=True)
        run.finish(compute(run))
    return run.metrics()
