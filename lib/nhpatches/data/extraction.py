"""Patch extraction for the embedded dataset, following the HPatches protocol.

Keypoints (difference of Gaussians, one orientation each, thinned by overlap), the geometric and
photometric changes that make the target images, and the sampling of oriented, scale-normalised
65 px patches with easy / hard / tough jitter through a Gaussian pyramid, with the cutter of
:mod:`.regions` (its exact interpolator; ``nhpatches.extract_patches`` cuts photographs with the same
frames and pyramid). :mod:`.embedded` builds the dataset with these; see its docstring for the
protocol as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as SequenceABC

import numpy as np
from scipy import ndimage

from nhpatches.core.config import (
    IMAGE_TYPES,
    PATCH_SIZE,
    RELEASE_PATCH_SIZE,
)
from nhpatches.data.hpatches import resize_patches
from nhpatches.data.regions import (  # MAGNIFICATION, Frames and the cutter are also reachable from here
    MAGNIFICATION,
    Frames,
    frame_matrices,
    frame_points,
    gaussian_pyramid,
    rotations,
    sample_frames,
)

#: Jitter per level: (max rotation deg, min per-axis scale, max per-axis scale, max translation).
JITTER: Mapping[str, tuple[float, float, float, float]] = {
    "e": (12.9, 0.88, 1.14, 0.13),
    "h": (26.0, 0.77, 1.30, 0.26),
    "t": (40.4, 0.67, 1.50, 0.40),
}
#: Smallest detection scale (px) and number of DoG octaves.
MIN_SIGMA, NUM_OCTAVES = 2.0, 3
#: Std (0..255) of the sensor noise added to every target image.
SENSOR_NOISE = 1.5


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
    dxy = (
        dog[layer, y + 1, x + 1] - dog[layer, y + 1, x - 1] - dog[layer, y - 1, x + 1] + dog[layer, y - 1, x - 1]
    ) / 4
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


def detect_keypoints(image: np.ndarray, max_keypoints: int | None = None, threshold: float = 0.001) -> Frames:
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
    lens = (
        r1**2 * np.arccos(cos1)
        + r2**2 * np.arccos(cos2)
        - 0.5 * np.sqrt(np.clip((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2), 0, None))
    )
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
            alive[index + 1 :] &= ~conflicts[index, index + 1 :]
    return frames.take(np.sort(order[alive]))


# --------------------------------------------------------------------------- geometry


def homography_from_points(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 3x3 homography mapping 4 source points onto 4 target points (DLT).

    Shape: (4, 2), (4, 2) -> (3, 3)
    """
    rows, rhs = [], []
    for (x, y), (u, v) in zip(source, target, strict=False):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.append(np.linalg.solve(np.array(rows), np.array(rhs)), 1.0).reshape(3, 3)


