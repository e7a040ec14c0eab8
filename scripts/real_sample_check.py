"""The shipped descriptor, SIFT and raw pixels on real HPatches patches the project never trained on.

Loads one genuine sequence (default: the re-extracted ``v_wormhole`` in tests/fixtures, 65 px strips
resized to 32 px as the loader does), optionally re-noises it at σ with the noise sweep's noise,
and prints the top-1 matching accuracy of each pipeline: for each image, the share of its patches
whose nearest neighbour (L2) among that image's patches of the reference ``ref`` is the same 3-D
point, averaged per level (easy e1-5, hard h1-5, tough t1-5; the levels differ by geometric jitter).

    python scripts/real_sample_check.py [--sequence DIR] [--points 600] [--sigmas 0 35]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", type=Path, default=ROOT / "tests" / "fixtures" / "hpatches-sample" / "v_wormhole")
    parser.add_argument("--points", type=int, default=600, help="first N points of the sequence")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 35.0], help="noise std, 0..255 scale")
    parser.add_argument("--pipelines", nargs="+", default=["raw", "sift", "default"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import nhpatches
    from nhpatches import data, pretrained
    from nhpatches.core import config
    from nhpatches.data import sweep
    from nhpatches.study import findings

    sequence = data.load_sequence(args.sequence, max_patches=args.points)
    if sequence.clean is None:
        print(f"{args.sequence}: no clean strips ({{ref,e1..t5}}.png) to re-noise", file=sys.stderr)
        return 2
    names = {p: (pretrained.shipped_pipeline_name() if p == "default" else p) for p in args.pipelines}
    print(f"{args.sequence.name}: {sequence.num_patches} points x 16 images at {sequence.clean.shape[-1]} px; "
          f"top-1 matching accuracy of each image against ref, mean per level")
    print(f"{'sigma':>6} {'pipeline':<28} {'easy':>6} {'hard':>6} {'tough':>6}")
    for sigma in args.sigmas:
        patches = sweep.renoise(sequence.clean, sigma, data.sequence_noise_seed(0, f"real:{args.sequence.name}"))
        for pipeline in args.pipelines:
            described = [nhpatches.describe(patches[i], pipeline=pipeline) for i in range(len(config.IMAGE_TYPES))]
            scores = {level: np.mean([findings.nearest_neighbour_accuracy(described[i], described[0])
                                      for i in images if i != 0])
                      for level, images in config.LEVEL_IMAGES.items()}
            print(f"{sigma:6g} {names[pipeline]:<28} " + " ".join(f"{scores[l]:6.3f}" for l in ("easy", "hard", "tough")),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
