"""Patches cut from whole noisy photographs, as a camera makes them: the noise comes before the cut.

The HPatches-style patches of :mod:`.embedded` get their noise after extraction, i.i.d. per pixel
at 32 px. In a noisy photograph the noise is there first: a small keypoint's patch is upsampled,
so its noise becomes correlated blobs, and a large one is downsampled, so its noise is averaged
away. :func:`camera_points` makes training (or validation) points the second way:

1. SIFT keypoints (OpenCV) are detected on a clean photo;
2. each of ``views`` images is the photo seen through a random homography
   (:func:`.extraction.random_homography`, :func:`.extraction.warp_image`), with a photometric
   change (:func:`.extraction.photometric_change`) and Gaussian noise of its own σ added to the
   whole image (none with probability ``clean_fraction``, else σ ~ U[0, ``sigma_max``]); in a
   share ``denoise_fraction`` of the rounds, every view then goes through the image pipeline's
   "auto" denoiser, as ``detect_and_describe`` would see it: non-local means with
   h = ``nlm_strength`` x its estimated σ when that is above ``denoise_min_sigma``
   (:func:`.photographs.denoise_if_noisy`, :func:`.photographs.estimate_noise_sigma`);
3. every keypoint is mapped into each view by the homography (position, scale by the square root
   of the Jacobian's determinant, orientation by its rotation), jittered as a detector on a noisy
   image would be (more on a noisier view with ``jitter_per_sigma``), and its patch is cut by
   :func:`.regions.extract_patches`, the function the image pipeline (``nhpatches.detect_and_describe``)
   uses, at the same ``magnification``.

Shape: -> (points, views, 32, 32) uint8, the layout of a training bank (any number of views).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping

import numpy as np

from nhpatches.data import extraction
from nhpatches.data.photographs import denoise_if_noisy, estimate_noise_sigma
from nhpatches.data.regions import extract_patches


@dataclasses.dataclass(frozen=True)
class CameraSettings:
    """How camera points are made (see the module docstring)."""

    views: int = 8  # images per point
    rounds: int = 3  # independent sets of views per photo
    points: int = 600  # keypoints per round (fewer where they leave a view)
    magnification: float = 5.0  # patch half-width in units of the keypoint's σ = size / 2
    sigma_max: float = 60.0
    clean_fraction: float = 0.25
    max_strength: float = 1.0  # viewpoint strength of the homographies, uniform in [0.1, max_strength]
    jitter_shift: float = 0.1  # keypoint jitter: shift (fraction of the half-width), ...
    jitter_scale: float = 0.1  # ... log-scale and ...
    jitter_degrees: float = 12.0  # ... orientation, each uniform in ±value ...
    jitter_per_sigma: float = 0.0  # ... times (1 + jitter_per_sigma x the view's noise σ): detection is worse in noise
    # the image pipeline's "auto" denoiser on a share of the rounds (0: never; the first release)
    denoise_fraction: float = 0.0
    denoise_min_sigma: float = 10.0  # denoise a view whose estimated noise σ is above this ...
    nlm_strength: float = 1.0  # ... with non-local means h = nlm_strength x that σ

    def __post_init__(self) -> None:
        if self.views < 2 or self.rounds < 1 or self.points < 2 or not self.magnification > 0:
            raise ValueError(f"camera settings need views >= 2, rounds >= 1, points >= 2, magnification > 0: {self}")
        if not 0 <= self.denoise_fraction <= 1 or self.nlm_strength < 0 or self.jitter_per_sigma < 0:
            raise ValueError(
                f"camera settings need 0 <= denoise_fraction <= 1, nlm_strength >= 0, jitter_per_sigma >= 0: {self}"
            )


def auto_denoised(view: np.ndarray, settings: CameraSettings) -> np.ndarray:
    """A noisy view as the image pipeline's "auto" denoiser leaves it (see the module docstring).

    Shape: (H, W) uint8 -> (H, W) uint8
    """
    return denoise_if_noisy(view, estimate_noise_sigma(view), settings.nlm_strength, settings.denoise_min_sigma)[0]


def sift_keypoints(image: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` strongest OpenCV SIFT keypoints of a grayscale image as (x, y, size, angle) rows.

    Shape: (H, W) 0..255 -> (n, 4) float64, n <= count
    """
    import cv2

    detector = cv2.SIFT_create(nfeatures=count)  # type: ignore[attr-defined]
    found = detector.detect(np.clip(np.round(image), 0, 255).astype(np.uint8), None)
    found = sorted(found, key=lambda k: -k.response)[:count]
    return np.array([[k.pt[0], k.pt[1], k.size, k.angle] for k in found], dtype=np.float64).reshape(-1, 4)


