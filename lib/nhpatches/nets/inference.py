"""Running trained networks on uint8 patches: denoise, then describe.

The study, the release recipe and ``nhpatches.describe`` all go through these, so a pipeline
gives the same numbers wherever it runs. Networks run batch by batch, either through
``Model.predict_on_batch`` or through one compiled function per model (:func:`compiled_runner`,
cached for the model's lifetime):

* TensorFlow: a ``tf.function(jit_compile=True)`` of the model's inference call (XLA);
* JAX: a ``jax.jit`` of ``model.stateless_call`` with the current weights passed in (XLA);
* PyTorch: none (eager ``predict_on_batch``).

A compiled function is built for fixed batch shapes: every batch but the last has
``batch_size`` rows, and the last is zero-padded up to a power of two (at most ``batch_size``),
so a model compiles at most ⌈log2(batch_size)⌉ + 1 shapes however many patches and calls it is
given (JAX's ``predict_on_batch`` compiles every new last-batch size), and a small call does not
pay for a full batch. Compiled and eager outputs agree to float rounding (1e-5 of the output's
scale, tests/test_inference.py).

Which backends compile by default (``COMPILED_BACKENDS``) is decided by measurement
(``benchmarks/bench_describe.py`` times both in one run). On a 2-core x86_64 (AVX-512) machine
shared with other jobs, TensorFlow's XLA function ran the shipped descriptor at 0.87-0.91x
predict_on_batch (oneDNN convolutions), so TensorFlow stays on predict_on_batch; JAX's ran at
0.98-1.02x (both are XLA) and compiles a bounded set of shapes, so JAX uses it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from nhpatches.core.backend import silenced_stderr

if TYPE_CHECKING:
    import keras

#: Patches per network call unless a caller says otherwise.
DEFAULT_BATCH_SIZE = 1024
#: Backends whose networks run through a compiled function by default (by measurement: see the module doc).
COMPILED_BACKENDS: tuple[str, ...] = ("jax",)

Runner = Callable[[np.ndarray], np.ndarray]
_RUNNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _tensorflow_runner(model: keras.Model) -> Runner:
    """An XLA-compiled inference call (one trace and compilation per input shape).

    The closure holds the model weakly, so the cache entry does not keep the model alive.
    """
    import tensorflow as tf

    owner = weakref.ref(model)

    @tf.function(jit_compile=True, reduce_retracing=False)
    def infer(batch):
        net = owner()
        assert net is not None, "the model of a cached runner was deleted"
        return net(batch, training=False)

    return _quiet_first_calls(lambda batch: infer(tf.constant(batch)).numpy())


def _jax_runner(model: keras.Model) -> Runner:
    """A jitted stateless inference call reading the model's current weights (one compilation per shape)."""
    import jax

    owner = weakref.ref(model)

    @jax.jit
    def infer(trainable, non_trainable, batch):
        net = owner()
        assert net is not None, "the model of a cached runner was deleted"
        return net.stateless_call(trainable, non_trainable, batch, training=False)[0]

    def run(batch: np.ndarray) -> np.ndarray:
        net = owner()
        assert net is not None, "the model of a cached runner was deleted"
        trainable = [v.value for v in net.trainable_variables]
        non_trainable = [v.value for v in net.non_trainable_variables]
        return np.asarray(infer(trainable, non_trainable, batch))

    return _quiet_first_calls(run)


def _quiet_first_calls(run: Runner) -> Runner:
    """``run`` with descriptor 2 silenced during the first call of each batch shape.

    That call compiles: XLA writes C++ log lines such as "Compiled cluster using XLA!" straight to stderr.
    """
    seen: set[tuple[int, ...]] = set()

    def call(batch: np.ndarray) -> np.ndarray:
        if batch.shape in seen:
            return run(batch)
        with silenced_stderr():
            out = run(batch)
        seen.add(batch.shape)
        return out

    return call


def compiled_runner(model: keras.Model, compiled: bool | None = None) -> Runner | None:
    """The compiled function that runs ``model`` on one float32 batch (built once per model), or None for eager.

    ``compiled``: None = the backend's default (COMPILED_BACKENDS); False, or a backend without a
    compiled path (PyTorch), gives None: run ``Model.predict_on_batch``.
    Shape of the function: (B, P, P, 1) float32 -> (B, ...) model output.
    """
    import keras

    backend = keras.backend.backend()
    if compiled is None:
        compiled = backend in COMPILED_BACKENDS
    if not compiled or backend not in ("tensorflow", "jax"):
        return None
    runner = _RUNNERS.get(model)
    if runner is None:
        runner = _tensorflow_runner(model) if backend == "tensorflow" else _jax_runner(model)
        _RUNNERS[model] = runner
    return runner


def padded_size(count: int, batch_size: int) -> int:
    """Rows a last batch of ``count`` is padded to: the next power of two, at most ``batch_size``."""
    return min(batch_size, 1 << max(count - 1, 0).bit_length())


def run_network(
    model: keras.Model, patches: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE, compiled: bool | None = None
) -> np.ndarray:
    """A network's float32 output for uint8 (or float) patches, batch by batch.

    ``compiled``: see :func:`compiled_runner`; compiled batches have fixed shapes (the last one
    zero-padded, its padding rows dropped from the output).
    Shape: (K, P, P) -> (K, ...) float32 (the model's output shape without the batch axis)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if len(patches) == 0:
        return np.zeros((0, *model.output_shape[1:]), np.float32)
    runner = compiled_runner(model, compiled)
    outputs = []
    for start in range(0, len(patches), batch_size):
        batch = patches[start : start + batch_size].astype(np.float32)[..., None]
        count = len(batch)
        if runner is None:
            outputs.append(np.asarray(model.predict_on_batch(batch), np.float32))
            continue
        rows = count if count == batch_size else padded_size(count, batch_size)
        if rows > count:
            batch = np.concatenate([batch, np.zeros((rows - count, *batch.shape[1:]), np.float32)])
        outputs.append(np.asarray(runner(batch), np.float32)[:count])
    return np.concatenate(outputs)


def denoise_patches(
    model: keras.Model, patches: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE, compiled: bool | None = None
) -> np.ndarray:
    """Run a denoiser; clip to [0, 255] and truncate to uint8 (the study's convention).

    Shape: (..., P, P) uint8 -> same shape uint8
    """
    output = run_network(model, patches.reshape(-1, *patches.shape[-2:]), batch_size, compiled)
    if not np.isfinite(output).all():
        raise ValueError(
            f"denoiser {model.name!r} gives non-finite output (NaN or inf): its training diverged; "
            "retrain it with a smaller learning rate (see nhpatches.nets.specs.DENOISERS)"
        )
    return np.clip(output[..., 0], 0, 255).astype(np.uint8).reshape(patches.shape)


def describe_each(describe, patches: np.ndarray) -> np.ndarray:
    """Apply a (K, P, P) -> (K, D) descriptor function to patches of any leading shape.

    Shape: (..., P, P) uint8 -> (..., D) float32
    """
    flat = describe(patches.reshape(-1, *patches.shape[-2:]))
    return np.asarray(flat, np.float32).reshape(*patches.shape[:-2], -1)


def describe_patches(
    model: keras.Model, patches: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE, compiled: bool | None = None
) -> np.ndarray:
    """Descriptors of every patch.

    Shape: (..., P, P) uint8 -> (..., D) float32
    """
    return describe_each(lambda flat: run_network(model, flat, batch_size, compiled), patches)
