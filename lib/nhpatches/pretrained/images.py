"""From photographs to matches: keypoints, their patches and descriptors, matches and a homography.

Like kornia's local-affine-frame pipeline (``LAFDescriptor``, ``get_laf_descriptors``)::

    import nhpatches
    features = nhpatches.detect_and_describe(image)            # .xy (N, 2), .keypoints (N, 4), .descriptors (N, D)
    pair = nhpatches.match_images(image1, image2)              # .matches (M, 2), .homography (3, 3), .inliers (M,)

Steps, each a setting: an optional whole-image denoiser ("auto": non-local means when the
estimated noise sigma is high, "nlm", "none", or your own function), a detector (OpenCV SIFT, one
keypoint per orientation), the HPatches measurement region of every keypoint cut by
:func:`nhpatches.data.regions.extract_patches`, a descriptor (:func:`nhpatches.describe`'s
pipelines: the shipped network, "sift", "raw", or ``weights=`` your export), mutual nearest
neighbours (:func:`nhpatches.nets.matching.match_descriptors`) and OpenCV's robust homography.
The non-local means strength, the contrast threshold on a denoised image and the region on an image
left noisy were chosen on the development pairs (``scripts/tune_image_pipeline.py``, which scores
settings through this API with the image-matching benchmark), never on ``v_wormhole``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import cv2
import numpy as np

from nhpatches.data.photographs import denoise_if_noisy, detect_sift, estimate_noise_sigma
from nhpatches.data.regions import SAMPLED_SIZE, extract_patches, gray_image, keypoint_array
from nhpatches.nets.inference import DEFAULT_BATCH_SIZE
from nhpatches.nets.matching import match_descriptors
from nhpatches.pretrained.load import CLASSICAL, DEFAULT_PIPELINE, describe, load_pipeline, photographs_dir

# --------------------------------------------------------------------------- defaults
# Those whose comment says so were chosen on the development pairs (scripts/tune_image_pipeline.py).

#: Whole-image denoiser before detection and description: "auto", "nlm" or "none".
DEFAULT_DENOISE = "auto"
#: "auto" denoises only images whose estimated noise sigma (grey levels) is above this.
AUTO_DENOISE_MIN_SIGMA = 10.0
#: Non-local means strength h, in units of the estimated noise sigma. Checked on the development
#: pairs (figures/release/photographs_tuning): 0.8 and 1.3 were no better.
NLM_STRENGTH = 1.0
#: Half-width of the region cut around a keypoint, in units of its scale sigma (5: HPatches), for
#: descriptors whose export records no training region (the classical ones, the first release).
#: A learned export trained on photographs records its own (``manifest["recipe"]["magnification"]``).
DEFAULT_MAGNIFICATION = 5.0
#: Under strong noise that no denoiser removed, a wider region averages more of it away: when the
#: image the descriptor sees was not denoised and its estimated noise sigma is above
#: NOISY_REGION_MIN_SIGMA, the trained region is widened NOISY_REGION_SCALE times (8 sigma -> 12).
#: Chosen on the development pairs (``scripts/tune_image_pipeline.py --strengths 0``): MMA@3 at
#: sigma 0 / 20 / 35 / 50 was 0.849 / 0.538 / 0.368 / 0.267 at 8 sigma and 0.833 / 0.535 / 0.383 / 0.288
#: at 12 sigma, so the wider region is used from sigma 25 on only.
NOISY_REGION_MIN_SIGMA = 25.0
NOISY_REGION_SCALE = 1.5
#: OpenCV SIFT's detection thresholds (``contrastThreshold``, ``edgeThreshold``; OpenCV's defaults).
SIFT_CONTRAST_THRESHOLD = 0.04
SIFT_EDGE_THRESHOLD = 10.0
#: SIFT's contrast threshold on an image the pipeline denoised: the denoiser flattens weak structure
#: along with the noise, so a lower threshold keeps more of the points that remain. Chosen on the
#: development pairs (``scripts/tune_image_pipeline.py``; figures/release/photographs_tuning): at
#: sigma 50, 0.01 raised the share of homographies within 3 px from 0.55 to 0.65 (SIFT: 0.45).
DENOISED_CONTRAST_THRESHOLD = 0.01

# --------------------------------------------------------------------------- fixed settings

#: Image denoisers by name (a callable uint8 (H, W) -> uint8 (H, W) is accepted too).
DENOISERS: tuple[str, ...] = ("auto", "nlm", "none")
#: Robust homography estimators of ``match_images(method=...)``.
HOMOGRAPHY_METHODS: dict[str, int] = {"magsac": cv2.USAC_MAGSAC, "ransac": cv2.RANSAC}
#: Default reprojection threshold (px) of the robust homography.
HOMOGRAPHY_THRESHOLD = 3.0
#: Fewest matches a homography is estimated from.
MIN_MATCHES = 4


@dataclasses.dataclass(frozen=True)
class Features:
    """Keypoints of one image and their descriptors.

    Shape: keypoints (N, 4) float64 rows (x, y, size, angle) in OpenCV's conventions, in the input
    image's pixels; descriptors (N, D) float32. ``noise_sigma``: the input's estimated noise std
    (grey levels); ``denoised``: whether the image was denoised before detection; ``magnification``:
    the half-width of the regions cut, in keypoint sigmas.
    """

    keypoints: np.ndarray
    descriptors: np.ndarray
    noise_sigma: float
    denoised: bool
    magnification: float = DEFAULT_MAGNIFICATION

    @property
    def xy(self) -> np.ndarray:
        """Keypoint positions (x, y) in the input image's pixels. Shape: (N, 2) float64."""
        return self.keypoints[:, :2]

    def __len__(self) -> int:
        return len(self.keypoints)


