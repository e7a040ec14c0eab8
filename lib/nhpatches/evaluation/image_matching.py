"""The image-matching benchmark: local features matched across image pairs with ground-truth homographies.

For every sequence (read by :func:`nhpatches.data.image_pairs.read_image_sequence`: HPatches or
Oxford layout), every noise level sigma and every method, image 1 is matched against each image
k = 2..K:

* **noise**: Gaussian, std sigma on the 0..255 scale, added to both images, clipped and rounded to
  uint8 (:func:`add_image_noise`). The draw is seeded by the sequence name, the image number and sigma
  (:func:`noise_seed`), so every method sees exactly the same noisy images;
* **method**: ``features(image) -> (xy, descriptors)`` on the uint8 (H, W) image, then a matcher
  (mutual nearest neighbours by default, :func:`nhpatches.nets.matching.match_descriptors`);
* **MMA@t** (D2-Net, Dusmanu et al. 2019, on HPatches sequences): the share of the matches of the
  pair whose image-1 keypoint, projected by the ground-truth homography 1 -> k, lies within t px of
  its match in image k, for t = 1..10; a pair without matches counts 0. Aggregates are means over
  pairs, as D2-Net's evaluation;
* **homography accuracy** (SuperPoint, DeTone et al. 2018): a homography is estimated from the
  matches with OpenCV (``cv2.RANSAC`` or ``cv2.USAC_MAGSAC``, 3 px); its corner error is the mean
  distance between the 4 corners of image 1 mapped by the estimate and by the ground truth; a pair is
  correct at e px when that error is <= e (e = 1, 3, 5). A pair with fewer than 4 matches or a
  failed estimate is a miss (corner error NaN, correct at no e). Further ``also`` estimators are
  scored from the same matches (``corner_error_<name>``, ``h_acc_<e>_<name>``): the image pipeline's
  own ``match_images`` estimates with USAC MAGSAC++;
* **correct matches** at 3 px, keypoints per image, matches, and seconds per pair (features of
  both images plus matching, timed here; the homography estimate is not counted).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nhpatches.data.image_pairs import ImageSequence, read_image_sequence
from nhpatches.nets.matching import match_descriptors

#: Noise levels (std on the 0..255 scale) of the benchmark.
SIGMAS: tuple[float, ...] = (0, 10, 20, 35, 50)
#: MMA thresholds (px).
MMA_THRESHOLDS: tuple[int, ...] = tuple(range(1, 11))
#: Corner-error thresholds (px) of the homography accuracy.
HOMOGRAPHY_THRESHOLDS: tuple[int, ...] = (1, 3, 5)
#: Reprojection error (px) under which a match counts as correct in ``correct_3``.
CORRECT_THRESHOLD = 3
#: Homography estimators: OpenCV method flag names, all with a 3 px reprojection threshold.
ESTIMATORS: dict[str, str] = {"ransac": "RANSAC", "magsac": "USAC_MAGSAC"}
ESTIMATOR_THRESHOLD = 3.0

#: ``features(image)``: uint8 (H, W) -> (xy (N, 2) float pixel coordinates, descriptors (N, D)).
Features = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
#: ``matcher(d1, d2)``: (N1, D), (N2, D) -> (M, 2) int index pairs (i in image 1, j in image k).
Matcher = Callable[[np.ndarray, np.ndarray], np.ndarray]


def mutual_nearest_neighbours(d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Mutual nearest neighbours (L2) with :func:`nhpatches.nets.matching.match_descriptors`.

    Shape: (N1, D), (N2, D) -> (M, 2) int64
    """
    matches, _ = match_descriptors(d1, d2, mutual=True)
    return matches


