"""Whole photographs before their patches are cut: noise level, image denoising, SIFT keypoints.

The network-free steps of the image pipeline (``nhpatches.detect_and_describe``), here so that the
benchmark and the training-data builder use the same ones:

* :func:`estimate_noise_sigma`: the std of additive white Gaussian noise from one image
  (Immerkaer's Laplacian-difference operator, robust median, saturated pixels left out);
* :func:`denoise_nlm`: OpenCV's non-local means on the whole image; :func:`denoise_if_noisy` the
  pipeline's rule for it (h from the estimated noise, only above a threshold for "auto");
* :func:`detect_sift`: OpenCV SIFT keypoints as (x, y, size, angle) rows, strongest first, every
  orientation of a point kept (OpenCV returns one keypoint per dominant orientation).

Gaussian noise as a camera adds it (to the whole image, before any patch is cut) is
:func:`nhpatches.data.add_noise` applied to the image. Images are uint8 (H, W) or (H, W, 3) RGB
(:func:`nhpatches.data.regions.gray_image`).
"""

from __future__ import annotations

import cv2
import numpy as np

from nhpatches.data.regions import gray_image

#: Immerkaer's operator: the difference of two Laplacians, zero on every locally linear image.
#: White noise of std s gives responses of std 6 s (the root of the sum of its squared taps, 36).
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
#: Median of |N(0, 1)|: a robust std from the median absolute response.
_MEDIAN_ABS_NORMAL = 0.6744897501960817


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Std (grey levels, 0..255 scale) of additive white Gaussian noise in an image.

    Immerkaer (1996), "Fast noise variance estimation": the image is filtered with the difference
    of two Laplacians, which cancels the image where it is locally linear and leaves 6 sigma of the
    noise; the std is taken from the median absolute response (robust to edges and texture) over
    the pixels whose 3 x 3 neighbourhood has no saturated (0 or 255) pixel, since clipping removes
    noise there (all pixels are used when fewer than 5 % are unsaturated). On clean photos it gives
    0.5-2 (10 on a texture such as scikit-image's ``grass``); clipping lowers the noise itself at
    large sigma, so sigma 50 reads about 45 on a photo with dark and bright areas.
    Shape: (H, W) or (H, W, 3) uint8 -> float
    """
    gray = gray_image(image)
    if min(gray.shape) < 3:
        raise ValueError(f"image: expected at least 3 x 3 pixels to estimate noise, got shape {gray.shape}")
    response = cv2.filter2D(gray.astype(np.float32), -1, _NOISE_KERNEL, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    saturated = ((gray == 0) | (gray == 255)).astype(np.uint8)
    near_saturated = cv2.dilate(saturated, np.ones((3, 3), np.uint8))[1:-1, 1:-1].astype(bool)
    if np.mean(~near_saturated) >= 0.05:
        response = response[~near_saturated]
    return float(np.median(np.abs(response)) / (_MEDIAN_ABS_NORMAL * 6))


def denoise_nlm(image: np.ndarray, h: float, template_window: int = 7, search_window: int = 21) -> np.ndarray:
    """OpenCV's non-local means (``cv2.fastNlMeansDenoising``) on the whole grayscale image.

    ``h``: filter strength in grey levels (about the noise sigma; 0 returns the image unchanged).
    Shape: (H, W) or (H, W, 3) uint8 -> (H, W) uint8
    """
    gray = gray_image(image)
    if not np.isfinite(h) or h < 0:
        raise ValueError(f"h: expected a non-negative filter strength in grey levels, got {h}")
    if h == 0:
        return gray.copy()
    return cv2.fastNlMeansDenoising(
        gray, None, h=float(h), templateWindowSize=template_window, searchWindowSize=search_window
    )


def denoise_if_noisy(
    image: np.ndarray, sigma: float, strength: float, min_sigma: float | None = None
) -> tuple[np.ndarray, bool]:
    """Non-local means with h = ``strength`` x ``sigma`` (the image's estimated noise), unless ``sigma <= min_sigma``.

    The image pipeline's two denoisers in one place: "auto" (``min_sigma``: its threshold) and "nlm"
    (None: always). ``detect_and_describe``, the benchmark's rows and the camera training views use it.
    Shape: (H, W) uint8 -> ((H, W) uint8, whether it was denoised)
    """
    if min_sigma is not None and sigma <= min_sigma:
        return image, False
    return denoise_nlm(image, strength * sigma), True


def detect_sift(
    image: np.ndarray,
    max_keypoints: int | None = 2000,
    contrast_threshold: float = 0.04,
    edge_threshold: float = 10.0,
    sigma: float = 1.6,
) -> np.ndarray:
    """OpenCV SIFT keypoints as (x, y, size, angle) rows, strongest response first.

    Every orientation OpenCV returns is kept (one keypoint per dominant orientation of a point, as
    in SIFT); ``max_keypoints`` keeps the strongest ones (all if None). OpenCV's conventions: size
    is the diameter 2 sigma of the detection scale, angle in degrees (image coordinates, y down).
    OpenCV's positions carry a bias of about +0.24 px on both axes (its first octave is the image
    upsampled 2x); they are returned as OpenCV gives them.
    Shape: (H, W) or (H, W, 3) uint8 -> (N, 4) float64, N <= max_keypoints
    """
    gray = gray_image(image)
    if max_keypoints is not None and (not isinstance(max_keypoints, (int, np.integer)) or max_keypoints < 1):
        raise ValueError(f"max_keypoints: expected a positive integer or None, got {max_keypoints!r}")
    detector = cv2.SIFT_create(  # type: ignore[attr-defined]
        nfeatures=max_keypoints or 0,
        contrastThreshold=contrast_threshold,
        edgeThreshold=edge_threshold,
        sigma=sigma,
    )
    keypoints = detector.detect(gray, None)
    if not keypoints:
        return np.zeros((0, 4))
    rows = np.array([(*point.pt, point.size, point.angle) for point in keypoints], np.float64)
    responses = np.array([point.response for point in keypoints])
    order = np.argsort(-responses, kind="stable")[:max_keypoints]
    return rows[order]
