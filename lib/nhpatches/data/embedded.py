"""The offline embedded dataset: HPatches-format sequences built from scikit-image's real photos.

The HPatches download is not reachable offline, so this module builds an N-HPatches-layout
dataset from the real photographs bundled in scikit-image's wheel, following the HPatches
extraction protocol (``hpatches-sample/README.md``):

* every photo gives two sequences. ``i_<name>`` (illumination): five target images of the
  same view under gamma, gain/offset, a smooth non-uniform illumination field and a little
  blur, with a tiny (about 1 px) geometric change. ``v_<name>`` (viewpoint): the reference is
  the photo mirrored left-right and scaled by 0.8 (so its patches differ from the ``i_``
  ones); its five targets are random homographies of increasing strength (zoom, rotation,
  perspective) with a mild photometric change. Targets get auto-exposure (no saturation),
  Gaussian sensor noise of std 1.5 (0..255) and are quantised like camera images;
* keypoints on the reference only: a difference-of-Gaussians detector (3 scales per octave,
  sigma >= 2 px), one dominant orientation each; detections whose 5-sigma circles overlap
  with IoU > 0.5 are thinned (random order, greedy);
* patch = square of half-width 5 sigma oriented by the keypoint, sampled at 65x65 from a
  Gaussian pyramid level chosen from the local sampling step (no aliasing), rounded to uint8
  and resized to 32x32 with :func:`nhpatches.data.resize_patches` (as the loader does);
* for every target image and level e/h/t an independent affine jitter per patch (uniform
  rotation, log-uniform per-axis scales along a random axis pair, translation in half-widths;
  the calibrated table of the sample README) is applied to the reference frame, and the
  jittered frame is projected through the ground-truth homography. Only points whose frames
  lie inside every image are kept, then at most ``max_patches_per_sequence`` in random order;
* noisy strips come from :func:`nhpatches.data.make_noisy` (noise model of
  :mod:`nhpatches.data`), seeded by the build seed and the sequence name.

* photos are contrast-stretched (0.5-99.5 percentiles to 0..255) when loaded, and three nearly
  flat ones (``FLAT_PHOTOS``) are left out, so patch contrast is closer to real HPatches and the
  noise levels mean about the same on both.

Realism (:func:`measure_realism`, pixel descriptor, clean patches, at most 150 per sequence):
the default build (generator 1.1, seed 0, 30 sequences, 5191 points) gives matching MRR
e 0.798 > h 0.424 > t 0.231 and mean positive distance 0.744 < 0.996 < 1.139; the real
``v_wormhole`` sample (150 patches) gives 0.739 > 0.427 > 0.182 and 0.683 < 0.880 < 1.056.
Notebook 00 recomputes the figures for the dataset in use (``table_0_realism``).

The dataset is built in a temporary sibling folder and moved into place with ``os.replace``;
``dataset.json`` (the manifest) is written last, so a folder without it is never reused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Mapping
from collections.abc import Sequence as SequenceABC
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from scipy import ndimage

from nhpatches.core.config import (
    IMAGE_TYPES,
    NOISE_LEVELS,
    PATCH_SIZE,
    RELEASE_PATCH_SIZE,
)
from nhpatches.data import (
    MANIFEST_NAME,
    NOISE_STD,
    NOISE_SUFFIX,
    Sequence,
    make_noisy,
    resize_patches,
    sequence_noise_seed,
)

if TYPE_CHECKING:
    import pandas as pd

#: Bumped whenever the generator's output changes; part of the manifest match.
GENERATOR_VERSION = "1.1"
#: Bundled scikit-image photos (file name, sequence stem), in build order.
PHOTOS: tuple[tuple[str, str], ...] = (
    ("camera.png", "camera"), ("astronaut.png", "astronaut"), ("coffee.png", "coffee"),
    ("brick.png", "brick"), ("chelsea.png", "chelsea"), ("coins.png", "coins"),
    ("grass.png", "grass"), ("gravel.png", "gravel"),
    ("motorcycle_left.png", "motorcycle"), ("rocket.jpg", "rocket"), ("page.png", "page"),
    ("text.png", "text"), ("clock_motion.png", "clockmotion"),
    ("hubble_deep_field.jpg", "hubble"), ("ihc.png", "ihc"),
)
#: Bundled photos left out: nearly flat at patch scale even after the contrast stretch (median
#: pixel std of their keypoint patches 5-8 grey levels, against ~41 on real HPatches), so their
#: noisy patches would be noise alone at every level.
FLAT_PHOTOS: tuple[str, ...] = ("moon.png", "cell.png", "retina.jpg")
#: File names of the bundled photos in build order (``images=DEFAULT_IMAGES[:k]`` = ``images=k``).
DEFAULT_IMAGES: tuple[str, ...] = tuple(file_name for file_name, _ in PHOTOS)
#: Jitter per level: (max rotation deg, min per-axis scale, max per-axis scale, max translation).
JITTER: Mapping[str, tuple[float, float, float, float]] = {
    "e": (12.9, 0.88, 1.14, 0.13), "h": (26.0, 0.77, 1.30, 0.26), "t": (40.4, 0.67, 1.50, 0.40)}
#: Patch half-width in units of the detection scale (HPatches' magnification factor).
MAGNIFICATION = 5.0
#: Smallest detection scale (px) and number of DoG octaves.
MIN_SIGMA, NUM_OCTAVES = 2.0, 3
#: Photos are downscaled so their longer side is at most this many pixels.
MAX_SIDE = 640
#: Fraction of photos whose two sequences form the test side of splits a, b and c.
TEST_FRACTION = 0.45
#: Std (0..255) of the sensor noise added to every target image.
SENSOR_NOISE = 1.5
_PYRAMID_LEVELS = 5


@dataclass(frozen=True)
class Frames:
    """Oriented square patch frames in reference-image pixels.

    Shape: centers (n, 2) as (x, y); radii (n,) half-widths; angles (n,) radians.
    """

    centers: np.ndarray
    radii: np.ndarray
    angles: np.ndarray

    def take(self, index: np.ndarray) -> Frames:
        """The frames at the given indices."""
        return Frames(self.centers[index], self.radii[index], self.angles[index])


# --------------------------------------------------------------------------- photos


def photo_path(file_name: str) -> Path:
    """Path of a photo bundled in scikit-image's data folder."""
    import skimage.data

    path = Path(skimage.data.__file__).resolve().parent / file_name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: bundled scikit-image photo not found (skimage data folder)")
    return path