def apply_homography(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Project (x, y) points. Shape: (..., 2) -> (..., 2)."""
    mapped = points @ homography[:2, :2].T + homography[:2, 2]
    scale = points @ homography[2, :2] + homography[2, 2]
    return mapped / scale[..., None]


def random_homography(shape: tuple[int, int], strength: float, kind: str, rng: np.random.Generator) -> np.ndarray:
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
    ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float32)
    source = apply_homography(np.linalg.inv(homography), np.stack([xs, ys], axis=-1))
    return ndimage.map_coordinates(blurred, [source[..., 1], source[..., 0]], order=1, mode="nearest").astype(
        np.float32
    )


# --------------------------------------------------------------------------- photometry


def illumination_field(shape: tuple[int, int], strength: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative illumination: gradient, vignetting and one soft light blob.

    Shape: -> (H, W) float32, values >= 0.2
    """
    ys, xs = np.mgrid[-1 : 1 : shape[0] * 1j, -1 : 1 : shape[1] * 1j]
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


def make_targets(
    reference: np.ndarray, kind: str, rng: np.random.Generator
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


def draw_jitter(count: int, level: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Affine jitter of one level: linear part and translation (half-width units).

    Shape: -> (count, 2, 2), (count, 2)
    """
    max_rotation, min_scale, max_scale, max_shift = JITTER[level]
    rotation = np.deg2rad(rng.uniform(-max_rotation, max_rotation, count))
    axis = rng.uniform(0, np.pi, count)
    scales = np.exp(rng.uniform(np.log(min_scale), np.log(max_scale), (count, 2)))
    shift = rng.uniform(-max_shift, max_shift, (count, 2))
    linear = rotations(rotation) @ rotations(axis) @ (scales[:, :, None] * rotations(-axis))
    return linear, shift


def _inside(points: np.ndarray, shape: tuple[int, int], margin: float = 1.0) -> np.ndarray:
    """Whether all points of each frame lie inside an image. Shape: (n, k, 2) -> (n,)."""
    x, y = points[..., 0], points[..., 1]
    ok = (x >= margin) & (y >= margin) & (x <= shape[1] - 1 - margin) & (y <= shape[0] - 1 - margin)
    return np.asarray(ok.all(axis=-1), dtype=bool)


def _sampling_step(frames: Frames, linear: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Target-image pixels between neighbouring 65-px patch samples. Shape: -> (n,)."""
    denominator = frames.centers @ homography[2, :2] + homography[2, 2]
    jacobian = np.abs(np.linalg.det(homography)) / np.abs(denominator) ** 3
    area = np.abs(np.linalg.det(linear)) * jacobian
    return frames.radii / (RELEASE_PATCH_SIZE // 2) * np.sqrt(area)


def _corners() -> np.ndarray:
    """Corners of a patch frame in frame units. Shape: -> (4, 2)."""
    return np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


def _jitter_all(count: int, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One independent jitter per (type, patch) for the 15 target types, in IMAGE_TYPES order."""
    return {image_type: draw_jitter(count, image_type[0], rng) for image_type in IMAGE_TYPES[1:]}


def _valid_frames(
    frames: Frames,
    jitters: Mapping[str, tuple[np.ndarray, np.ndarray]],
    shape: tuple[int, int],
    homographies: SequenceABC[np.ndarray],
) -> np.ndarray:
    """Frames inside the reference and, after every jitter, inside the reference and the target."""
    keep = _inside(frame_points(frames, _corners()), shape)
    for image_type, (linear, shift) in jitters.items():
        points = frame_points(frames, _corners(), linear, shift)
        projected = frame_points(frames, _corners(), linear, shift, homographies[int(image_type[1]) - 1])
        keep &= _inside(points, shape) & _inside(projected, shape)
    return keep


def extract_sequence(
    reference: np.ndarray,
    targets: SequenceABC[np.ndarray],
    homographies: SequenceABC[np.ndarray],
    max_patches: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The 16 clean strips of a sequence, HPatches protocol, 65 px sampled then resized to 32.

    Shape: reference and targets (H, W) -> (16, N, 32, 32) uint8
    """
    frames = thin_overlapping(detect_keypoints(reference, max_keypoints=4 * max_patches), rng)
    jitters = _jitter_all(len(frames.radii), rng)
    valid = np.flatnonzero(_valid_frames(frames, jitters, reference.shape, homographies))
    chosen = rng.permutation(valid)[:max_patches]
    frames = frames.take(chosen)
    reference_steps = frames.radii / (RELEASE_PATCH_SIZE // 2)
    strips = [sample_frames(gaussian_pyramid(reference, exact=True), frame_matrices(frames), reference_steps)]
    pyramids = [gaussian_pyramid(target, exact=True) for target in targets]
    for image_type in IMAGE_TYPES[1:]:
        linear, shift = (part[chosen] for part in jitters[image_type])
        homography = homographies[int(image_type[1]) - 1]
        matrices = homography @ frame_matrices(frames, linear, shift)
        steps = _sampling_step(frames, linear, homography)
        strips.append(sample_frames(pyramids[int(image_type[1]) - 1], matrices, steps, exact=True))
    return resize_patches(np.stack(strips), PATCH_SIZE)