def map_keypoints(keypoints: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Keypoints (x, y, size, angle°) seen through a homography: position, local scale and rotation.

    The local linear map is the homography's Jacobian at each point (finite differences of 0.5 px);
    the size scales by sqrt|det J| and the angle turns by J's rotation (image axes, y down, as OpenCV).
    Shape: (n, 4) -> (n, 4)
    """
    xy = keypoints[:, :2]
    step = 0.5
    centre = extraction.apply_homography(homography, xy)
    along_x = (extraction.apply_homography(homography, xy + np.array([step, 0.0])) - centre) / step
    along_y = (extraction.apply_homography(homography, xy + np.array([0.0, step])) - centre) / step
    det = along_x[:, 0] * along_y[:, 1] - along_x[:, 1] * along_y[:, 0]
    scale = np.sqrt(np.abs(det))
    turn = np.degrees(np.arctan2(along_x[:, 1] - along_y[:, 0], along_x[:, 0] + along_y[:, 1]))
    angle = np.where(keypoints[:, 3] < 0, -1.0, (keypoints[:, 3] + turn) % 360.0)
    return np.column_stack([centre, keypoints[:, 2] * scale, angle])


def jitter_keypoints(
    keypoints: np.ndarray, settings: CameraSettings, rng: np.random.Generator, sigma: float = 0.0
) -> np.ndarray:
    """Detector-like noise on keypoints of a view with noise σ: shift, scale, orientation. Shape: (n, 4) -> (n, 4)."""
    count = len(keypoints)
    radius = settings.magnification * keypoints[:, 2] / 2
    grow = 1.0 + settings.jitter_per_sigma * sigma
    out = keypoints.copy()
    out[:, :2] += rng.uniform(-1, 1, (count, 2)) * grow * settings.jitter_shift * radius[:, None]
    out[:, 2] *= np.exp(rng.uniform(-1, 1, count) * grow * settings.jitter_scale)
    out[:, 3] = (out[:, 3] + rng.uniform(-1, 1, count) * grow * settings.jitter_degrees) % 360.0
    return out


def _inside(keypoints: np.ndarray, shape: tuple[int, int], magnification: float) -> np.ndarray:
    """Whether each keypoint's whole region (its circumscribed circle) lies inside an image. Shape: (n, 4) -> (n,)."""
    reach = np.sqrt(2) * magnification * keypoints[:, 2] / 2
    x, y = keypoints[:, 0], keypoints[:, 1]
    return (x - reach >= 0) & (y - reach >= 0) & (x + reach <= shape[1] - 1) & (y + reach <= shape[0] - 1)


def noisy_view(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A whole image with Gaussian noise σ added, as uint8: clip(floor(image + σ z + 0.5), 0, 255).

    Shape: (H, W) float 0..255 -> (H, W) uint8
    """
    noise = rng.standard_normal(image.shape) * sigma
    return np.clip(np.floor(image + noise + 0.5), 0, 255).astype(np.uint8)


def camera_round(
    photo: np.ndarray,
    settings: CameraSettings,
    rng: np.random.Generator,
    sigmas: np.ndarray | None = None,
    denoise: bool | None = None,
) -> np.ndarray:
    """One set of ``views`` noisy views of a photo and the patches of its keypoints in each.

    ``sigmas`` (views,) fixes the noise of every view (validation); by default it is drawn.
    ``denoise`` fixes whether the views go through the "auto" denoiser; by default it is drawn
    with probability ``denoise_fraction`` (no draw when that is 0, so older rounds are unchanged).
    Shape: photo (H, W) float 0..255 -> (n, views, 32, 32) uint8
    """
    if denoise is None:
        denoise = settings.denoise_fraction > 0 and bool(rng.random() < settings.denoise_fraction)
    keypoints = sift_keypoints(photo, 3 * settings.points)
    views, keep = [], np.ones(len(keypoints), dtype=bool)
    if sigmas is None:
        sigmas = rng.uniform(0, settings.sigma_max, settings.views)
        sigmas[rng.random(settings.views) < settings.clean_fraction] = 0.0
    for view in range(settings.views):
        strength = rng.uniform(0.1, settings.max_strength)
        homography = extraction.random_homography(photo.shape, strength, "viewpoint", rng)
        image = extraction.photometric_change(extraction.warp_image(photo, homography), 0.5, rng)
        mapped = jitter_keypoints(map_keypoints(keypoints, homography), settings, rng, float(sigmas[view]))
        keep &= _inside(mapped, photo.shape, settings.magnification)
        noisy = noisy_view(image, float(sigmas[view]), rng)
        views.append((auto_denoised(noisy, settings) if denoise else noisy, mapped))
    chosen = np.flatnonzero(keep)[: settings.points]
    patches = [extract_patches(image, mapped[chosen], magnification=settings.magnification) for image, mapped in views]
    return np.stack(patches, axis=1)


def camera_points(photos: Mapping[str, np.ndarray], settings: CameraSettings, seed: int = 0) -> np.ndarray:
    """Camera points of every photo and round, drawn from (seed, photo name, round).

    Shape: photos {name: (H, W) float 0..255} -> (points, views, 32, 32) uint8
    """
    parts = [
        camera_round(photo, settings, np.random.default_rng([seed, zlib.crc32(name.encode()), index]))
        for name, photo in photos.items()
        for index in range(settings.rounds)
    ]
    if not parts:
        raise ValueError("camera_points needs at least one photo")
    return np.concatenate(parts)