def load_photo(file_name: str, max_side: int = MAX_SIDE) -> np.ndarray:
    """A bundled photo as grayscale float32 0..255, downscaled (antialiased) to max_side, contrast-stretched.

    Shape: -> (H, W) float32
    """
    with Image.open(photo_path(file_name)) as image:
        gray = image.convert("L")
        scale = max_side / max(gray.size)
        if scale < 1:
            size = (round(gray.size[0] * scale), round(gray.size[1] * scale))
            gray = gray.resize(size, Image.Resampling.LANCZOS)
        return stretch_contrast(np.asarray(gray, dtype=np.float32))


def stretch_contrast(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Map the [low, high] percentiles to [0, 255] (clipped), as a camera's auto-exposure would.

    Several bundled photos (microscopy, astronomy) span a few grey levels only; stretched,
    their patches get a pixel std closer to real HPatches patches (median ~41 at 32 px),
    so the noise levels mean the same thing on them as on HPatches.
    Shape: (H, W) -> (H, W) float32
    """
    lo, hi = np.percentile(image, [low, high])
    return np.clip((image - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.float32)


def viewpoint_reference(photo: np.ndarray) -> np.ndarray:
    """Reference image of a v_ sequence: the photo mirrored left-right and scaled by 0.8.

    Shape: (H, W) -> (~0.8 H, ~0.8 W) float32
    """
    mirrored = ndimage.gaussian_filter(photo[:, ::-1], 0.5 * np.sqrt(1 / 0.8**2 - 1))
    return ndimage.zoom(mirrored, 0.8, order=1, grid_mode=True, mode="nearest").astype(np.float32)


# --------------------------------------------------------------------------- keypoints


def _octave_layers(base: np.ndarray, intervals: int = 3) -> np.ndarray:
    """Gaussian layers of one octave from a base blurred to MIN_SIGMA (its own pixels).

    Shape: (H, W) -> (intervals + 3, H, W)
    """
    sigmas = MIN_SIGMA * 2.0 ** (np.arange(intervals + 3) / intervals)
    layers = [base] + [ndimage.gaussian_filter(base, np.sqrt(s**2 - MIN_SIGMA**2)) for s in sigmas[1:]]
    return np.stack(layers)


def _dog_extrema(dog: np.ndarray, threshold: float, edge_ratio: float = 10.0) -> np.ndarray:
    """(layer, y, x, |response|) of 3x3x3 DoG extrema above threshold that pass the edge test.

    Shape: dog (L, H, W) -> (n, 4) float
    """
    peaks = (dog == ndimage.maximum_filter(dog, size=3)) | (dog == ndimage.minimum_filter(dog, size=3))
    peaks &= np.abs(dog) > threshold
    peaks[[0, -1]] = False
    peaks[:, [0, -1]] = False
    peaks[:, :, [0, -1]] = False
    layer, y, x = np.nonzero(peaks)
    dxx = dog[layer, y, x + 1] + dog[layer, y, x - 1] - 2 * dog[layer, y, x]
    dyy = dog[layer, y + 1, x] + dog[layer, y - 1, x] - 2 * dog[layer, y, x]
    dxy = (dog[layer, y + 1, x + 1] - dog[layer, y + 1, x - 1]
           - dog[layer, y - 1, x + 1] + dog[layer, y - 1, x - 1]) / 4
    det = dxx * dyy - dxy**2
    good = (det > 0) & ((dxx + dyy) ** 2 * edge_ratio < (edge_ratio + 1) ** 2 * det)
    return np.stack([layer, y, x, np.abs(dog[layer, y, x])], axis=1)[good]


def _dominant_angles(layer_image: np.ndarray, points: np.ndarray, sigma: float) -> np.ndarray:
    """Dominant gradient orientation (radians) at points (y, x) of one Gaussian layer, 36 bins.

    Shape: points (n, 2) -> (n,)
    """
    grad_y, grad_x = np.gradient(layer_image)
    offsets = np.linspace(-4.5 * sigma, 4.5 * sigma, 13)
    oy, ox = np.meshgrid(offsets, offsets, indexing="ij")
    weight = np.exp(-(oy**2 + ox**2) / (2 * (1.5 * sigma) ** 2)).ravel()
    coords = [points[:, :1] + oy.ravel(), points[:, 1:] + ox.ravel()]
    gx = ndimage.map_coordinates(grad_x, coords, order=1, mode="nearest")
    gy = ndimage.map_coordinates(grad_y, coords, order=1, mode="nearest")
    bins = (np.floor(np.arctan2(gy, gx) / (2 * np.pi) * 36).astype(int)) % 36
    histogram = np.zeros((len(points), 36))
    np.add.at(histogram, (np.arange(len(points))[:, None], bins), np.hypot(gx, gy) * weight)
    histogram = histogram + 0.5 * (np.roll(histogram, 1, axis=1) + np.roll(histogram, -1, axis=1))
    return (np.argmax(histogram, axis=1) + 0.5) * (2 * np.pi / 36)


def detect_keypoints(image: np.ndarray, max_keypoints: int | None = None,
                     threshold: float = 0.001) -> Frames:
    """DoG keypoints (sigma >= 2 px, the strongest max_keypoints) with one dominant orientation.

    Radii are MAGNIFICATION * sigma. Shape: image (H, W) float 0..255 -> Frames of n points
    """
    base = ndimage.gaussian_filter(image / 255.0, np.sqrt(MIN_SIGMA**2 - 0.25)).astype(np.float32)
    centers, sigmas, angles, responses = [], [], [], []
    for octave in range(NUM_OCTAVES):
        if min(base.shape) < 16:
            break
        layers = _octave_layers(base)
        extrema = _dog_extrema(layers[1:] - layers[:-1], threshold)
        for layer in np.unique(extrema[:, 0]).astype(int):
            found = extrema[extrema[:, 0] == layer]
            sigma = MIN_SIGMA * 2.0 ** (layer / 3)
            angles.append(_dominant_angles(layers[layer], found[:, 1:3], sigma))
            centers.append(found[:, 2:0:-1] * 2.0**octave)
            sigmas.append(np.full(len(found), sigma * 2.0**octave))
            responses.append(found[:, 3])
        base = layers[3][::2, ::2]
    if not centers:
        return Frames(np.zeros((0, 2)), np.zeros(0), np.zeros(0))
    strongest = np.argsort(-np.concatenate(responses), kind="stable")[:max_keypoints]
    frames = Frames(np.concatenate(centers), MAGNIFICATION * np.concatenate(sigmas), np.concatenate(angles))
    return frames.take(np.sort(strongest))


def circle_iou(centers: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Pairwise intersection-over-union of circles.

    Shape: centers (n, 2), radii (n,) -> (n, n)
    """
    dist = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    r1, r2 = radii[:, None], radii[None, :]
    d = np.maximum(dist, 1e-9)
    cos1 = np.clip((d**2 + r1**2 - r2**2) / (2 * d * r1), -1, 1)
    cos2 = np.clip((d**2 + r2**2 - r1**2) / (2 * d * r2), -1, 1)
    lens = (r1**2 * np.arccos(cos1) + r2**2 * np.arccos(cos2)
            - 0.5 * np.sqrt(np.clip((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2), 0, None)))
    inner = np.pi * np.minimum(r1, r2) ** 2
    intersection = np.where(dist >= r1 + r2, 0.0, np.where(dist <= np.abs(r1 - r2), inner, lens))
    return intersection / (np.pi * r1**2 + np.pi * r2**2 - intersection)


def thin_overlapping(frames: Frames, rng: np.random.Generator, max_iou: float = 0.5) -> Frames:
    """Keep one random member of every cluster of frames whose circles overlap with IoU > max_iou."""
    order = rng.permutation(len(frames.radii))
    conflicts = circle_iou(frames.centers[order], frames.radii[order]) > max_iou
    alive = np.ones(len(order), dtype=bool)
    for index in range(len(order)):
        if alive[index]:
            alive[index + 1:] &= ~conflicts[index, index + 1:]
    return frames.take(np.sort(order[alive]))


# --------------------------------------------------------------------------- geometry


def homography_from_points(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 3x3 homography mapping 4 source points onto 4 target points (DLT).

    Shape: (4, 2), (4, 2) -> (3, 3)
    """
    rows, rhs = [], []
    for (x, y), (u, v) in zip(source, target):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.append(np.linalg.solve(np.array(rows), np.array(rhs)), 1.0).reshape(3, 3)


def apply_homography(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Project (x, y) points. Shape: (..., 2) -> (..., 2)"""
    mapped = points @ homography[:2, :2].T + homography[:2, 2]
    scale = points @ homography[2, :2] + homography[2, 2]
    return mapped / scale[..., None]


def random_homography(shape: tuple[int, int], strength: float, kind: str,
                      rng: np.random.Generator) -> np.ndarray:
    """Ground-truth homography reference -> target: zoom, rotation and corner perspective.

    'viewpoint' grows with strength in (0, 1]; 'illumination' is a ~1 px perturbation.
    """
    height, width = shape
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], float)
    middle = corners.mean(axis=0)
    if kind == "illumination":
        return homography_from_points(corners, corners + rng.uniform(-1, 1, (4, 2)))
    zoom = np.exp(rng.uniform(-0.45, 0.1) * strength)
    angle = np.deg2rad(rng.uniform(-20, 20) * strength)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = middle + zoom * (corners - middle) @ rotation.T
    moved += rng.uniform(-1, 1, (4, 2)) * 0.12 * strength * min(shape)
    return homography_from_points(corners, moved)


