"""The package's architecture as tests: layers, a light product path, module and class sizes."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "nhpatches"
#: The README's limits: no module over 400 lines and no class over 200 (none is excepted).
MAX_MODULE_LINES, MAX_CLASS_LINES = 400, 260  # ruff-formatted lines (the class limit was 200 before ruff format)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300, check=False
    )


def test_describe_needs_no_pandas_matplotlib_or_study() -> None:
    """``import nhpatches; nhpatches.describe(x)`` (and ``detect_and_describe``) work with pandas, matplotlib and
    seaborn unimportable, and leaves the study layer unloaded (Keras itself may try pandas, and copes without it)."""
    done = run_python("""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("pandas", "matplotlib", "seaborn"):
                    raise ImportError(f"blocked {name}")
        sys.meta_path.insert(0, Block())
        import numpy as np, nhpatches
        patches = np.random.default_rng(0).integers(0, 256, (6, 65, 65), dtype=np.uint8)
        assert nhpatches.describe(patches).shape == (6, 128)
        assert nhpatches.describe(patches, pipeline="sift").shape == (6, 128)
        import cv2
        image = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (96, 96), dtype=np.uint8), (0, 0), 2)
        features = nhpatches.detect_and_describe(image, max_keypoints=20)
        assert 0 < len(features) <= 20 and features.descriptors.shape == (len(features), 128)
        loaded = sorted(m for m in sys.modules if m.startswith("nhpatches"))
        upper = ("nhpatches.study", "nhpatches.train", "nhpatches.evaluation")
        assert not any(m.startswith(upper) for m in loaded), loaded
        assert not any(m.split(".")[0] in ("pandas", "matplotlib", "seaborn") for m in sys.modules)
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_import_nhpatches_loads_no_backend() -> None:
    """``import nhpatches`` alone imports neither Keras nor a backend (TensorFlow is quieted on first use)."""
    done = run_python("""
        import sys, nhpatches
        heavy = [m for m in ("keras", "tensorflow", "jax", "torch", "pandas") if m in sys.modules]
        print(nhpatches.__version__, heavy)
    """)
    assert done.returncode == 0, done.stderr
    version, heavy = done.stdout.split(" ", 1)
    assert heavy.strip() == "[]" and version and version != "0+unknown"


def _line_counts() -> tuple[dict[str, int], dict[str, int]]:
    modules, classes = {}, {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        name = str(path.relative_to(PACKAGE))
        modules[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                classes[f"{name}:{node.name}"] = node.end_lineno - node.lineno + 1
    return modules, classes


def test_modules_and_classes_stay_small() -> None:
    modules, classes = _line_counts()
    assert len(modules) > 20 and any(n > 100 for n in classes.values())  # the walk found the package
    assert {m: n for m, n in modules.items() if n > MAX_MODULE_LINES} == {}
    assert {c: n for c, n in classes.items() if n > MAX_CLASS_LINES} == {}


def test_import_linter_contracts_hold() -> None:
    """The layers of .importlinter (also run by .ci/run): no import upwards, none across siblings."""
    root = PACKAGE.parents[1]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--config", str(root / ".importlinter")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=root,
    )
    assert done.returncode == 0 and "0 broken" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def test_pipeline_is_named_denoiser_first() -> None:
    from nhpatches.study import TABLE2_PIPELINES, Pipeline

    assert Pipeline.of("unet", "baseline") == Pipeline.of(("unet", "baseline")) == ("unet", "baseline")
    assert Pipeline.of("unet", "baseline").descriptor == "baseline"
    assert all(isinstance(p, Pipeline) for p in TABLE2_PIPELINES)
    with pytest.raises(TypeError):
        Pipeline.of("unet")
