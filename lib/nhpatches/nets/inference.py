"""Running trained networks on uint8 patches: denoise, then describe.

The study, the release recipe and ``nhpatches.describe`` all go through these, so a pipeline
gives the same numbers wherever it runs. Networks run batch by batch with
``Model.predict_on_batch`` (one compiled function per model, no per-call dataset adapter).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

#: Patches per network call unless a caller says otherwise.
DEFAULT_BATCH_SIZE = 1024


def run_network(model: keras.Model, patches: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """A network's float32 output for uint8 (or float) patches, batch by batch.

    Shape: (K, P, P) -> (K, ...) float32 (the model's output shape without the batch axis)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    outputs = [
        np.asarray(
            model.predict_on_batch(patches[start : start + batch_size].astype(np.float32)[..., None]), np.float32
        )
        for start in range(0, len(patches), batch_size)
    ]
    if not outputs:
        return np.zeros((0, *model.output_shape[1:]), np.float32)
    return np.concatenate(outputs)


def denoise_patches(model: keras.Model, patches: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Run a denoiser; clip to [0, 255] and truncate to uint8 (the study's convention).

    Shape: (..., P, P) uint8 -> same shape uint8
    """
    output = run_network(model, patches.reshape(-1, *patches.shape[-2:]), batch_size)
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


def describe_patches(model: keras.Model, patches: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Descriptors of every patch.

    Shape: (..., P, P) uint8 -> (..., D) float32
    """
    return describe_each(lambda flat: run_network(model, flat, batch_size), patches)
