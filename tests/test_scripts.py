"""The benchmark and helper scripts still load against the library (they have no other test).

Each file is executed as a module that is not ``__main__``: its imports and module-level constants
run (a renamed library function fails here), its ``main()`` does not.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Modules of the optional extras (notebooks, tensorflow) that a script may need and an environment may lack.
OPTIONAL = {"papermill", "nbformat", "tensorflow"}
SCRIPTS = sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*.py")])


def test_there_are_scripts_to_check() -> None:
    names = {path.name for path in SCRIPTS}
    assert {"bench_training.py", "bench_matching.py", "train_pretrained.py", "tune_image_pipeline.py"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_script_loads_and_has_a_main(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(path.parent))  # as when run: its folder first on sys.path
    try:
        namespace = runpy.run_path(str(path), run_name="script_under_test")
    except ModuleNotFoundError as error:
        if error.name in OPTIONAL:  # e.g. run_series.py in the JAX environment, which has no notebook extra
            pytest.skip(f"{path.name} needs {error.name}, an optional extra not installed here")
        raise
    assert callable(namespace.get("main")), f"{path}: expected a main() function"
    assert '__name__ == "__main__"' in path.read_text(), f"{path}: expected a __main__ guard"
    sys.modules.pop("bench_training", None)  # bench_matching imports it by name from its folder