@dataclasses.dataclass(frozen=True)
class ImageMatches:
    """Two images' features, their matches and the homography from image 1 to image 2.

    Shape: matches (M, 2) int64 (index into features1, index into features2); distances (M,)
    descriptor distances; homography (3, 3) float64 mapping image-1 (x, y) to image 2;
    inliers (M,) bool, the matches the robust estimator kept.
    """

    features1: Features
    features2: Features
    matches: np.ndarray
    distances: np.ndarray
    homography: np.ndarray
    inliers: np.ndarray

    @property
    def xy1(self) -> np.ndarray:
        """Image-1 positions of the matches. Shape: (M, 2)."""
        return self.features1.xy[self.matches[:, 0]]

    @property
    def xy2(self) -> np.ndarray:
        """Image-2 positions of the matches. Shape: (M, 2)."""
        return self.features2.xy[self.matches[:, 1]]


def _denoised(
    gray: np.ndarray, denoise: str | Callable[[np.ndarray], np.ndarray], sigma: float, what: str
) -> tuple[np.ndarray, bool]:
    """The image the detector and the descriptor see, and whether it was denoised."""
    if callable(denoise):
        result = np.asarray(denoise(gray))
        if result.dtype != np.uint8 or result.shape != gray.shape:
            raise ValueError(
                f"denoise: your function must return uint8 of the input's shape {gray.shape}, "
                f"got {result.dtype} {result.shape}"
            )
        return result, True
    if denoise not in DENOISERS:
        raise ValueError(f"denoise: expected one of {list(DENOISERS)} or a function, got {denoise!r}")
    if denoise == "none":
        return gray, False
    return denoise_if_noisy(gray, sigma, NLM_STRENGTH, AUTO_DENOISE_MIN_SIGMA if denoise == "auto" else None)


def sift_contrast_threshold(denoised: bool) -> float:
    """SIFT's contrast threshold for an image as the pipeline sees it: lower once it was denoised."""
    return DENOISED_CONTRAST_THRESHOLD if denoised else SIFT_CONTRAST_THRESHOLD


def _detect(image: np.ndarray, detector: str | cv2.Feature2D, max_keypoints: int, denoised: bool) -> np.ndarray:
    """Keypoints (x, y, size, angle), strongest first. Shape: (H, W) uint8 -> (N, 4)."""
    if isinstance(detector, str):
        if detector != "sift":
            raise ValueError(f"detector: expected 'sift' or an OpenCV detector object, got {detector!r}")
        return detect_sift(image, max_keypoints, sift_contrast_threshold(denoised), SIFT_EDGE_THRESHOLD)
    if not hasattr(detector, "detect"):
        raise ValueError(f"detector: expected 'sift' or an object with OpenCV's detect(image, mask), got {detector!r}")
    found = list(detector.detect(image, None))
    order = np.argsort([-point.response for point in found], kind="stable")[:max_keypoints]
    return keypoint_array([found[index] for index in order], what="detector output")


