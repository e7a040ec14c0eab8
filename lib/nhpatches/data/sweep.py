"""The noise sweep: the test patches re-noised at one Gaussian std after another.

Every pipeline sees the same draw: for a sequence, image ``i`` gets the standard-normal field
``z`` of ``numpy.random.default_rng([seed, i])`` (``seed`` from the sequence's name and the
study's noise seed), and at std σ its patches become

    noisy_σ = clip(floor(clean + σ · z + 0.5), 0, 255)  (uint8)

so one σ differs from the next only by the scale of the same ``z`` (common random numbers):
the curves of mAP against σ are smooth, and their differences are the pipelines', not the draw's.
Unlike the study's test set, where the std depends on the image's level (easy / hard / tough),
all 16 images of a sequence get the same σ.
"""

from __future__ import annotations

import numpy as np

from nhpatches.core.config import IMAGE_TYPES

#: The σ of the sweep, on the 0..255 scale (0: the clean patches).
SWEEP_SIGMAS: tuple[float, ...] = (0.0, 10.0, 20.0, 35.0, 50.0, 70.0)
#: Version of the sweep's noise (:func:`renoise` and its field): part of every sweep result's
#: cache key, so it must be bumped whenever their output changes.
SWEEP_NOISE_VERSION = 1


def sweep_noise_field(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """The standard-normal field z of a sequence, one generator per image.

    Shape: (16, N, P, P) -> (16, N, P, P) float32
    """
    if len(shape) != 4 or shape[0] != len(IMAGE_TYPES):
        raise ValueError(f"expected a sequence shape (16, N, P, P), got {shape}")
    return np.stack(
        [np.random.default_rng([seed, index]).standard_normal(shape[1:], dtype=np.float32) for index in range(shape[0])]
    )


def renoise(clean16: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """A sequence's clean patches with Gaussian noise of std ``sigma`` (0..255 scale) from its field.

    Shape: (16, N, P, P) uint8 -> (16, N, P, P) uint8
    """
    clean16 = np.asarray(clean16)
    if clean16.dtype != np.uint8:
        raise ValueError(f"expected uint8 clean patches, got {clean16.dtype}")
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    if sigma == 0:
        return clean16.copy()
    noisy = clean16.astype(np.float32) + np.float32(sigma) * sweep_noise_field(clean16.shape, seed)
    return np.clip(np.floor(noisy + 0.5), 0, 255).astype(np.uint8)