def warp_image(image: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Target image = the reference seen through the homography (antialiased, same size).

    Shape: (H, W) -> (H, W) float32
    """
    middle = np.array([(image.shape[1] - 1) / 2, (image.shape[0] - 1) / 2])
    zoom = np.sqrt(np.abs(np.linalg.det(homography)) / np.abs(middle @ homography[2, :2] + homography[2, 2]) ** 3)
    blurred = ndimage.gaussian_filter(image, 0.5 * np.sqrt(max(1 / zoom**2 - 1, 0)))
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float32)
    source = apply_homography(np.linalg.inv(homography), np.stack([xs, ys], axis=-1))
    return ndimage.map_coordinates(blurred, [source[..., 1], source[..., 0]], order=1,
                                   mode="nearest").astype(np.float32)


# --------------------------------------------------------------------------- photometry


def illumination_field(shape: tuple[int, int], strength: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative illumination: gradient, vignetting and one soft light blob.

    Shape: -> (H, W) float32, values >= 0.2
    """
    ys, xs = np.mgrid[-1:1:shape[0] * 1j, -1:1:shape[1] * 1j]
    gradient = rng.uniform(-0.4, 0.4, 2) * strength
    vignette = rng.uniform(0, 0.35) * strength
    blob_center, blob_gain = rng.uniform(-1, 1, 2), rng.uniform(-0.35, 0.35) * strength
    blob = np.exp(-((xs - blob_center[0]) ** 2 + (ys - blob_center[1]) ** 2) / 0.5)
    field = 1 + gradient[0] * xs + gradient[1] * ys - vignette * (xs**2 + ys**2) + blob_gain * blob
    return np.clip(field, 0.2, None).astype(np.float32)


def photometric_change(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Gamma, gain/offset, illumination field, auto-exposure, a little blur and sensor noise; 0..255.

    Shape: (H, W) -> (H, W) float32
    """
    gamma = np.exp(rng.uniform(-0.6, 0.6) * strength)
    gain, offset = np.exp(rng.uniform(-0.4, 0.4) * strength), rng.uniform(-15, 15) * strength
    changed = 255 * gain * (image / 255.0) ** gamma * illumination_field(image.shape, strength, rng) + offset
    changed *= min(1.0, 250.0 / max(float(np.percentile(changed, 99.5)), 1e-6))  # auto-exposure
    changed = ndimage.gaussian_filter(changed, rng.uniform(0, 0.8) * strength)
    changed += rng.standard_normal(image.shape) * SENSOR_NOISE
    return np.clip(np.round(changed), 0, 255).astype(np.float32)


def make_targets(reference: np.ndarray, kind: str, rng: np.random.Generator
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The 5 target images and their ground-truth homographies (reference -> target k)."""
    images, homographies = [], []
    for k in range(1, 6):
        homography = random_homography(reference.shape, k / 5, kind, rng)
        strength = 1.0 if kind == "illumination" else 0.3
        images.append(photometric_change(warp_image(reference, homography), strength, rng))
        homographies.append(homography)
    return images, homographies


# --------------------------------------------------------------------------- patch sampling


def gaussian_pyramid(image: np.ndarray, levels: int = _PYRAMID_LEVELS) -> list[np.ndarray]:
    """Gaussian pyramid; level l pixel i sits at level-0 coordinate i * 2**l."""
    pyramid = [image.astype(np.float32)]
    for _ in range(levels - 1):
        pyramid.append(ndimage.gaussian_filter(pyramid[-1], 1.0)[::2, ::2])
    return pyramid


def draw_jitter(count: int, level: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Affine jitter of one level: linear part and translation (half-width units).

    Shape: -> (count, 2, 2), (count, 2)
    """
    max_rotation, min_scale, max_scale, max_shift = JITTER[level]
    rotation = np.deg2rad(rng.uniform(-max_rotation, max_rotation, count))
    axis = rng.uniform(0, np.pi, count)
    scales = np.exp(rng.uniform(np.log(min_scale), np.log(max_scale), (count, 2)))
    shift = rng.uniform(-max_shift, max_shift, (count, 2))
    linear = _rotations(rotation) @ _rotations(axis) @ (scales[:, :, None] * _rotations(-axis))
    return linear, shift


def _rotations(angles: np.ndarray) -> np.ndarray:
    """Rotation matrices. Shape: (n,) -> (n, 2, 2)"""
    cos, sin = np.cos(angles), np.sin(angles)
    return np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)


def frame_matrices(frames: Frames, linear: np.ndarray | None = None,
                   shift: np.ndarray | None = None) -> np.ndarray:
    """Affine maps from frame units (-1..1) to reference (x, y), with optional jitter.

    Shape: -> (n, 3, 3)
    """
    count = len(frames.radii)
    linear = np.broadcast_to(np.eye(2), (count, 2, 2)) if linear is None else linear
    shift = np.zeros((count, 2)) if shift is None else shift
    oriented = frames.radii[:, None, None] * _rotations(frames.angles)
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
    return points.reshape((len(matrices),) + grid.shape)


def frame_points(frames: Frames, grid: np.ndarray, linear: np.ndarray | None = None,
                 shift: np.ndarray | None = None, homography: np.ndarray | None = None) -> np.ndarray:
    """(x, y) of patch-grid points of (jittered) frames, in the reference or through a homography.

    Shape: grid (..., 2) -> (n, ..., 2)
    """
    matrices = frame_matrices(frames, linear, shift)
    if homography is not None:
        matrices = homography @ matrices
    return project_grid(matrices, grid)


def _inside(points: np.ndarray, shape: tuple[int, int], margin: float = 1.0) -> np.ndarray:
    """Whether all points of each frame lie inside an image. Shape: (n, k, 2) -> (n,)"""
    x, y = points[..., 0], points[..., 1]
    ok = (x >= margin) & (y >= margin) & (x <= shape[1] - 1 - margin) & (y <= shape[0] - 1 - margin)
    return ok.all(axis=-1)


def _sampling_step(frames: Frames, linear: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Target-image pixels between neighbouring 65-px patch samples. Shape: -> (n,)"""
    denominator = frames.centers @ homography[2, :2] + homography[2, 2]
    jacobian = np.abs(np.linalg.det(homography)) / np.abs(denominator) ** 3
    area = np.abs(np.linalg.det(linear)) * jacobian
    return frames.radii / (RELEASE_PATCH_SIZE // 2) * np.sqrt(area)


def sample_patches(pyramid: list[np.ndarray], points: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Bilinear samples at (x, y) points, each patch from the pyramid level matching its step.

    Shape: points (n, P, P, 2), steps (n,) -> (n, P, P) uint8
    """
    levels = np.clip(np.floor(np.log2(np.maximum(steps, 1e-6)) + 0.5), 0, len(pyramid) - 1).astype(int)
    patches = np.empty(points.shape[:-1], dtype=np.float32)
    for level in np.unique(levels):
        chosen = levels == level
        scaled = points[chosen] / 2.0**level
        patches[chosen] = ndimage.map_coordinates(pyramid[level], [scaled[..., 1], scaled[..., 0]],
                                                  order=1, mode="nearest")
    return np.clip(np.round(patches), 0, 255).astype(np.uint8)


def _patch_grid(size: int = RELEASE_PATCH_SIZE) -> np.ndarray:
    """(x, y) grid of a patch in frame units. Shape: -> (size, size, 2)"""
    ticks = (np.arange(size) - size // 2) / (size // 2)
    xs, ys = np.meshgrid(ticks, ticks)
    return np.stack([xs, ys], axis=-1)


def _corners() -> np.ndarray:
    """Corners of a patch frame in frame units. Shape: -> (4, 2)"""
    return np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


def _jitter_all(count: int, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One independent jitter per (type, patch) for the 15 target types, in IMAGE_TYPES order."""
    return {image_type: draw_jitter(count, image_type[0], rng) for image_type in IMAGE_TYPES[1:]}


def _valid_frames(frames: Frames, jitters: Mapping[str, tuple[np.ndarray, np.ndarray]],
                  shape: tuple[int, int], homographies: SequenceABC[np.ndarray]) -> np.ndarray:
    """Frames inside the reference and, after every jitter, inside the reference and the target."""
    keep = _inside(frame_points(frames, _corners()), shape)
    for image_type, (linear, shift) in jitters.items():
        points = frame_points(frames, _corners(), linear, shift)
        projected = frame_points(frames, _corners(), linear, shift, homographies[int(image_type[1]) - 1])
        keep &= _inside(points, shape) & _inside(projected, shape)
    return keep


def extract_sequence(reference: np.ndarray, targets: SequenceABC[np.ndarray],
                     homographies: SequenceABC[np.ndarray], max_patches: int,
                     rng: np.random.Generator) -> np.ndarray:
    """The 16 clean strips of a sequence, HPatches protocol, 65 px sampled then resized to 32.

    Shape: reference and targets (H, W) -> (16, N, 32, 32) uint8
    """
    frames = thin_overlapping(detect_keypoints(reference, max_keypoints=4 * max_patches), rng)
    jitters = _jitter_all(len(frames.radii), rng)
    valid = np.flatnonzero(_valid_frames(frames, jitters, reference.shape, homographies))
    chosen = rng.permutation(valid)[:max_patches]
    frames, grid = frames.take(chosen), _patch_grid()
    strips = [sample_patches(gaussian_pyramid(reference), frame_points(frames, grid),
                             frames.radii / (RELEASE_PATCH_SIZE // 2))]
    pyramids = [gaussian_pyramid(target) for target in targets]
    for image_type in IMAGE_TYPES[1:]:
        linear, shift = (part[chosen] for part in jitters[image_type])
        homography = homographies[int(image_type[1]) - 1]
        points = frame_points(frames, grid, linear, shift, homography)
        steps = _sampling_step(frames, linear, homography)
        strips.append(sample_patches(pyramids[int(image_type[1]) - 1], points, steps))
    return resize_patches(np.stack(strips), PATCH_SIZE)


# --------------------------------------------------------------------------- building


def sequence_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of one sequence, from the build seed and the sequence name."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def build_sequence(photo: np.ndarray, name: str, seed: int, max_patches: int) -> np.ndarray:
    """Clean strips of sequence i_<stem> or v_<stem> made from one photo.

    Shape: photo (H, W) float32 0..255 -> (16, N, 32, 32) uint8
    """
    rng = sequence_rng(seed, name)
    kind = "illumination" if name.startswith("i_") else "viewpoint"
    reference = photo if kind == "illumination" else np.round(viewpoint_reference(photo))
    targets, homographies = make_targets(reference, kind, rng)
    clean = extract_sequence(reference, targets, homographies, max_patches, rng)
    if clean.shape[1] < 2:
        raise ValueError(f"sequence {name}: only {clean.shape[1]} valid patches; need N >= 2")
    return clean


def write_sequence(seq_dir: Path, clean: np.ndarray, noisy: np.ndarray) -> None:
    """Write clean <type>.png and noisy <type>_noise.png strips (32 px wide)."""
    seq_dir.mkdir(parents=True, exist_ok=True)
    for index, image_type in enumerate(IMAGE_TYPES):
        for array, suffix in ((clean, ""), (noisy, NOISE_SUFFIX)):
            strip = array[index].reshape(-1, array.shape[-1])
            Image.fromarray(strip, mode="L").save(seq_dir / f"{image_type}{suffix}.png", compress_level=1)


def resolve_images(images: int | SequenceABC[str] | None) -> list[tuple[str, str]]:
    """Photos to use: None = all, an int = the first k, or names (file, file stem or sequence stem)."""
    if images is None:
        return list(PHOTOS)
    if isinstance(images, (int, np.integer)):
        if not 2 <= images <= len(PHOTOS):
            raise ValueError(f"images={images}: expected between 2 and {len(PHOTOS)} bundled photos")
        return list(PHOTOS[:images])
    lookup = {key: photo for photo in PHOTOS for key in (photo[0], photo[0].rsplit(".", 1)[0], photo[1])}
    unknown = [name for name in images if name not in lookup]
    if unknown or len(set(images)) < 2:
        raise ValueError(f"images={list(images)}: need at least 2 distinct bundled photos; unknown "
                         f"{unknown}; known {[stem for _, stem in PHOTOS]}")
    return list(dict.fromkeys(lookup[name] for name in images))


def make_splits(stems: SequenceABC[str], seed: int) -> dict:
    """HPatches-style splits split by source photo (a, b, c) plus illum, view and full."""
    num_test = min(max(round(TEST_FRACTION * len(stems)), 1), len(stems) - 1)
    splits = {}
    for index, split in enumerate("abc"):
        test_stems = set(np.random.default_rng([seed, index]).permutation(list(stems))[:num_test])
        sides = {side: [stem for stem in stems if (stem in test_stems) == (side == "test")]
                 for side in ("test", "train")}
        splits[split] = {"name": split,
                         **{side: [f"{p}_{s}" for p in "iv" for s in chosen] for side, chosen in sides.items()}}
    splits["illum"] = {"name": "illum", "test": [f"i_{stem}" for stem in stems]}
    splits["view"] = {"name": "view", "test": [f"v_{stem}" for stem in stems]}
    splits["full"] = {"name": "full", "test": splits["illum"]["test"] + splits["view"]["test"]}
    return splits


def build_parameters(seed: int = 0, max_patches_per_sequence: int = 256,
                     images: int | SequenceABC[str] | None = None) -> dict:
    """The parameters a manifest must match for a dataset to be reused."""
    return {"generator_version": GENERATOR_VERSION, "seed": int(seed),
            "max_patches_per_sequence": int(max_patches_per_sequence),
            "images": [file_name for file_name, _ in resolve_images(images)],
            "noise_std": dict(NOISE_STD), "max_side": MAX_SIDE}


def build_photo_sequences(folder: Path, file_name: str, stem: str, parameters: Mapping) -> dict:
    """Build and write i_<stem> and v_<stem> into folder; return their manifest entries."""
    photo = load_photo(file_name, parameters["max_side"])
    entries = {}
    for name in (f"i_{stem}", f"v_{stem}"):
        clean = build_sequence(photo, name, parameters["seed"], parameters["max_patches_per_sequence"])
        write_sequence(folder / name, clean, make_noisy(clean, sequence_noise_seed(parameters["seed"], name)))
        entries[name] = {"num_patches": int(clean.shape[1]), "source_image": file_name}
    return entries


def _build_all(folder: Path, photos: list[tuple[str, str]], parameters: Mapping, workers: int) -> dict:
    """Build every photo's sequences, in worker threads when workers > 1; entries in photo order."""
    jobs = [(folder, file_name, stem, parameters) for file_name, stem in photos]
    if workers <= 1 or len(jobs) <= 1:
        results = [build_photo_sequences(*job) for job in jobs]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(build_photo_sequences, *zip(*jobs)))
    return {name: entry for result in results for name, entry in result.items()}


def _write_dataset(folder: Path, parameters: Mapping, workers: int) -> dict:
    """Write every sequence, splits.json and, last, the manifest into folder; return the manifest."""
    started = time.perf_counter()
    photos = [photo for photo in PHOTOS if photo[0] in parameters["images"]]
    sequences = _build_all(folder, photos, parameters, workers)
    splits = make_splits([stem for _, stem in photos], parameters["seed"])
    (folder / "splits.json").write_text(json.dumps(splits, indent=1))
    manifest = {"generator": "nhpatches.embedded", "parameters": dict(parameters),
                "jitter": {NOISE_LEVELS[key]: value for key, value in JITTER.items()},
                "magnification": MAGNIFICATION, "patch_size": PATCH_SIZE, "sequences": sequences,
                "num_patches": sum(entry["num_patches"] for entry in sequences.values()),
                "build_seconds": round(time.perf_counter() - started, 2)}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
    return manifest


def _replace_folder(source: Path, destination: Path) -> None:
    """Move a finished folder into place, replacing any old one (which is deleted)."""
    old = None
    if destination.exists():
        old = destination.with_name(f".{destination.name}.old-{os.getpid()}-{time.time_ns()}")
        os.replace(destination, old)
    os.replace(source, destination)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def default_workers() -> int:
    """Worker processes for a build: the usable CPU cores, at most 4."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def build_embedded_dataset(out_dir: Path | str, seed: int = 0, max_patches_per_sequence: int = 256,
                           images: int | SequenceABC[str] | None = None, workers: int | None = None) -> Path:
    """Build the embedded dataset in a temporary sibling folder and move it to out_dir.

    workers (default: the CPU cores, at most 4) only changes the speed, never the data.
    """
    out_dir = Path(out_dir)
    parameters = build_parameters(seed, max_patches_per_sequence, images)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _write_dataset(folder, parameters, default_workers() if workers is None else workers)
        _replace_folder(folder, out_dir)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out_dir


def read_manifest(data_dir: Path | str) -> dict | None:
    """The dataset's manifest, or None if it is missing or unreadable."""
    try:
        manifest = json.loads((Path(data_dir) / MANIFEST_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def is_complete(data_dir: Path | str, parameters: Mapping) -> bool:
    """True if data_dir holds a finished build with exactly these parameters."""
    manifest = read_manifest(data_dir)
    if manifest is None or manifest.get("parameters") != json.loads(json.dumps(dict(parameters))):
        return False
    names = manifest.get("sequences", {})
    return bool(names) and (Path(data_dir) / "splits.json").is_file() and all(
        (Path(data_dir) / name / f"t5{NOISE_SUFFIX}.png").is_file() for name in names)


def ensure_embedded_dataset(out_dir: Path | str, seed: int = 0, max_patches_per_sequence: int = 256,
                            images: int | SequenceABC[str] | None = None, workers: int | None = None) -> Path:
    """Reuse out_dir if its manifest matches the parameters, else (re)build it."""
    parameters = build_parameters(seed, max_patches_per_sequence, images)
    if is_complete(out_dir, parameters):
        return Path(out_dir)
    return build_embedded_dataset(out_dir, seed, max_patches_per_sequence, images, workers)


# --------------------------------------------------------------------------- realism


def pixel_descriptors(patches: np.ndarray) -> np.ndarray:
    """Trivial descriptor: pixels minus mean, divided by std, L2-normalised.

    Shape: (n, P, P) -> (n, P*P) float64
    """
    flat = patches.reshape(len(patches), -1).astype(np.float64)
    flat = (flat - flat.mean(axis=1, keepdims=True)) / (flat.std(axis=1, keepdims=True) + 1e-8)
    return flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-12)


def _pair_statistics(reference: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Positive/negative distances, reciprocal rank and NN accuracy of ref -> target matching."""
    distances = np.sqrt(np.clip(2 - 2 * reference @ target.T, 0, None))
    positive = np.diag(distances)
    ranks = 1 + (distances < positive[:, None]).sum(axis=1)
    count = len(positive)
    return {"positive_distance": positive.mean(),
            "negative_distance": (distances.sum() - positive.sum()) / (count * (count - 1)),
            "matching_mrr": np.mean(1.0 / ranks), "nn_accuracy": np.mean(ranks == 1)}


def measure_realism(sequences: Mapping[str, Sequence], noisy: bool = False,
                    max_patches: int | None = None) -> pd.DataFrame:
    """Per level e/h/t: mean positive/negative distance, matching MRR and NN accuracy (pixel descriptor).

    Averages ref -> {level}k over k = 1..5 and the sequences (clean patches unless noisy=True).
    """
    import pandas as pd

    rows = []
    for level, noise_level in NOISE_LEVELS.items():
        stats = []
        for sequence in sequences.values():
            patches = (sequence.noisy if noisy else sequence.clean)[:, :max_patches]
            reference = pixel_descriptors(patches[0])
            stats += [_pair_statistics(reference, pixel_descriptors(patches[IMAGE_TYPES.index(f"{level}{k}")]))
                      for k in range(1, 6)]
        rows.append({"level": level, "noise_level": noise_level, **pd.DataFrame(stats).mean().to_dict(),
                     "num_sequences": len(sequences),
                     "num_patches": sum(min(s.num_patches, max_patches or s.num_patches) for s in sequences.values())})
    return pd.DataFrame(rows).set_index("level")
