"""``hpatches-describe``: describe every patch of an HPatches-format dataset into a descriptor folder.

Example: ``hpatches-describe data/hpatches-release descriptors/sift --pipeline sift``, then
``hpatches-eval descriptors/sift --tasks TASKS_DIR --split a`` (or the official HPatches benchmark,
which reads the same ``<seq>/<type>.csv`` layout).

Which patches are described, per layout detected by :func:`nhpatches.data.detect_layout`:

* N-HPatches and the embedded dataset: the noisy strips ``<type>_noise.png`` (32 px), the input
  the study's pipelines see; ``--clean`` describes the clean ``<type>.png`` strips instead;
* the genuine hpatches-release: its own 65 px patches ``<type>.png`` (no synthetic noise is
  added), given to the pipeline as they are: ``sift`` describes them at 65 px, the learned
  pipelines and ``raw`` resize them to 32 px first (see :func:`nhpatches.pretrained.describe`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nhpatches import data
from nhpatches.cli.common import run_command
from nhpatches.core.config import IMAGE_TYPES
from nhpatches.evaluation.descriptor_io import write_descriptor_dir
from nhpatches.pretrained import DEFAULT_PIPELINE, SUPPORTED_PATCH_SIZES, describe


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments of hpatches-describe."""
    parser = argparse.ArgumentParser(
        prog="hpatches-describe",
        description="Describe the patches of every sequence of an HPatches-format dataset (N-HPatches, the "
        "embedded dataset or the hpatches-release) into OUT_DIR/<sequence>/<type>.csv, 16 files per "
        "sequence, one row per patch: the descriptor layout hpatches-eval and the HPatches benchmark read.",
    )
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="dataset folder (one sub-folder per sequence)")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="descriptor folder to write")
    parser.add_argument(
        "--pipeline",
        default=DEFAULT_PIPELINE,
        metavar="NAME",
        help="'default' (the shipped learned pipeline, or the one of --weights), its name, "
        "'sift' or 'raw' (default: %(default)s)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        metavar="PATH",
        help="your own export (folder, manifest.json or weights.npz of scripts/export_pretrained.py)",
    )
    parser.add_argument(
        "--clean",
        action="store_true",
        help="N-HPatches / embedded: describe the clean <type>.png strips, not the noisy ones",
    )
    parser.add_argument(
        "--format",
        choices=("csv", "npy"),
        default="csv",
        help="descriptor file format (default csv; hpatches-eval also reads npy)",
    )
    parser.add_argument("--batch-size", type=int, default=256, metavar="B", help="patches per network batch")
    return parser


def sequence_patches(seq_dir: Path, noisy: bool) -> np.ndarray:
    """The 16 strips of one sequence to describe, checked. Shape: -> (16, N, P, P) uint8, P 32 or 65."""
    data.check_sequence_name(seq_dir)
    suffix = data.NOISE_SUFFIX if noisy else ""
    paths = [seq_dir / f"{image_type}{suffix}.png" for image_type in IMAGE_TYPES]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        kind = "noisy <type>_noise.png" if noisy else "clean <type>.png"
        raise data.layout_error(
            seq_dir, f"all 16 {kind} strips must exist; missing {', '.join(missing)}", FileNotFoundError
        )
    patches = data.read_strip_set(paths, None)  # same width and N in all 16 strips
    if patches.shape[-1] not in SUPPORTED_PATCH_SIZES:
        raise data.layout_error(
            paths[0],
            f"expected strips {' or '.join(map(str, SUPPORTED_PATCH_SIZES))} px wide "
            f"(N-HPatches or hpatches-release patches), got {patches.shape[-1]} px",
        )
    return patches


def run(args: argparse.Namespace) -> dict:
    """Describe every sequence of the dataset and write the descriptor folder; return a summary."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be a positive integer, got {args.batch_size}")
    # An unknown pipeline, a bad --weights export or a checksum mismatch fails before any data is read.
    describe(
        np.zeros((0, SUPPORTED_PATCH_SIZES[0], SUPPORTED_PATCH_SIZES[0]), np.uint8),
        pipeline=args.pipeline,
        weights=args.weights,
    )
    layout = data.detect_layout(args.data_dir)
    noisy = layout in ("nhpatches", "embedded") and not args.clean
    seq_dirs = data.sequence_dirs(args.data_dir)
    start = time.perf_counter()
    dim = patches_done = 0
    for seq_dir in seq_dirs:
        patches = sequence_patches(seq_dir, noisy)
        flat = patches.reshape(-1, *patches.shape[-2:])
        rows = describe(flat, pipeline=args.pipeline, weights=args.weights, batch_size=args.batch_size)
        dim = rows.shape[1]
        write_descriptor_dir(
            {seq_dir.name: rows.reshape(len(IMAGE_TYPES), patches.shape[1], dim)}, args.out_dir, fmt=args.format
        )
        patches_done += len(flat)
    kind = "noisy" if noisy else "release" if layout == "release" else "clean"
    summary = {
        "layout": layout,
        "patches": kind,
        "sequences": len(seq_dirs),
        "described": patches_done,
        "dim": dim,
        "pipeline": args.pipeline,
        "seconds": time.perf_counter() - start,
    }
    print(
        f"{summary['sequences']} sequences ({layout} layout, {summary['patches']} patches, {patches_done} in all) "
        f"described by {args.pipeline!r} as {dim}-d rows in {args.out_dir}/<sequence>/<type>.{args.format} "
        f"({summary['seconds']:.1f} s)"
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 on success, 2 on bad input or usage (message on stderr)."""
    return run_command("hpatches-describe", build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
