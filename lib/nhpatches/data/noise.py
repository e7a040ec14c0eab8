"""The noise model of the study's noisy patches (ours: N-HPatches' model is unpublished).

Additive, pixel-independent Gaussian noise on the 0..255 scale, added to the clean 32x32 uint8
patches, clipped to 0..255 and rounded to uint8. The std depends only on the image type's level:
``ref`` and ``e1..e5`` get ``easy``, ``h1..h5`` ``hard`` and ``t1..t5`` ``tough`` (E < H < T, as
in N-HPatches)::

    NOISE_STD = {"easy": 20.0, "hard": 35.0, "tough": 50.0}

Calibration. The spec's one hint is that a noisy N-HPatches patch correlates about 0.77
with its clean patch, i.e. noise std about 0.85 x the patch's own pixel std. The median
per-patch pixel std of real HPatches patches at 32 px (65 -> 32 with
:func:`nhpatches.data.resize.resize_patches`) is 47.4 on the genuine release strip ``ref.png``
(1123 patches) and 38.5 on the 2400 patches of the re-extracted ``v_wormhole`` sequence; pooled
over the 3523 patches it is 41.1. Hard is set to ~0.85 x 41.1 = 35. The median clean/noisy
correlation measured on those real patches (with clipping and rounding) is then 0.90
(easy, std 20), 0.77 (hard, std 35) and 0.64 (tough, std 50): the hint falls at the hard
level, between easy and tough.

Datasets without noisy strips (the hpatches-release) get their noisy patches from
:func:`make_noisy` when they are loaded; the embedded dataset writes them with it.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Mapping

import numpy as np

from nhpatches.core.config import IMAGE_TYPES, NOISE_LEVELS

#: Noise std per level on the 0..255 scale (see the module docstring for the calibration).
NOISE_STD: Mapping[str, float] = types.MappingProxyType({"easy": 20.0, "hard": 35.0, "tough": 50.0})


def noise_level_of(image_type: str) -> str:
    """Noise level of an image type: 'easy' for ref and e*, 'hard' for h*, 'tough' for t*."""
    return "easy" if image_type == "ref" else NOISE_LEVELS[image_type[0]]


def add_noise(patches: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of the given std (0..255 scale), clipped and rounded to uint8.

    Shape: (...) uint8 -> (...) uint8
    """
    noise = rng.standard_normal(patches.shape, dtype=np.float32) * np.float32(std)
    noisy = patches.astype(np.float32) + noise
    return np.clip(np.floor(noisy + 0.5), 0, 255).astype(np.uint8)


def make_noisy(clean16: np.ndarray, seed: int) -> np.ndarray:
    """Noisy version of a sequence's 16 clean strips, with per-type level; deterministic.

    Each image type draws from its own generator, so the noise of patch k does not depend on
    how many patches follow it (make_noisy(c[:, :k]) == make_noisy(c)[:, :k]).
    Shape: (16, N, P, P) uint8 -> (16, N, P, P) uint8
    """
    if clean16.ndim != 4 or clean16.shape[0] != len(IMAGE_TYPES):
        raise ValueError(f"expected clean patches of shape (16, N, P, P), got {clean16.shape}")
    noisy = np.empty_like(clean16, dtype=np.uint8)
    for index, image_type in enumerate(IMAGE_TYPES):
        rng = np.random.default_rng([seed, index])
        noisy[index] = add_noise(clean16[index], NOISE_STD[noise_level_of(image_type)], rng)
    return noisy


def sequence_noise_seed(noise_seed: int, name: str) -> int:
    """Deterministic per-sequence noise seed from a global seed and the sequence name."""
    digest = hashlib.sha256(f"{noise_seed}:{name}".encode()).hexdigest()
    return int(digest[:15], 16)
