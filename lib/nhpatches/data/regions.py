"""Measurement regions: oriented, scale-normalised square patches cut from an image, HPatches style.

One cutter for the embedded dataset (:func:`nhpatches.data.extraction.extract_sequence`) and for
photographs (:func:`extract_patches`, the keypoints of a detector such as OpenCV SIFT):

* a frame is an oriented square of half-width ``radius = magnification * sigma`` around a centre
  (HPatches' magnification factor 5); a keypoint's frame is (x, y), ``sigma = size / 2`` (OpenCV's
  ``KeyPoint.size`` is the diameter 2 sigma of the detection scale) and its angle;
* the frame is sampled on a 65 x 65 grid (step ``radius / 32`` image pixels), bilinearly, from the
  level of a Gaussian pyramid whose pixel pitch is nearest that step (antialiasing); samples are
  rounded to uint8, then the patch is resized to 32 px by :func:`nhpatches.data.resize_patches`,
  as the dataset's patches are.

Orientation: the frame's x axis points along ``(cos a, sin a)`` in image coordinates (x right, y
down), ``a`` = the keypoint's angle in radians. OpenCV SIFT's ``KeyPoint.angle`` (degrees) is in that
convention (the dominant gradient direction in image coordinates), so it is used as it is
(``tests/test_images.py`` checks it on an image rotated by 90 degrees); -1 means no orientation.

Two interpolators share the geometry: ``exact`` (scipy ``map_coordinates`` in double precision, a
scipy-filtered pyramid: the embedded dataset's bytes) and the fast one (``cv2.remap`` on float32
levels from ``cv2.GaussianBlur``, the default of :func:`extract_patches`; within one grey level of
the exact one). For repeated cuts from one image, build an :class:`ImagePyramid` once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from nhpatches.core.config import PATCH_SIZE, RELEASE_PATCH_SIZE
from nhpatches.data.hpatches import resize_patches

#: Patch half-width in units of the detection scale sigma (HPatches' magnification factor).
MAGNIFICATION = 5.0
#: Side (px) at which a frame is sampled before the resize to the output size (hpatches-release's 65).
SAMPLED_SIZE = RELEASE_PATCH_SIZE
#: Pyramid levels of the embedded dataset's extraction (level l has pixel pitch 2**l).
PYRAMID_LEVELS = 5
#: cv2.remap refuses maps with a side of SHRT_MAX (32767) or more: patches per remap call.
_REMAP_MAX_SIDE = 32766
#: Frames cut per batch: one cv2.remap call of 65 px patches (bounds the memory of the sampling grids).
CUT_BATCH = _REMAP_MAX_SIDE // SAMPLED_SIZE


@dataclass(frozen=True)
class Frames:
    """Oriented square patch frames in image pixels.

    Shape: centers (n, 2) as (x, y); radii (n,) half-widths; angles (n,) radians.
    """

    centers: np.ndarray
    radii: np.ndarray
    angles: np.ndarray

    def take(self, index: np.ndarray | slice) -> Frames:
        """The frames at the given indices."""
        return Frames(self.centers[index], self.radii[index], self.angles[index])


# --------------------------------------------------------------------------- frames and grids


def rotations(angles: np.ndarray) -> np.ndarray:
    """Rotation matrices. Shape: (n,) -> (n, 2, 2)."""
    cos, sin = np.cos(angles), np.sin(angles)
    return np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)


def frame_matrices(frames: Frames, linear: np.ndarray | None = None, shift: np.ndarray | None = None) -> np.ndarray:
    """Affine maps from frame units (-1..1) to image (x, y), with an optional jitter (linear, shift).

    Shape: -> (n, 3, 3)
    """
    count = len(frames.radii)
    linear = np.broadcast_to(np.eye(2), (count, 2, 2)) if linear is None else linear
    shift = np.zeros((count, 2)) if shift is None else shift
    oriented = frames.radii[:, None, None] * rotations(frames.angles)
    matrices = np.zeros((count, 3, 3))
    matrices[:, :2, :2] = oriented @ linear
    matrices[:, :2, 2] = frames.centers + (oriented @ shift[:, :, None])[:, :, 0]
    matrices[:, 2, 2] = 1.0
    return matrices


def project_grid(matrices: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Image (x, y) of grid points (frame units) under per-frame projective maps.

    Shape: matrices (n, 3, 3), grid (..., 2) -> (n, ..., 2)
    """
    u, v = grid[..., 0].ravel(), grid[..., 1].ravel()
    rows = [matrices[:, i, 0:1] * u + matrices[:, i, 1:2] * v + matrices[:, i, 2:3] for i in range(3)]
    points = np.stack([rows[0] / rows[2], rows[1] / rows[2]], axis=-1)
    return points.reshape((len(matrices), *grid.shape))


