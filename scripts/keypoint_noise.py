"""How far SIFT keypoints move under noise, against the jitter the camera training points get.

On the development pairs' viewpoint sequences (``data/image_pairs_s0``, the embedded dataset's test
photos; never ``v_wormhole``), SIFT keypoints are detected as ``detect_and_describe`` detects them
(the image as given, or after the "auto" denoiser with its lower contrast threshold) on image 1 and
on image k at noise σ. Each keypoint of image 1 is mapped into image k by the ground truth
(:func:`nhpatches.data.camera.map_keypoints`) and paired with the nearest keypoint detected there
(within 2 px or a fifth of the region's half-width, whichever is larger; a point OpenCV reports at
several orientations is paired by position only, and a neighbour may be paired by mistake, so these
are rough medians). Printed per σ: the median and 75th percentile of the shift
(in units of the region's half-width, ``magnification`` x size / 2), of |log scale ratio| and of the
angle difference, beside the same statistics of the relative jitter between two views of one camera
point (:class:`nhpatches.data.camera.CameraSettings`, drawn as the training draws it).

    python scripts/keypoint_noise.py                  # σ 0 20 35 50, the shipped recipe's settings
    python scripts/keypoint_noise.py --denoise auto   # keypoints of the default pipeline
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 20.0, 35.0, 50.0])
    parser.add_argument("--denoise", choices=["none", "auto"], default="none", help="detect as given or after 'auto'")
    parser.add_argument("--max-keypoints", type=int, default=2000)
    parser.add_argument("--sequences", type=int, default=None, help="the first N viewpoint sequences (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def detected_keypoints(image: np.ndarray, denoise: str, max_keypoints: int) -> np.ndarray:
    """Keypoints (x, y, size, angle) as ``detect_and_describe(image, denoise=denoise)`` finds them. Shape: (N, 4)."""
    from nhpatches.data.photographs import denoise_if_noisy, detect_sift, estimate_noise_sigma
    from nhpatches.pretrained import images

    seen, denoised = image, False
    if denoise == "auto":
        seen, denoised = denoise_if_noisy(
            image, estimate_noise_sigma(image), images.NLM_STRENGTH, images.AUTO_DENOISE_MIN_SIGMA
        )
    return detect_sift(seen, max_keypoints, images.sift_contrast_threshold(denoised), images.SIFT_EDGE_THRESHOLD)


def paired_errors(first: np.ndarray, second: np.ndarray, homography: np.ndarray, magnification: float) -> np.ndarray:
    """(shift / half-width, |log scale ratio|, |angle difference|°) of image-1 keypoints re-detected nearby.

    Shape: (N1, 4), (N2, 4), (3, 3) -> (M, 3)
    """
    from nhpatches.data.camera import map_keypoints

    if len(first) == 0 or len(second) == 0:
        return np.zeros((0, 3))
    mapped = map_keypoints(first, homography)
    distance = np.linalg.norm(mapped[:, None, :2] - second[None, :, :2], axis=2)
    nearest = distance.argmin(axis=1)
    shift = distance[np.arange(len(mapped)), nearest]
    kept = shift < np.maximum(2.0, 0.2 * magnification * mapped[:, 2] / 2)
    found, target = second[nearest[kept]], mapped[kept]
    angle = np.abs((found[:, 3] - target[:, 3] + 180.0) % 360.0 - 180.0)
    return np.column_stack(
        [shift[kept] / (magnification * target[:, 2] / 2), np.abs(np.log(found[:, 2] / target[:, 2])), angle]
    )


def jitter_errors(settings, sigma: float, count: int = 20000, seed: int = 0) -> np.ndarray:
    """The same three statistics between two independently jittered views at noise σ. Shape: -> (count, 3)."""
    from nhpatches.data.camera import jitter_keypoints

    rng = np.random.default_rng(seed)
    points = np.tile([[500.0, 500.0, 8.0, 90.0]], (count, 1))
    first, second = jitter_keypoints(points, settings, rng, sigma), jitter_keypoints(points, settings, rng, sigma)
    shift = np.linalg.norm(first[:, :2] - second[:, :2], axis=1) / (settings.magnification * 8.0 / 2)
    angle = np.abs((first[:, 3] - second[:, 3] + 180.0) % 360.0 - 180.0)
    return np.column_stack([shift, np.abs(np.log(first[:, 2] / second[:, 2])), angle])


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    from nhpatches.data import image_pairs
    from nhpatches.evaluation import image_matching as bench
    from nhpatches.pretrained.recipe import RECIPES

    args = parse_args(argv)
    settings = RECIPES["cpu"].camera
    folders = image_pairs.image_sequence_dirs(image_pairs.ensure_dev_pairs(seed=args.seed))
    folders = [folder for folder in folders if folder.name.startswith("v_")][: args.sequences]
    sequences = [image_pairs.read_image_sequence(folder) for folder in folders]
    print(f"{len(sequences)} viewpoint sequences, detection: {args.denoise}, region {settings.magnification:g} sigma")
    print("sigma | pairs kept | shift/half-width med p75 | |log scale| med p75 | angle° med | training jitter: same")
    for sigma in args.sigmas:
        errors = []
        for sequence in sequences:
            images = bench.noisy_images(sequence, sigma, args.seed)
            first = detected_keypoints(images[0], args.denoise, args.max_keypoints)
            for k in range(2, len(images) + 1):
                second = detected_keypoints(images[k - 1], args.denoise, args.max_keypoints)
                errors.append(paired_errors(first, second, sequence.homographies[k - 2], settings.magnification))
        found, drawn = np.concatenate(errors), jitter_errors(settings, sigma)

        def cells(table: np.ndarray) -> str:
            shift, scale = np.percentile(table[:, 0], [50, 75]), np.percentile(table[:, 1], [50, 75])
            return f"{shift[0]:.3f} {shift[1]:.3f} | {scale[0]:.3f} {scale[1]:.3f} | {np.median(table[:, 2]):.1f}"

        print(f"{sigma:5g} | {len(found):10d} | {cells(found)} | {cells(drawn)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