def _features(
    image: np.ndarray,
    what: str,
    max_keypoints: int,
    detector: str | cv2.Feature2D,
    denoise: str | Callable[[np.ndarray], np.ndarray],
    pipeline: str,
    weights: str | os.PathLike[str] | None,
    magnification: float | None,
    batch_size: int,
) -> Features:
    """detect_and_describe, naming the image ``what`` in its errors."""
    weights = image_weights(pipeline, weights)
    gray = gray_image(image, what)
    if not isinstance(max_keypoints, (int, np.integer)) or max_keypoints < 1:
        raise ValueError(f"max_keypoints: expected a positive integer, got {max_keypoints!r}")
    sigma = estimate_noise_sigma(gray)
    seen, denoised = _denoised(gray, denoise, sigma, what)
    if magnification is None:
        magnification = default_region(sigma, denoised, pipeline, weights)
    keypoints = _detect(seen, detector, max_keypoints, denoised)
    patches = extract_patches(seen, keypoints, size=SAMPLED_SIZE, magnification=magnification)
    descriptors = describe(patches, pipeline=pipeline, weights=weights, batch_size=batch_size)
    return Features(keypoints, descriptors, sigma, denoised, float(magnification))


def detect_and_describe(
    image: np.ndarray,
    max_keypoints: int = 2000,
    detector: str | cv2.Feature2D = "sift",
    denoise: str | Callable[[np.ndarray], np.ndarray] = DEFAULT_DENOISE,
    pipeline: str = DEFAULT_PIPELINE,
    weights: str | os.PathLike[str] | None = None,
    magnification: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Features:
    """Keypoints of a photograph and descriptors of their patches.

    * ``denoise``: "auto" (non-local means with h = NLM_STRENGTH x the estimated noise sigma when
      that sigma is above AUTO_DENOISE_MIN_SIGMA), "nlm" (always), "none", or a function uint8
      (H, W) -> uint8 (H, W); the detector and the descriptor both see the denoised image;
    * ``detector``: "sift" (OpenCV SIFT with SIFT_EDGE_THRESHOLD and SIFT_CONTRAST_THRESHOLD, or
      DENOISED_CONTRAST_THRESHOLD on a denoised image; every orientation kept) or an OpenCV
      detector object (``detect(image, None)``, whose KeyPoint size and angle follow SIFT's
      conventions); the ``max_keypoints`` strongest are kept;
    * each keypoint's patch is the oriented square of half-width ``magnification`` x sigma (None:
      :func:`default_region`: the region the descriptor was trained at, wider on a very noisy image
      that was not denoised), cut as the training
      patches are (:func:`nhpatches.data.regions.extract_patches`, sampled at 65 px);
    * ``pipeline`` / ``weights`` / ``batch_size``: as :func:`nhpatches.describe` (the shipped
      network by default; "sift" describes the 65 px patches, the others their 32 px resize).

    Raises ValueError naming a wrong dtype, shape or setting.
    Shape: (H, W) or (H, W, 3) uint8 (colour as RGB) -> Features with N <= max_keypoints
    """
    return _features(image, "image", max_keypoints, detector, denoise, pipeline, weights, magnification, batch_size)


def image_weights(
    pipeline: str = DEFAULT_PIPELINE, weights: str | os.PathLike[str] | None = None
) -> str | os.PathLike[str] | None:
    """The export the image pipeline describes with: ``weights``, else the shipped photographs descriptor.

    The shipped patch descriptor (``describe()``'s default) is kept for patches cut at HPatches'
    region; keypoints of photographs get the one fine-tuned on them (:func:`photographs_dir`).
    """
    if weights is None and pipeline == DEFAULT_PIPELINE:
        return photographs_dir()
    return weights


def trained_magnification(pipeline: str = DEFAULT_PIPELINE, weights: str | os.PathLike[str] | None = None) -> float:
    """The region a pipeline's descriptor was trained at: its export's ``recipe.magnification``, else 5 (HPatches)."""
    if pipeline in CLASSICAL:
        return DEFAULT_MAGNIFICATION
    recipe = load_pipeline(image_weights(pipeline, weights)).manifest.get("recipe") or {}
    return float(recipe.get("magnification", DEFAULT_MAGNIFICATION))


def default_region(
    noise_sigma: float,
    denoised: bool,
    pipeline: str = DEFAULT_PIPELINE,
    weights: str | os.PathLike[str] | None = None,
) -> float:
    """The region half-width (in keypoint sigmas) ``detect_and_describe`` cuts when not told one.

    The region the descriptor was trained at (:func:`trained_magnification`), widened
    NOISY_REGION_SCALE times when the image was not denoised and its estimated noise sigma is above
    NOISY_REGION_MIN_SIGMA.
    """
    region = trained_magnification(pipeline, weights)
    if not denoised and noise_sigma > NOISY_REGION_MIN_SIGMA:
        region *= NOISY_REGION_SCALE
    return region


def find_homography(
    xy1: np.ndarray, xy2: np.ndarray, method: str = "magsac", threshold: float = HOMOGRAPHY_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Robust homography from matched points (OpenCV ``findHomography``, USAC MAGSAC++ or RANSAC).

    Raises ValueError with fewer than 4 matches or when OpenCV finds none.
    Shape: (M, 2), (M, 2) -> homography (3, 3) float64, inliers (M,) bool
    """
    if method not in HOMOGRAPHY_METHODS:
        raise ValueError(f"method: expected one of {list(HOMOGRAPHY_METHODS)}, got {method!r}")
    if len(xy1) < MIN_MATCHES:
        raise ValueError(f"too few matches for a homography: {len(xy1)} (at least {MIN_MATCHES} needed)")
    homography, mask = cv2.findHomography(
        xy1.astype(np.float32), xy2.astype(np.float32), HOMOGRAPHY_METHODS[method], threshold, maxIters=10_000
    )
    if homography is None:
        raise ValueError(f"no homography found from {len(xy1)} matches (degenerate or inconsistent matches)")
    return homography.astype(np.float64), mask.ravel().astype(bool)


def match_images(
    image1: np.ndarray,
    image2: np.ndarray,
    max_keypoints: int = 2000,
    detector: str | cv2.Feature2D = "sift",
    denoise: str | Callable[[np.ndarray], np.ndarray] = DEFAULT_DENOISE,
    pipeline: str = DEFAULT_PIPELINE,
    weights: str | os.PathLike[str] | None = None,
    magnification: float | None = None,
    mutual: bool = True,
    ratio: float | None = None,
    method: str = "magsac",
    threshold: float = HOMOGRAPHY_THRESHOLD,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ImageMatches:
    """Match two photographs: features of each (:func:`detect_and_describe`), nearest neighbours, homography.

    ``mutual`` / ``ratio``: :func:`nhpatches.nets.matching.match_descriptors`; ``method``:
    "magsac" (OpenCV USAC MAGSAC++) or "ransac", with reprojection ``threshold`` px. Raises
    ValueError naming the image without keypoints, or when there are fewer than 4 matches.
    Shape: two (H, W) or (H, W, 3) uint8 images -> ImageMatches
    """
    settings = (max_keypoints, detector, denoise, pipeline, weights, magnification, batch_size)
    features = [_features(image, what, *settings) for image, what in ((image1, "image1"), (image2, "image2"))]
    for found, what in zip(features, ("image1", "image2"), strict=False):
        if len(found) == 0:
            raise ValueError(f"{what}: no keypoints detected (a flat, blank or very small image?)")
    matches, distances = match_descriptors(features[0].descriptors, features[1].descriptors, mutual, ratio)
    homography, inliers = find_homography(
        features[0].xy[matches[:, 0]], features[1].xy[matches[:, 1]], method, threshold
    )
    return ImageMatches(features[0], features[1], matches, distances, homography, inliers)