def frame_points(
    frames: Frames,
    grid: np.ndarray,
    linear: np.ndarray | None = None,
    shift: np.ndarray | None = None,
    homography: np.ndarray | None = None,
) -> np.ndarray:
    """(x, y) of patch-grid points of (jittered) frames, in the image or through a homography.

    Shape: grid (..., 2) -> (n, ..., 2)
    """
    matrices = frame_matrices(frames, linear, shift)
    if homography is not None:
        matrices = homography @ matrices
    return project_grid(matrices, grid)


def patch_grid(size: int = SAMPLED_SIZE) -> np.ndarray:
    """(x, y) grid of a patch in frame units, -1..1 in steps of 1 / (size // 2). Shape: -> (size, size, 2)."""
    ticks = (np.arange(size) - size // 2) / (size // 2)
    xs, ys = np.meshgrid(ticks, ticks)
    return np.stack([xs, ys], axis=-1)


# --------------------------------------------------------------------------- pyramid and sampling


def gaussian_pyramid(image: np.ndarray, levels: int = PYRAMID_LEVELS, exact: bool = True) -> list[np.ndarray]:
    """Gaussian pyramid (blur sigma 1, keep every other pixel); level l pixel i sits at level-0 i * 2**l.

    ``exact``: scipy's ``gaussian_filter`` (double accumulation, the embedded dataset's); otherwise
    ``cv2.GaussianBlur`` with the same 9-tap kernel and reflect border (within 1e-4 grey levels,
    several times faster). Shape: (H, W) -> [(H, W), (ceil(H/2), ceil(W/2)), ...] float32, contiguous
    """
    pyramid = [np.ascontiguousarray(image, dtype=np.float32)]
    for _ in range(levels - 1):
        if exact:
            blurred = ndimage.gaussian_filter(pyramid[-1], 1.0)
        else:
            blurred = cv2.GaussianBlur(pyramid[-1], (9, 9), 1.0, borderType=cv2.BORDER_REFLECT)
        pyramid.append(np.ascontiguousarray(blurred[::2, ::2]))
    return pyramid


def pyramid_levels(steps: np.ndarray, count: int) -> np.ndarray:
    """Pyramid level whose pixel pitch is nearest each sampling step (px), clipped to 0..count-1.

    Shape: (n,) -> (n,) int
    """
    return np.clip(np.floor(np.log2(np.maximum(steps, 1e-6)) + 0.5), 0, count - 1).astype(int)


def _affine_points32(matrices: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(x, y) of grid points under affine maps, float32, as cv2.remap's (k * P, P, 2) map.

    Shape: matrices (k, 3, 3) with last row (0, 0, 1), grid (P, P, 2) -> (k * P, P, 2) float32
    """
    side = grid.shape[0]
    homogeneous = np.concatenate([grid.reshape(-1, 2), np.ones((side * side, 1))], axis=1).astype(np.float32)
    linear = np.ascontiguousarray(matrices[:, :2, :].transpose(0, 2, 1), dtype=np.float32)  # (k, 3, 2)
    return np.matmul(homogeneous, linear).reshape(-1, side, 2)


def _remap(image: np.ndarray, matrices: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Bilinear samples of a float32 image on the grids of frames, with cv2.remap (edge pixels replicated).

    Patches are stacked into maps of shape (k * P, P, 2), k below cv2's size limit per call.
    Shape: matrices (n, 3, 3), grid (P, P, 2) -> (n, P, P) float32
    """
    side = grid.shape[0]
    affine = bool(np.all(matrices[:, 2, :2] == 0) and np.all(matrices[:, 2, 2] == 1))
    out = np.empty((len(matrices), side, side), np.float32)
    per_call = max(1, _REMAP_MAX_SIDE // side)
    for start in range(0, len(matrices), per_call):
        block = matrices[start : start + per_call]
        if affine:
            maps = _affine_points32(block, grid)
        else:
            maps = project_grid(block, grid).astype(np.float32).reshape(-1, side, 2)
        sampled = cv2.remap(image, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[start : start + per_call] = sampled.reshape(-1, side, side)
    return out


def sample_frames(
    pyramid: Sequence[np.ndarray],
    matrices: np.ndarray,
    steps: np.ndarray,
    size: int = SAMPLED_SIZE,
    exact: bool = True,
) -> np.ndarray:
    """The cutter: bilinear samples of frames on a size x size grid, each from the pyramid level matching its step.

    ``matrices`` map frame units (-1..1) to level-0 image (x, y) (:func:`frame_matrices`, optionally
    left-multiplied by a homography); ``steps`` are the level-0 pixels between neighbouring samples.
    ``exact``: scipy ``map_coordinates`` (order 1, nearest edge mode) in double precision, the
    embedded dataset's; otherwise ``cv2.remap`` on the float32 level (within one grey level after
    rounding, several times faster). Shape: matrices (n, 3, 3), steps (n,) -> (n, size, size) uint8
    """
    grid = patch_grid(size)
    levels = pyramid_levels(steps, len(pyramid))
    patches = np.empty((len(matrices), size, size), dtype=np.float32)
    for level in np.unique(levels):
        chosen = levels == level
        scaled = matrices[chosen].copy()
        scaled[:, :2] /= 2.0**level  # exact (a power of two): level-l (x, y) = level-0 (x, y) / 2**l
        if exact:
            points = project_grid(scaled, grid)
            patches[chosen] = ndimage.map_coordinates(
                pyramid[level], [points[..., 1], points[..., 0]], order=1, mode="nearest"
            )
        else:
            patches[chosen] = _remap(pyramid[level], scaled, grid)
    np.rint(patches, out=patches)  # = np.round: half to even
    return np.clip(patches, 0, 255, out=patches).astype(np.uint8)


# --------------------------------------------------------------------------- images and keypoints


def gray_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Check a uint8 image and return it as grayscale: colour is converted as ``cv2.COLOR_RGB2GRAY`` does.

    Colour arrays are taken as RGB (numpy, PIL, scikit-image); convert an array read by
    ``cv2.imread`` (BGR) with ``cv2.COLOR_BGR2GRAY`` first. Shape: (H, W) or (H, W, 3) uint8 -> (H, W) uint8
    """
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(
            f"{what}: expected uint8 pixels 0..255, got dtype {array.dtype} "
            "(convert with np.clip(x, 0, 255).astype(np.uint8) if they are 0..255 values)"
        )
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)) or min(array.shape[:2]) < 2:
        raise ValueError(f"{what}: expected a grayscale (H, W) or colour (H, W, 3) image, got shape {array.shape}")
    if array.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2GRAY)
    return array


def keypoint_array(keypoints: Sequence[cv2.KeyPoint] | np.ndarray, what: str = "keypoints") -> np.ndarray:
    """Keypoints as rows (x, y, size, angle): OpenCV's ``KeyPoint.pt``, ``.size`` (diameter, 2 sigma), ``.angle``.

    ``angle`` in degrees, -1 for none. Shape: list of cv2.KeyPoint or (N, 4) -> (N, 4) float64
    """
    if isinstance(keypoints, (list, tuple)) and keypoints and isinstance(keypoints[0], cv2.KeyPoint):
        if not all(isinstance(point, cv2.KeyPoint) for point in keypoints):
            raise ValueError(f"{what}: expected a list of cv2.KeyPoint only, got a mixed list")
        return np.array([(*point.pt, point.size, point.angle) for point in keypoints], np.float64)
    try:
        array = np.asarray(keypoints, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{what}: expected a list of cv2.KeyPoint or an (N, 4) array (x, y, size, angle), "
            f"got {type(keypoints).__name__}"
        ) from None
    if array.size == 0:
        return np.zeros((0, 4))
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{what}: expected an (N, 4) array of (x, y, size, angle), got shape {array.shape}")
    if not np.isfinite(array).all() or (array[:, 2] <= 0).any():
        raise ValueError(f"{what}: expected finite values and sizes > 0 (column 2 is OpenCV's diameter 2 sigma)")
    return array


def keypoint_frames(keypoints: Sequence[cv2.KeyPoint] | np.ndarray, magnification: float = MAGNIFICATION) -> Frames:
    """The measurement frames of keypoints: centre (x, y), radius magnification * size / 2, angle in radians.

    An angle of -1 (OpenCV: no orientation) gives an upright frame. Shape: N keypoints -> Frames of N
    """
    if not np.isfinite(magnification) or magnification <= 0:
        raise ValueError(f"magnification: expected a positive number (half-width in sigmas), got {magnification}")
    array = keypoint_array(keypoints)
    angles = np.where(array[:, 3] == -1, 0.0, np.deg2rad(array[:, 3]))
    return Frames(array[:, :2].copy(), magnification * array[:, 2] / 2, angles)


class ImagePyramid:
    """A grayscale image's Gaussian pyramid, to cut many sets of patches from one image.

    ``ImagePyramid(image).cut(keypoints)`` equals ``extract_patches(image, keypoints)``; building it
    once saves the pyramid (about a third of the time of 2,000 patches on a 1-megapixel image) for
    every later cut; :meth:`sample` cuts frames given as matrices (jittered, projected through a
    homography: training pairs). ``levels``: default enough for frames up to the image's size (at
    least the dataset's 5); ``exact``: the embedded dataset's scipy interpolation (slower, see the module).
    Shape: image (H, W) or (H, W, 3) uint8.
    """

    def __init__(self, image: np.ndarray, levels: int | None = None, exact: bool = False) -> None:
        gray = gray_image(image)
        if levels is None:
            levels = max(PYRAMID_LEVELS, int(np.log2(max(min(gray.shape) / 16, 1))) + 1)
        self.shape: tuple[int, int] = gray.shape
        self.exact = exact
        self.levels: tuple[np.ndarray, ...] = tuple(gaussian_pyramid(gray, levels, exact))

    def sample(self, matrices: np.ndarray, steps: np.ndarray, size: int = SAMPLED_SIZE) -> np.ndarray:
        """Frames given as matrices (jittered, or seen through a homography), as :func:`sample_frames` cuts them.

        ``matrices`` map frame units (-1..1) to this image's (x, y) (e.g. ``homography @
        frame_matrices(frames, linear, shift)``); ``steps`` are the image pixels between neighbouring
        samples (``radius / 32`` for an undistorted 65 px frame). Not resized: 65 px by default.
        Shape: (n, 3, 3), (n,) -> (n, size, size) uint8
        """
        return sample_frames(
            self.levels, np.asarray(matrices, np.float64), np.asarray(steps, np.float64), size, self.exact
        )

    def cut(
        self,
        keypoints: Sequence[cv2.KeyPoint] | np.ndarray,
        size: int = PATCH_SIZE,
        magnification: float = MAGNIFICATION,
    ) -> np.ndarray:
        """Patches at keypoints: see :func:`extract_patches`. Shape: N keypoints -> (N, size, size) uint8."""
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"size: expected a positive patch side in pixels, got {size!r}")
        frames = keypoint_frames(keypoints, magnification)
        count = len(frames.radii)
        patches = np.empty((count, size, size), np.uint8)
        for start in range(0, count, CUT_BATCH):
            batch = frames.take(slice(start, start + CUT_BATCH))
            steps = batch.radii / (SAMPLED_SIZE // 2)
            sampled = sample_frames(self.levels, frame_matrices(batch), steps, exact=self.exact)
            patches[start : start + CUT_BATCH] = resize_patches(sampled, size)
        return patches


def extract_patches(
    image: np.ndarray | ImagePyramid,
    keypoints: Sequence[cv2.KeyPoint] | np.ndarray,
    size: int = PATCH_SIZE,
    magnification: float = MAGNIFICATION,
) -> np.ndarray:
    """Patches at keypoints, cut like the HPatches (and embedded dataset's) patches the descriptors learn from.

    ``keypoints``: a list of ``cv2.KeyPoint`` or an (N, 4) array of (x, y, size, angle), in OpenCV's
    conventions (size = diameter 2 sigma of the detection scale, angle in degrees as OpenCV SIFT
    reports it, -1 = none). Each patch is the oriented square of half-width ``magnification * sigma``
    (5: HPatches), sampled at 65 px from the Gaussian-pyramid level matching its sampling step,
    bilinearly, rounded, then resized to ``size`` (32: the descriptors' input) with
    :func:`nhpatches.data.resize_patches`; ``size=65`` returns the 65 px samples. Points outside the
    image take the nearest edge pixel. ``image`` may be an :class:`ImagePyramid` built once for
    several cuts. Raises ValueError naming a wrong dtype, shape or keypoint array.

    Shape: image (H, W) or (H, W, 3) uint8 (colour as RGB), N keypoints -> (N, size, size) uint8
    """
    pyramid = image if isinstance(image, ImagePyramid) else ImagePyramid(image)
    return pyramid.cut(keypoints, size, magnification)
