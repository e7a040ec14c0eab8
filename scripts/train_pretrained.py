"""Train the descriptor that ``nhpatches.describe()`` ships, with the release recipe, and export it.

    python scripts/train_pretrained.py --out runs/release-base --profile base  # the first release, from scratch
    python scripts/train_pretrained.py --out runs/release                 # the shipped recipe (cpu): fine-tunes it
    python scripts/train_pretrained.py --out runs/release --profile gpu   # batch 1024, bf16, 10x the pairs
    python scripts/train_pretrained.py --out runs/release --export lib/nhpatches/resources/pretrained

Prints one line per epoch (loss, validation matching mAP per σ, elapsed time, time left) and
checkpoints every epoch into --out: run the same command again after a kill and it resumes after
the last finished epoch. When the last epoch is done it exports the best epoch (by the held-out
validation score) to --export (default: <out>/export), the folder ``describe(weights=...)`` reads.
See nhpatches.pretrained.recipe for the recipe.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line's arguments."""
    from nhpatches.pretrained import recipe as release

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, state, log")
    parser.add_argument("--profile", default="cpu", choices=sorted(release.RECIPES))
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="override the recipe's steps per epoch")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--init", default=None, help="export folder a fine-tuning recipe starts from (default: the recipe's own)"
    )
    parser.add_argument("--export", type=Path, default=None, help="export folder (default <out>/export)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train (or resume) the recipe, then export its best epoch."""
    from nhpatches.pretrained import recipe as release

    args = parse_args(argv)
    overrides = {
        key: value
        for key, value in (
            ("epochs", args.epochs),
            ("steps_per_epoch", args.steps_per_epoch),
            ("seed", args.seed),
            ("init_weights", args.init),
        )
        if value is not None
    }
    recipe = release.recipe_for(args.profile, **overrides)
    try:
        state = release.train_release(args.out, recipe, print_fn=lambda line: print(line, flush=True))
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not state["finished"]:
        return 1
    manifest = release.export_release(args.export or args.out / "export", args.out, recipe)
    print(
        f"exported the best epoch ({state['best_epoch']}, validation score {state['best_score']:.4f}) "
        f"to {manifest.parent}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
