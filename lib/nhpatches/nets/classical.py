"""Classical (untrained) patch descriptors: raw pixels and SIFT, the baselines of the learned ones.

Both take a batch of square grayscale patches, uint8 of shape (N, P, P), for any patch side P
(32 px for N-HPatches, 65 px for the genuine ``hpatches-release``), and return float32 rows:

* :func:`describe_raw`: the pixels, standardised per patch, flattened: (N, P*P);
* :func:`describe_sift`: OpenCV's SIFT descriptor of the whole patch: (N, 128).

``CLASSICAL`` maps their names to the functions, so a study can evaluate them by name.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping

import numpy as np

#: SIFT: the descriptor's 4x4 grid of spatial cells (OpenCV's SIFT_DESCR_WIDTH) ...
SIFT_GRID = 4
#: ... each cell SIFT_CELL_SCALE x (keypoint size / 2) pixels wide (OpenCV's SIFT_DESCR_SCL_FCTR),
#: so the grid spans SIFT_GRID * SIFT_CELL_SCALE / 2 = 6 keypoint sizes.
SIFT_CELL_SCALE = 3.0


def check_patches(patches: np.ndarray, what: str = "patches") -> np.ndarray:
    """Validate a batch of square uint8 patches, shape (N, P, P); return it as a numpy array.

    Raises TypeError for another dtype and ValueError for another shape, naming what was expected.
    """
    array = np.asarray(patches)
    if array.dtype != np.uint8:
        raise TypeError(
            f"{what}: expected uint8 pixels 0..255, got dtype {array.dtype} "
            "(convert with np.clip(x, 0, 255).astype(np.uint8) if they are 0..255 values)"
        )
    if array.ndim != 3 or array.shape[1] != array.shape[2] or array.shape[1] < 1:
        raise ValueError(f"{what}: expected square grayscale patches of shape (N, P, P), got shape {array.shape}")
    return array


def describe_raw(patches: np.ndarray) -> np.ndarray:
    """Raw-pixel descriptor: each patch standardised to zero mean and unit std, then flattened.

    The std is the population std (ddof 0) over the patch's P*P pixels, so every non-constant
    patch gives a vector of Euclidean norm P. A constant patch (std 0) gives the zero vector,
    not NaN. Shape: (N, P, P) uint8 -> (N, P*P) float32 (1024-d for 32 px patches).
    """
    array = check_patches(patches)
    flat = array.reshape(array.shape[0], array.shape[1] * array.shape[2]).astype(np.float64)
    centred = flat - flat.mean(axis=1, keepdims=True)
    std = np.sqrt(np.mean(centred**2, axis=1, keepdims=True))
    scaled = np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)
    return scaled.astype(np.float32)


def sift_keypoint_size(patch_size: int) -> float:
    """OpenCV keypoint size whose SIFT descriptor grid spans exactly a patch of ``patch_size`` px.

    OpenCV's SIFT descriptor (``calcSIFTDescriptor``) uses a 4x4 grid of cells, each
    ``3 * size / 2`` pixels wide, so the grid spans ``6 * size`` pixels; ``size = P / 6`` makes the
    grid the patch itself: 5.33 for 32 px, 10.83 for 65 px. Trilinear interpolation spreads a
    pixel into neighbouring cells, so border pixels count (with the descriptor's Gaussian weight of
    sigma = half the grid, i.e. P / 2), and nothing outside the patch is sampled (OpenCV skips
    samples outside the image). A smaller size would describe only the patch's centre, a larger
    one would leave outer cells empty.
    """
    return float(patch_size) / (SIFT_GRID * SIFT_CELL_SCALE / 2)


def describe_sift(patches: np.ndarray) -> np.ndarray:
    """SIFT descriptor of each whole patch with OpenCV's ``cv2.SIFT_create``: 128-d, unit L2 norm.

    One keypoint per patch, at the patch centre ((P - 1) / 2, (P - 1) / 2) in OpenCV's pixel-centre
    coordinates (OpenCV rounds the centre to the pixel grid, so for even P the grid is shifted by
    half a pixel), of size :func:`sift_keypoint_size` (P / 6: the descriptor grid covers the
    patch, for any P), in octave 0 layer 0 (the patch at its own resolution, Gaussian-smoothed to
    OpenCV's base sigma 1.6), with orientation fixed at 0 degrees: HPatches patches are already
    extracted in a common orientation (the reference patch is turned by its keypoint's dominant
    orientation, the patches of the other images are projected through the ground-truth homography,
    up to their level's small geometric jitter), so SIFT's own orientation
    assignment would only add errors. OpenCV's descriptor (clipped at 0.2 and renormalised as
    Lowe's, scaled to norm 512) is divided by its norm: unit-norm rows; a patch without any
    gradient (constant) gives the zero vector. Deterministic (the same patch always gives the same
    row: each patch is described on its own). Shape: (N, P, P) uint8 -> (N, 128) float32.
    """
    array = check_patches(patches)
    try:
        import cv2
    except ImportError as error:  # opencv-python-headless is a core dependency of nhpatches
        raise ImportError(f"describe_sift needs OpenCV: pip install opencv-python-headless ({error})") from None
    size = array.shape[1]
    centre = (size - 1) / 2.0
    keypoints = (cv2.KeyPoint(centre, centre, sift_keypoint_size(size), 0.0, 0.0, 0),)
    sift = cv2.SIFT.create()
    rows = np.zeros((array.shape[0], 128), np.float32)
    for index, patch in enumerate(array):
        kept, descriptor = sift.compute(np.ascontiguousarray(patch), keypoints)
        if descriptor is None or len(kept) != 1:
            raise RuntimeError(f"OpenCV SIFT dropped the keypoint of patch {index} (patch size {size} px)")
        rows[index] = descriptor[0]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


#: The classical descriptors by name: (N, P, P) uint8 -> (N, D) float32.
CLASSICAL: Mapping[str, Callable[[np.ndarray], np.ndarray]] = types.MappingProxyType(
    {"raw": describe_raw, "sift": describe_sift}
)
