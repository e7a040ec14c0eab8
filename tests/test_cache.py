"""Run keys, atomic writes and completeness of cached runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nhpatches.core.cache import (
    RunDir,
    atomic_path,
    load_or_compute,
    read_json,
    run_key,
    write_json,
)


def test_run_key_ignores_key_order_but_not_values() -> None:
    """Same settings in another order give the same key; another value gives another key."""
    assert run_key({"a": 1, "b": [1, 2]}) == run_key({"b": [1, 2], "a": 1})
    assert run_key({"a": 1}) != run_key({"a": 2})


def test_atomic_path_leaves_nothing_on_failure(tmp_path) -> None:
    """An exception inside the block leaves neither the target nor a temp file."""
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_write_json_roundtrip(tmp_path) -> None:
    """JSON with numpy scalars is written completely."""
    write_json(tmp_path / "m.json", {"x": np.float32(0.5), "n": np.int64(3)})
    assert read_json(tmp_path / "m.json") == {"n": 3, "x": 0.5}


def test_half_written_run_is_not_a_hit(tmp_path) -> None:
    """A run folder with artefacts but no (or a corrupt) metrics.json is recomputed."""
    run = RunDir(tmp_path, "exp", {"lr": 0.1})
    run.file("model.keras").write_text("partial")
    assert not run.is_complete()
    (run.path / "metrics.json").write_text("{ truncated")
    assert not run.is_complete()
    calls = []
    metrics = load_or_compute(run, lambda r: calls.append(1) or {"value": 1.0})
    assert metrics == {"value": 1.0} and calls == [1]
    assert load_or_compute(run, lambda r: calls.append(2) or {"value": 2.0}) == {"value": 1.0}
    assert calls == [1]
    assert json.loads((run.path / "settings.json").read_text())["lr"] == 0.1


def test_force_recomputes(tmp_path) -> None:
    """force=True recomputes a complete run."""
    run = RunDir(tmp_path, "exp", {})
    load_or_compute(run, lambda r: {"v": 1})
    assert load_or_compute(run, lambda r: {"v": 2}, force=True) == {"v": 2}


def test_read_json_names_the_file(tmp_path) -> None:
    """Missing and malformed JSON errors name the path."""
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        read_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json"):
        read_json(tmp_path / "bad.json")
