"""The image pipeline's defaults, chosen on the development pairs: denoiser strength, detector threshold, region.

The defaults of :func:`nhpatches.detect_and_describe` / :func:`nhpatches.match_images`
(``nhpatches.pretrained.images``: NLM_STRENGTH, the SIFT contrast threshold on a denoised image,
the region, the ratio test) are chosen here, on pairs made from the embedded dataset's *test* photos
(:mod:`nhpatches.data.image_pairs`), never on ``v_wormhole``. Each configuration runs through the
public API (a denoiser function, an OpenCV detector object, ``magnification=``), so what is scored is
what a user gets with those settings. Features are computed once per (configuration, image) and
shared by the matchers.

Prints and writes (``--out``) a table of MMA@3 and homography accuracy at 1/3/5 px per
configuration and sigma, beside SIFT and RootSIFT on the same noisy images, e.g.::

    python scripts/tune_image_pipeline.py --sigmas 20 50 --out figures/release/photographs_tuning
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

import nhpatches
from nhpatches.cli.match_bench import write_table
from nhpatches.cli.match_rows import RowSpec, build_method, nlm_filter
from nhpatches.data import image_pairs
from nhpatches.evaluation import image_matching as bench
from nhpatches.nets.matching import match_descriptors
from nhpatches.pretrained import images


def cached(features):
    """Memoise a feature function by the image's bytes (matchers share one computation)."""
    store: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def run(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = hashlib.sha1(image.tobytes()).hexdigest() + str(image.shape)
        if key not in store:
            store[key] = features(image)
        return store[key]

    return run


def product(strength: float, contrast: float, magnification: float | None, max_keypoints: int):
    """detect_and_describe with these settings (the shipped photographs descriptor)."""
    detector = cv2.SIFT_create(nfeatures=max_keypoints, contrastThreshold=contrast)  # type: ignore[attr-defined]
    # the product's "auto" rule at this strength; a function counts as a denoiser, so 0 is "none"
    denoise = "none" if strength == 0 else nlm_filter(auto=True, strength=strength)

    def features(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = nhpatches.detect_and_describe(
            image, max_keypoints, detector=detector, denoise=denoise, magnification=magnification
        )
        return found.xy, found.descriptors

    return cached(features)


def ratio_matcher(ratio: float | None):
    """Mutual nearest neighbours, with Lowe's ratio test when ``ratio``."""

    def match(d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
        return match_descriptors(d1, d2, mutual=True, ratio=ratio)[0]

    return match


def methods(args: argparse.Namespace) -> list[bench.Method]:
    """SIFT and RootSIFT on the noisy images, then the grid of product configurations."""
    rows = [build_method(RowSpec.parse(name), args.max_keypoints, {}) for name in ("sift", "rootsift")]
    for strength, contrast, magnification in itertools.product(args.strengths, args.contrasts, args.magnifications):
        region = None if magnification <= 0 else magnification
        features = product(strength, contrast, region, args.max_keypoints)
        for ratio in args.ratios:
            ratio_value = None if ratio >= 1 else ratio
            name = f"h={strength:g} c={contrast:g} m={'default' if region is None else f'{region:g}'} r={ratio:g}"
            rows.append(bench.Method(name, features, ratio_matcher(ratio_value)))
    return rows


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", nargs="+", help="development sequence names (default: all)")
    parser.add_argument("--sigmas", nargs="+", type=float, default=[20.0, 50.0])
    parser.add_argument("--strengths", nargs="+", type=float, default=[images.NLM_STRENGTH], help="NLM h / sigma")
    parser.add_argument("--contrasts", nargs="+", type=float, default=[images.SIFT_CONTRAST_THRESHOLD])
    parser.add_argument(
        "--magnifications", nargs="+", type=float, default=[0.0], help="region half-width / sigma (0: the default)"
    )
    parser.add_argument("--ratios", nargs="+", type=float, default=[1.0], help="ratio test (1: none)")
    parser.add_argument("--max-keypoints", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="folder for summary.csv / summary.md / run.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the grid and print its table."""
    args = build_parser().parse_args(argv)
    folders = image_pairs.image_sequence_dirs(image_pairs.ensure_dev_pairs(seed=args.seed))
    if args.sequences:
        known = {folder.name: folder for folder in folders}
        missing = sorted(set(args.sequences) - set(known))
        if missing:
            raise SystemExit(f"--sequences: unknown {missing}; known {sorted(known)}")
        folders = [known[name] for name in args.sequences]
    start = time.perf_counter()
    records = bench.run_benchmark(
        folders, methods(args), args.sigmas, seed=args.seed, progress=lambda text: print(text, flush=True)
    )
    summary = bench.summarise(records)
    columns = ["mma_3", "h_acc_1", "h_acc_3", "h_acc_5", "correct_3", "matches", "keypoints"]
    table = summary[columns].unstack("sigma")
    table.columns = [f"{name} σ{sigma:g}" for name, sigma in table.columns]
    pd.set_option("display.width", 250)
    print(table.round(3).to_string())
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        records.to_csv(args.out / "pairs.csv", index=False)
        write_table(summary, args.out / "summary")
        write_table(table, args.out / "headline")
        run = {
            **{key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
            "sequences": [folder.name for folder in folders],
            "seconds": round(time.perf_counter() - start, 1),
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs, Python {platform.python_version()}",
        }
        (args.out / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
