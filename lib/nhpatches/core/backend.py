"""The Keras backend, first touched quietly.

Every package of nhpatches that uses Keras (``nets``, ``train``, ``study``, ``pretrained``) calls
:func:`quiet_tensorflow` in its ``__init__``, before Keras is imported: ``import nhpatches``
alone imports no backend, and the first use of one does not print TensorFlow's C++ start-up lines.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path


def keras_backend_name() -> str:
    """The backend Keras will pick, without importing Keras: $KERAS_BACKEND, keras.json, else tensorflow."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(config.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def quiet_tensorflow() -> None:
    """Import TensorFlow (only when it is the backend) with its C++ start-up log lines silenced.

    TensorFlow writes "All log messages before absl::InitializeLog()" and a oneDNN notice straight
    to file descriptor 2 while it loads, whatever TF_CPP_MIN_LOG_LEVEL says; Jupyter kernels copy
    that descriptor into every notebook. Import errors still raise as usual.
    """
    if keras_backend_name() != "tensorflow" or "tensorflow" in sys.modules:
        return
    if importlib.util.find_spec("tensorflow") is None:
        return
    # 3: TensorFlow's C++ logs off, errors included (e.g. "oneDNN supports DT_INT32 only on platforms
    # with AVX-512", a notice); Python exceptions are unaffected. An explicit setting is kept.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with silenced_stderr():
        importlib.import_module("tensorflow")


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block.

    C++ libraries' log lines (TensorFlow's import, XLA's first compilation: "Compiled cluster using
    XLA!") then do not reach the terminal or notebook.

    Python exceptions still raise as usual; without a usable descriptor 2 nothing is silenced.
    """
    try:
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no usable stderr descriptor: run unsilenced
        yield
        return
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