@dataclass(frozen=True)
class Method:
    """One row of the benchmark: a feature function and a matcher (None: mutual nearest neighbours)."""

    name: str
    features: Features
    matcher: Matcher | None = None

    def match(self, d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
        """Index pairs of matched descriptors. Shape: (N1, D), (N2, D) -> (M, 2) int64."""
        matcher = mutual_nearest_neighbours if self.matcher is None else self.matcher
        if len(d1) == 0 or len(d2) == 0:
            return np.zeros((0, 2), np.int64)
        matches = np.asarray(matcher(d1, d2))
        if matches.size == 0:
            return np.zeros((0, 2), np.int64)
        if matches.ndim != 2 or matches.shape[1] != 2:
            raise ValueError(f"method {self.name!r}: its matcher must return (M, 2) index pairs, got {matches.shape}")
        if matches.min() < 0 or matches[:, 0].max() >= len(d1) or matches[:, 1].max() >= len(d2):
            raise ValueError(f"method {self.name!r}: its matcher returned indices outside the descriptor arrays")
        return matches.astype(np.int64)


def check_features(name: str, xy: np.ndarray, descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check a method's output: finite (N, 2) coordinates and N descriptor rows; naming the method.

    Shape: -> (N, 2) float64, (N, D) float32
    """
    xy, descriptors = np.asarray(xy, dtype=np.float64), np.asarray(descriptors)
    if xy.ndim != 2 or xy.shape[1] != 2 or not np.isfinite(xy).all():
        raise ValueError(f"method {name!r}: expected finite keypoint coordinates of shape (N, 2), got {xy.shape}")
    if descriptors.ndim != 2 or len(descriptors) != len(xy):
        raise ValueError(
            f"method {name!r}: expected descriptors of shape ({len(xy)}, D) for {len(xy)} keypoints, "
            f"got {descriptors.shape}"
        )
    return xy, descriptors.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- noise


def noise_seed(sequence: str, image_number: int, sigma: float, seed: int = 0) -> list[int]:
    """Seed of the noise added to image ``image_number`` (1-based) of a sequence at sigma."""
    return [int(seed), zlib.crc32(sequence.encode()), int(image_number), round(float(sigma) * 1000)]


def add_image_noise(image: np.ndarray, sigma: float, seed: Sequence[int] | int) -> np.ndarray:
    """Gaussian noise of std sigma (0..255 scale), clipped and rounded to uint8; sigma 0 returns the image.

    Shape: (H, W) uint8 -> (H, W) uint8
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 (std on the 0..255 scale), got {sigma}")
    if sigma == 0:
        return image
    noise = np.random.default_rng(seed).standard_normal(image.shape) * sigma
    return np.clip(np.round(image + noise), 0, 255).astype(np.uint8)


def noisy_images(sequence: ImageSequence, sigma: float, seed: int = 0) -> list[np.ndarray]:
    """The sequence's images with the benchmark's noise at sigma (same draw for every method).

    Shape: K x (H, W) uint8 -> K x (H, W) uint8
    """
    return [
        add_image_noise(image, sigma, noise_seed(sequence.name, number, sigma, seed))
        for number, image in enumerate(sequence.images, start=1)
    ]


# --------------------------------------------------------------------------- scores


def project(homography: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Points (x, y) mapped by a 3x3 homography. Shape: (N, 2) -> (N, 2)."""
    points = np.concatenate([xy, np.ones((len(xy), 1))], axis=1) @ np.asarray(homography, np.float64).T
    return points[:, :2] / points[:, 2:]


def reprojection_errors(xy1: np.ndarray, xy2: np.ndarray, matches: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Distance (px) between each matched image-1 keypoint mapped by the homography and its match in image k.

    Shape: xy1 (N1, 2), xy2 (N2, 2), matches (M, 2) -> (M,)
    """
    if len(matches) == 0:
        return np.zeros(0)
    return np.linalg.norm(project(homography, xy1[matches[:, 0]]) - xy2[matches[:, 1]], axis=1)


def mma(errors: np.ndarray, thresholds: Sequence[float] = MMA_THRESHOLDS) -> np.ndarray:
    """Share of matches with reprojection error <= t for each t (0 for no matches). Shape: (M,) -> (T,)."""
    if len(errors) == 0:
        return np.zeros(len(thresholds))
    return np.array([np.mean(errors <= t) for t in thresholds])


def image_corners(shape: tuple[int, ...]) -> np.ndarray:
    """The 4 pixel-centre corners (x, y) of an image of shape (H, W), as SuperPoint. Shape: -> (4, 2)."""
    height, width = shape[:2]
    return np.array([[0, 0], [0, height - 1], [width - 1, 0], [width - 1, height - 1]], dtype=np.float64)


def corner_error(estimate: np.ndarray, truth: np.ndarray, shape: tuple[int, ...]) -> float:
    """Mean distance (px) between image 1's corners mapped by the estimate and by the ground truth."""
    corners = image_corners(shape)
    return float(np.mean(np.linalg.norm(project(estimate, corners) - project(truth, corners), axis=1)))


def estimate_homography(
    points1: np.ndarray, points2: np.ndarray, estimator: str = "ransac"
) -> tuple[np.ndarray | None, int]:
    """Homography image 1 -> k from matched points with OpenCV, and its inlier count; (None, 0) if it fails.

    Shape: (M, 2), (M, 2) -> (3, 3) or None, int
    """
    import cv2

    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator {estimator!r}: expected one of {sorted(ESTIMATORS)}")
    if len(points1) < 4:
        return None, 0
    try:
        homography, mask = cv2.findHomography(
            points1.astype(np.float32),
            points2.astype(np.float32),
            getattr(cv2, ESTIMATORS[estimator]),
            ESTIMATOR_THRESHOLD,
        )
    except cv2.error:
        return None, 0
    if homography is None or homography.shape != (3, 3) or not np.isfinite(homography).all():
        return None, 0
    return homography, int(mask.sum()) if mask is not None else 0


def score_pair(
    xy1: np.ndarray,
    xy2: np.ndarray,
    matches: np.ndarray,
    homography: np.ndarray,
    shape1: tuple[int, ...],
    estimator: str = "ransac",
    also: Sequence[str] = (),
) -> dict:
    """MMA@1..10, correct matches at 3 px, the estimated homography's corner error and its inliers of one pair.

    Every estimator of ``also`` adds ``corner_error_<name>``, estimated from the same matches.
    """
    errors = reprojection_errors(xy1, xy2, matches, homography)

    def estimated(name: str) -> tuple[float, int]:
        estimate, inliers = estimate_homography(xy1[matches[:, 0]], xy2[matches[:, 1]], name)
        return (corner_error(estimate, homography, shape1) if estimate is not None else float("nan")), inliers

    error, inliers = estimated(estimator)
    return {
        "matches": len(matches),
        f"correct_{CORRECT_THRESHOLD}": int(np.sum(errors <= CORRECT_THRESHOLD)),
        **{f"mma_{t}": value for t, value in zip(MMA_THRESHOLDS, mma(errors), strict=False)},
        "inliers": inliers,
        "corner_error": error,
        **{f"corner_error_{name}": estimated(name)[0] for name in also},
    }


# --------------------------------------------------------------------------- running


def _timed_features(method: Method, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """A method's checked features of one image and the seconds they took."""
    start = time.perf_counter()
    xy, descriptors = method.features(image)
    seconds = time.perf_counter() - start
    return (*check_features(method.name, xy, descriptors), seconds)


def evaluate_sequence(
    sequence: ImageSequence,
    methods: Sequence[Method],
    sigma: float,
    seed: int = 0,
    pairs: Sequence[int] | None = None,
    estimator: str = "ransac",
    also: Sequence[str] = (),
) -> list[dict]:
    """One record per (method, pair 1 -> k) of one sequence at one noise level (see the module docstring)."""
    images = noisy_images(sequence, sigma, seed)
    numbers = range(2, len(images) + 1) if pairs is None else [k for k in pairs if 2 <= k <= len(images)]
    records = []
    for method in methods:
        xy1, d1, seconds1 = _timed_features(method, images[0])
        for k in numbers:
            xyk, dk, secondsk = _timed_features(method, images[k - 1])
            start = time.perf_counter()
            matches = method.match(d1, dk)
            seconds_match = time.perf_counter() - start
            scores = score_pair(xy1, xyk, matches, sequence.homographies[k - 2], images[0].shape, estimator, also)
            records.append(
                {
                    "method": method.name,
                    "sigma": float(sigma),
                    "sequence": sequence.name,
                    "kind": sequence.kind,
                    "pair": f"1-{k}",
                    "keypoints_1": len(xy1),
                    "keypoints_k": len(xyk),
                    **scores,
                    "seconds": seconds1 + secondsk + seconds_match,
                    "seconds_match": seconds_match,
                }
            )
    return records


def run_benchmark(
    sequences: Iterable[ImageSequence | Path | str],
    methods: Sequence[Method],
    sigmas: Sequence[float] = SIGMAS,
    seed: int = 0,
    pairs: Sequence[int] | None = None,
    estimator: str = "ransac",
    progress: Callable[[str], object] | None = None,
    also: Sequence[str] = (),
    warmup: bool = True,
) -> pd.DataFrame:
    """Per-pair records of every method at every sigma on every sequence (folders are read as needed).

    With ``warmup``, each method first runs once, untimed, on the first sequence's image 1, so that
    one-off costs (loading a network, compiling its graph) are not counted in seconds per pair.
    Returns one row per (method, sigma, sequence, pair) with the columns of :func:`evaluate_sequence`.
    """
    if not methods:
        raise ValueError("methods: expected at least one Method")
    names = [method.name for method in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"methods: names must be unique, got {names}")
    for name in (estimator, *also):
        if name not in ESTIMATORS:
            raise ValueError(f"estimator {name!r}: expected one of {sorted(ESTIMATORS)}")
    if estimator in also or len(set(also)) != len(also):
        raise ValueError(f"estimators: each once, got {[estimator, *also]}")
    records: list[dict] = []
    for item in sequences:
        sequence = item if isinstance(item, ImageSequence) else read_image_sequence(item)
        if warmup and not records:
            for method in methods:
                method.features(sequence.images[0])
        for sigma in sigmas:
            start = time.perf_counter()
            found = evaluate_sequence(sequence, methods, sigma, seed, pairs, estimator, also)
            records += found
            if progress is not None:
                progress(f"{sequence.name} sigma {sigma:g}: {len(found)} pairs in {time.perf_counter() - start:.1f} s")
    return pd.DataFrame(records)


# --------------------------------------------------------------------------- aggregation


def summarise(records: pd.DataFrame, by: Sequence[str] = ("method", "sigma")) -> pd.DataFrame:
    """Means over pairs per group: MMA@1..10, homography accuracy at 1/3/5 px, correct matches, counts, seconds.

    ``h_acc_e`` is the share of pairs whose corner error is <= e px (misses count as wrong);
    ``h_acc_e_<name>`` the same for a further estimator's ``corner_error_<name>``.
    """
    if records.empty:
        raise ValueError("records: no pairs were evaluated")
    frame = records.assign(keypoints=(records["keypoints_1"] + records["keypoints_k"]) / 2)
    suffixes = [""] + [column.removeprefix("corner_error") for column in frame if column.startswith("corner_error_")]
    for suffix in suffixes:
        for threshold in HOMOGRAPHY_THRESHOLDS:
            frame[f"h_acc_{threshold}{suffix}"] = (frame[f"corner_error{suffix}"] <= threshold).astype(float)
    columns = (
        [f"mma_{t}" for t in MMA_THRESHOLDS]
        + [f"h_acc_{t}{suffix}" for suffix in suffixes for t in HOMOGRAPHY_THRESHOLDS]
        + [f"correct_{CORRECT_THRESHOLD}", "matches", "keypoints", "seconds"]
    )
    grouped = frame.groupby(list(by), sort=False)
    summary = grouped[columns].mean()
    summary.insert(0, "pairs", grouped.size())
    return summary.rename(columns={"seconds": "seconds_per_pair"})


def mma_curves(records: pd.DataFrame) -> pd.DataFrame:
    """Long table of mean MMA per (method, sigma, threshold), for plotting MMA against the threshold."""
    summary = summarise(records)[[f"mma_{t}" for t in MMA_THRESHOLDS]].reset_index()
    long = summary.melt(id_vars=["method", "sigma"], var_name="threshold", value_name="mma")
    long["threshold"] = long["threshold"].str.removeprefix("mma_").astype(int)
    return long


def headline(summary: pd.DataFrame, measures: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Methods x sigma table of a few measures (default MMA@3 and homography accuracy at 3 px, every estimator)."""
    extra = {
        str(column): f"H@3px {str(column).removeprefix('h_acc_3_')}"
        for column in summary
        if str(column).startswith("h_acc_3_")
    }
    measures = measures or {"mma_3": "MMA@3", "h_acc_3": "H@3px", **extra}
    table = summary[list(measures)].rename(columns=measures).unstack("sigma")
    table.columns = [f"{measure} σ{sigma:g}" for measure, sigma in table.columns]
    return table
