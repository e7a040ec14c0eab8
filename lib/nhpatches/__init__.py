"""nhpatches: learned patch descriptors on noisy HPatches (N-HPatches)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

__version__ = "0.1.0"
__all__ = ["__version__", "describe"]


def __getattr__(name: str):
    """Lazy attributes: ``nhpatches.describe`` imports its module (and Keras) on first use only."""
    if name == "describe":
        from nhpatches.pretrained import describe

        return describe
    raise AttributeError(f"module 'nhpatches' has no attribute {name!r}")


def __dir__() -> list[str]:
    """Module attributes plus the lazy ones."""
    return sorted(set(globals()) | {"describe"})


def _keras_backend_name() -> str:
    """The backend Keras will pick, without importing Keras: $KERAS_BACKEND, keras.json, else tensorflow."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(config.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow (only when it is the backend) with its C++ start-up log lines silenced.

    TensorFlow writes "All log messages before absl::InitializeLog()" and a oneDNN notice straight
    to file descriptor 2 while it loads, whatever TF_CPP_MIN_LOG_LEVEL says; Jupyter kernels copy
    that descriptor into every notebook. Import errors still raise as usual.
    """
    if _keras_backend_name() != "tensorflow" or "tensorflow" in sys.modules:
        return
    if importlib.util.find_spec("tensorflow") is None:
        return
    # 3: TensorFlow's C++ logs off, errors included (e.g. "oneDNN supports DT_INT32 only on platforms
    # with AVX-512", a notice); Python exceptions are unaffected. An explicit setting is kept.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no usable stderr descriptor: import without silencing
        saved = devnull = None
    try:
        if saved is not None:
            sys.stderr.flush()
            os.dup2(devnull, 2)
        importlib.import_module("tensorflow")
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)

_import_tensorflow_quietly()
