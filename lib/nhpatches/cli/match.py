"""``hpatches-match``: match two photographs and draw the inlier matches side by side.

Example: ``hpatches-match a.png b.png --out matches.png --noise 20`` adds Gaussian noise of std 20
(grey levels) to both images, matches them with :func:`nhpatches.match_images` (SIFT keypoints,
the shipped descriptor, mutual nearest neighbours, a MAGSAC++ homography) and prints the counts.
The drawing shows the images as they were matched (grayscale, with the noise), the inliers in green.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from nhpatches.cli.common import run_command
from nhpatches.data.noise import add_noise
from nhpatches.pretrained import DEFAULT_PIPELINE
from nhpatches.pretrained.images import (
    DEFAULT_DENOISE,
    DENOISERS,
    HOMOGRAPHY_METHODS,
    HOMOGRAPHY_THRESHOLD,
    match_images,
)


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments of hpatches-match."""
    parser = argparse.ArgumentParser(
        prog="hpatches-match",
        description="Match two photographs (keypoints, descriptors of their patches, mutual nearest neighbours, "
        "a robust homography), draw the inlier matches side by side and print the counts.",
    )
    parser.add_argument("image1", type=Path, metavar="IMG1", help="first image (any format OpenCV reads)")
    parser.add_argument("image2", type=Path, metavar="IMG2", help="second image")
    parser.add_argument("--out", type=Path, required=True, metavar="PNG", help="drawing of the inlier matches")
    parser.add_argument(
        "--noise", type=float, default=0.0, metavar="SIGMA", help="Gaussian noise std added to both images"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default: %(default)s)")
    parser.add_argument(
        "--pipeline",
        default=DEFAULT_PIPELINE,
        metavar="NAME",
        help="descriptor: 'default' (the shipped network), its name, 'sift' or 'raw' (default: %(default)s)",
    )
    parser.add_argument("--weights", type=Path, metavar="PATH", help="your own export instead of the shipped one")
    parser.add_argument("--max-keypoints", type=int, default=2000, metavar="N", help="keypoints per image")
    parser.add_argument("--denoise", choices=DENOISERS, default=None, help="image denoiser (default: the library's)")
    parser.add_argument("--method", choices=tuple(HOMOGRAPHY_METHODS), default="magsac", help="homography estimator")
    parser.add_argument(
        "--threshold", type=float, default=HOMOGRAPHY_THRESHOLD, metavar="PX", help="inlier reprojection error"
    )
    return parser


def read_gray(path: Path) -> np.ndarray:
    """An 8-bit image file as grayscale, checked. Shape: -> (H, W) uint8."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(
            f"{path}: cannot read an image from this file (expected PNG, JPEG, PPM or another format OpenCV reads)"
        )
    if image.dtype != np.uint8:
        raise ValueError(
            f"{path}: expected an 8-bit image, got {image.dtype} pixels (convert it to 8 bits per channel)"
        )
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if image.ndim != 2 or min(image.shape) < 16:
        raise ValueError(
            f"{path}: expected a grayscale or colour image of at least 16 x 16 pixels, got shape {image.shape}"
        )
    return image


def draw_matches(image1: np.ndarray, image2: np.ndarray, xy1: np.ndarray, xy2: np.ndarray) -> np.ndarray:
    """The two images side by side with a green line and end points per match.

    Shape: (H1, W1), (H2, W2) uint8, (M, 2) x 2 -> (max(H1, H2), W1 + W2, 3) uint8 BGR
    """
    height = max(image1.shape[0], image2.shape[0])
    canvas = np.zeros((height, image1.shape[1] + image2.shape[1]), np.uint8)
    canvas[: image1.shape[0], : image1.shape[1]] = image1
    canvas[: image2.shape[0], image1.shape[1] :] = image2
    canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    ends = np.stack([xy1, xy2 + np.array([image1.shape[1], 0])], axis=1)
    lines = [np.round(pair).astype(np.int32) for pair in ends]
    cv2.polylines(canvas, lines, isClosed=False, color=(0, 200, 0), thickness=1, lineType=cv2.LINE_AA)
    for point in np.round(ends.reshape(-1, 2)).astype(int):
        cv2.circle(canvas, (int(point[0]), int(point[1])), 2, (0, 255, 255), -1, cv2.LINE_AA)
    return canvas


def run(args: argparse.Namespace) -> dict:
    """Match the two images, write the drawing and print the counts; return them."""
    if args.noise < 0 or not np.isfinite(args.noise):
        raise ValueError(f"--noise must be a non-negative std in grey levels, got {args.noise}")
    if args.max_keypoints < 1:
        raise ValueError(f"--max-keypoints must be a positive integer, got {args.max_keypoints}")
    if not args.out.parent.is_dir():
        raise NotADirectoryError(f"{args.out.parent}: folder of --out does not exist")
    if args.out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff"):
        raise ValueError(f"--out {args.out}: expected an image file name (.png, .jpg, ...)")
    first, second = read_gray(args.image1), read_gray(args.image2)
    if args.noise > 0:
        rng = np.random.default_rng(args.seed)
        first, second = add_noise(first, args.noise, rng), add_noise(second, args.noise, rng)
    try:
        result = match_images(
            first,
            second,
            max_keypoints=args.max_keypoints,
            denoise=args.denoise or DEFAULT_DENOISE,
            pipeline=args.pipeline,
            weights=args.weights,
            method=args.method,
            threshold=args.threshold,
        )
    except ValueError as error:  # name the files rather than "image1" / "image2"
        message = str(error).replace("image1:", f"{args.image1}:").replace("image2:", f"{args.image2}:")
        raise ValueError(message) from None
    inliers = result.inliers
    drawing = draw_matches(first, second, result.xy1[inliers], result.xy2[inliers])
    try:
        written = cv2.imwrite(str(args.out), drawing)
    except cv2.error:
        written = False
    if not written:
        raise ValueError(f"--out {args.out}: OpenCV could not write the drawing there")
    one, two = result.features1, result.features2
    print(
        f"keypoints {len(one)} / {len(two)}, matches {len(result.matches)}, inliers {int(inliers.sum())} "
        f"({args.method}, {args.threshold:g} px); estimated noise {one.noise_sigma:.1f} / {two.noise_sigma:.1f}, "
        f"denoised {'yes' if one.denoised else 'no'} / {'yes' if two.denoised else 'no'}; wrote {args.out}"
    )
    summary = {
        "keypoints": (len(one), len(two)),
        "matches": len(result.matches),
        "inliers": int(inliers.sum()),
        "noise_sigma": (one.noise_sigma, two.noise_sigma),
        "denoised": (one.denoised, two.denoised),
    }
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 on success, 2 on bad input or usage (message on stderr)."""
    return run_command("hpatches-match", build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
