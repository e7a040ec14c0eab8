"""Patch resizing: the bilinear interpolation of OpenCV's ``INTER_LINEAR``, as separable matrices.

Patches of a size other than 32 px (the hpatches-release's 65 px strips, the embedded dataset's
65 px samples) are resized to 32x32 with :func:`resize_patches`: half-pixel centres, no
antialiasing, the same numbers as ``cv2.resize(patch, (32, 32), interpolation=cv2.INTER_LINEAR)``.
"""

from __future__ import annotations

import numpy as np


def linear_resize_matrix(source: int, target: int) -> np.ndarray:
    """Row-stochastic matrix of OpenCV INTER_LINEAR resampling along one axis.

    Shape: (target, source) float64.
    """
    coords = (np.arange(target) + 0.5) * (source / target) - 0.5
    coords = np.clip(coords, 0.0, source - 1)
    lower = np.floor(coords).astype(np.int64)
    upper = np.minimum(lower + 1, source - 1)
    weight = coords - lower
    matrix = np.zeros((target, source))
    np.add.at(matrix, (np.arange(target), lower), 1.0 - weight)
    np.add.at(matrix, (np.arange(target), upper), weight)
    return matrix


def resize_patches(patches: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of square patches as cv2.resize(..., INTER_LINEAR); uint8 in, uint8 out.

    Shape: (..., P, P) -> (..., size, size); the dtype is kept (uint8 is rounded and clipped).
    """
    patches = np.asarray(patches)
    if patches.ndim < 2 or patches.shape[-1] != patches.shape[-2]:
        raise ValueError(f"expected square patches of shape (..., P, P), got {patches.shape}")
    if patches.shape[-1] == size:
        return patches.copy()
    matrix = linear_resize_matrix(patches.shape[-1], size).astype(np.float32)
    resized = matrix @ patches.astype(np.float32) @ matrix.T
    if np.issubdtype(patches.dtype, np.integer):
        info = np.iinfo(patches.dtype)
        return np.clip(np.floor(resized + 0.5), info.min, info.max).astype(patches.dtype)
    return resized.astype(patches.dtype)
