"""The shipped descriptor, SIFT and raw pixels on real HPatches patches, scored with the HPatches protocol.

The check itself is ``nhpatches.cli.real_sample`` (how the tasks are formed is in its docstring);
this script only parses the options. The real sample (default: ``v_wormhole`` of
tests/fixtures/hpatches-sample) is never trained on, and the release recipe never selects an
epoch with it: the recipe selects on the embedded test sequences, and this check runs afterwards,
on finished exports. It was used once to choose between two finished candidates, the shipped
descriptor and the pipeline shipped before it (README, "Why no denoiser").

    python scripts/real_sample_check.py                      # default, sift, raw at σ 0 10 20 35 50
    python scripts/real_sample_check.py --weights runs/release/export --label candidate
    python scripts/real_sample_check.py --out figures/release  # also writes the table and figure
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEQUENCE = ROOT / "tests" / "fixtures" / "hpatches-sample" / "v_wormhole"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    from nhpatches.cli.real_sample import PIPELINES, SIGMAS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", type=Path, default=SEQUENCE, help="a real sequence folder (release layout)")
    parser.add_argument("--max-points", type=int, default=None, help="use the first N points of the real sequence")
    parser.add_argument("--sigmas", type=float, nargs="+", default=list(SIGMAS), help="noise std, 0..255 scale")
    parser.add_argument(
        "--pipelines", nargs="+", default=list(PIPELINES), help="names for nhpatches.describe(pipeline=...)"
    )
    parser.add_argument("--weights", type=Path, default=None, help="an export to use for the learned pipeline")
    parser.add_argument("--label", default=None, help="row label of the learned pipeline (default: its name)")
    parser.add_argument("--out", type=Path, default=None, help="write real_sample_map.csv/.md and the figure here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the check; print one line per row; write the table and figure with --out."""
    args = parse_args(argv)
    from nhpatches.cli import real_sample

    try:
        sample = real_sample.load_real_sample(args.sequence, args.max_points)
        result = real_sample.run_check(
            sample,
            real_sample.embedded_negatives(),
            args.sigmas,
            args.pipelines,
            args.weights,
            args.label,
            print_fn=lambda line: print(line, flush=True),
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out is not None:
        print("wrote " + ", ".join(str(path) for path in real_sample.write_outputs(result, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
