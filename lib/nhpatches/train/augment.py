"""Augmentations of descriptor batches drawn on the host: the 8 symmetries of the square and noise.

The study's batches flip patches (``flip`` "random" / "rot180", :func:`.batches.flip_patches`);
the release recipe turns and mirrors them (``flip`` "d4") and adds Gaussian noise per patch, the
noise model of :mod:`nhpatches.data.sweep` (``noisy = clip(floor(clean + σ z + 0.5), 0, 255)``).
"""

from __future__ import annotations

import dataclasses

import numpy as np


def square_symmetry(patches: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Apply one of the 8 symmetries of the square per patch: code k = 4·mirror + quarter turns.

    Code k mirrors left-right when k >= 4, then turns by (k mod 4) quarter turns counter-clockwise.
    Shape: (B, P, P), (B,) ints in 0..7 -> (B, P, P)
    """
    out = np.empty_like(patches)
    for code in range(8):
        rows = codes == code
        if not rows.any():
            continue
        chosen = patches[rows]
        if code >= 4:
            chosen = chosen[:, :, ::-1]
        out[rows] = np.rot90(chosen, code % 4, axes=(1, 2))
    return out


@dataclasses.dataclass(frozen=True)
class NoiseAugment:
    """Gaussian noise per patch: none with probability ``clean_fraction``, else σ ~ U[0, ``sigma_max``] (0..255)."""

    sigma_max: float = 60.0
    clean_fraction: float = 0.25

    def __post_init__(self) -> None:
        if not self.sigma_max >= 0 or not 0.0 <= self.clean_fraction <= 1.0:
            raise ValueError(
                f"noise needs sigma_max >= 0 and clean_fraction in [0, 1], got {self.sigma_max!r}, "
                f"{self.clean_fraction!r}"
            )

    def sigmas(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Per-patch noise std. Shape: -> (count,) float32."""
        sigmas = rng.uniform(0.0, self.sigma_max, count).astype(np.float32)
        sigmas[rng.random(count) < self.clean_fraction] = 0.0
        return sigmas


def add_noise(patches: np.ndarray, sigmas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """clip(floor(patch + σ z + 0.5), 0, 255) per patch, as the models' float32 input (0..255).

    Shape: (B, P, P) uint8, (B,) -> (B, P, P, 1) float32
    """
    noise = rng.standard_normal(patches.shape, dtype=np.float32) * sigmas[:, None, None]
    return np.clip(np.floor(patches.astype(np.float32) + noise + 0.5), 0, 255)[..., None]
