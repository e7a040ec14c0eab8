"""``hpatches-match-bench``: the image-matching benchmark over a folder of sequences, as tables and figures.

Example: ``hpatches-match-bench --sequences 3 --sigmas 0 20 50 --max-keypoints 1000 --out outputs/match_bench``
(the development pairs, built on first use), or ``--data tests/fixtures/hpatches-images`` (real v_wormhole).
``--rows`` takes row specs (:mod:`nhpatches.cli.match_rows`), e.g. ``describe:magnification=8``,
``unet+describe`` with ``--denoiser unet=PATH/model.keras``, ``describe:weights=runs/my_export``.

Writes to ``--out``: ``pairs.csv`` (one row per method, sigma and pair), ``summary.csv/.md`` (means per
method and sigma: MMA@1..10, homography accuracy at 1/3/5 px, correct matches at 3 px, keypoints,
matches, seconds per pair), ``summary_by_kind.csv/.md`` (the same per viewpoint / illumination),
``headline.csv/.md`` (MMA@3 and homography accuracy at 3 px against sigma), ``run.json`` (the
settings), and the figures ``fig_mma_vs_threshold.png``, ``fig_mma3_vs_sigma.png`` and
``fig_homography_vs_sigma.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nhpatches.cli.common import run_command
from nhpatches.cli.match_rows import DEFAULT_ROWS, RowSpec, build_method, load_image_denoiser, parse_denoisers
from nhpatches.core import config
from nhpatches.core.cache import atomic_path
from nhpatches.data import image_pairs
from nhpatches.evaluation import image_matching as bench

#: Resolution of the saved figures.
DPI = 130


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments of hpatches-match-bench."""
    parser = argparse.ArgumentParser(
        prog="hpatches-match-bench",
        description="Match image 1 against images 2..6 of every sequence (HPatches or Oxford layout) with "
        "each row's features at each Gaussian noise level; score MMA@1..10 px (D2-Net) and homography "
        "accuracy (SuperPoint); write csv/md tables and figures to --out.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="folder of sequences, or one sequence (default: the development pairs, built if missing)",
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/match_bench"), metavar="DIR", help="output folder")
    parser.add_argument(
        "--rows",
        nargs="+",
        metavar="SPEC",
        help=f"row specs [DENOISER+]DESCRIPTOR[:key=value,...] (default: {' '.join(DEFAULT_ROWS)}, "
        "and NAME+describe for every --denoiser)",
    )
    parser.add_argument(
        "--denoiser",
        action="append",
        metavar="NAME=PATH",
        help="a whole-image Keras denoiser (study U-Net / DnCNN model.keras) that rows call NAME",
    )
    parser.add_argument(
        "--sigmas", nargs="+", type=float, default=list(bench.SIGMAS), metavar="S", help="noise std, 0..255 scale"
    )
    parser.add_argument("--max-keypoints", type=int, default=2000, metavar="N", help="SIFT keypoints per image")
    parser.add_argument(
        "--sequences",
        nargs="+",
        metavar="NAME",
        help="sequence names, or one number N: the first N sequences by name (default: all)",
    )
    parser.add_argument(
        "--pairs", nargs="+", type=int, metavar="K", help="images k matched against image 1 (default: all, 2..6)"
    )
    parser.add_argument(
        "--estimator", choices=sorted(bench.ESTIMATORS), default="ransac", help="homography estimator (3 px)"
    )
    parser.add_argument(
        "--also-estimator",
        nargs="+",
        default=[],
        choices=sorted(bench.ESTIMATORS),
        metavar="NAME",
        help="further estimators scored from the same matches (columns h_acc_<e>_<NAME>; magsac: match_images')",
    )
    parser.add_argument("--seed", type=int, default=0, help="noise seed (and development-pairs seed)")
    return parser


def select_sequences(folders: list[Path], chosen: Sequence[str] | None) -> list[Path]:
    """The sequence folders named in ``--sequences`` (or the first N); ValueError listing the known names."""
    if not chosen:
        return folders
    if len(chosen) == 1 and chosen[0].isdigit():
        count = int(chosen[0])
        if count < 1:
            raise ValueError(f"--sequences {count}: expected a positive number or sequence names")
        return folders[:count]
    by_name = {folder.name: folder for folder in folders}
    unknown = [name for name in chosen if name not in by_name]
    if unknown:
        raise ValueError(f"--sequences: unknown {unknown}; known {sorted(by_name)}")
    return [by_name[name] for name in chosen]


def row_specs(args: argparse.Namespace, denoiser_names: Sequence[str]) -> list[RowSpec]:
    """The rows to run, parsed (unique names)."""
    texts = args.rows or [*DEFAULT_ROWS, *(f"{name}+describe" for name in denoiser_names)]
    specs = [RowSpec.parse(text) for text in texts]
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"--rows: each row once, got {names}")
    return specs


def write_table(frame: pd.DataFrame, path: Path, floatfmt: str = "{:.3f}") -> None:
    """Write a table as <path>.csv and <path>.md (index kept as columns), atomically."""
    from nhpatches.study.report import to_markdown

    flat = frame.reset_index()
    if "sigma" in flat:
        flat["sigma"] = flat["sigma"].map(lambda sigma: f"{sigma:g}")
    with atomic_path(path.with_suffix(".csv")) as tmp:
        flat.to_csv(tmp, index=False)
    with atomic_path(path.with_suffix(".md")) as tmp:
        tmp.write_text(to_markdown(flat, floatfmt) + "\n")


def _save(figure, path: Path) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    plt.close(figure)
    return path


def write_figures(records: pd.DataFrame, out: Path) -> list[Path]:
    """MMA against threshold per sigma, MMA@3 against sigma and homography accuracy at 3 px against sigma."""
    import matplotlib

    matplotlib.use("Agg")
    from nhpatches.study import photograph_plots as photographs

    summary = bench.summarise(records).reset_index()
    figures = {
        "fig_mma_vs_threshold.png": photographs.plot_mma_curves(records),
        "fig_mma3_vs_sigma.png": photographs.plot_against_sigma(summary, "mma_3"),
        "fig_homography_vs_sigma.png": photographs.plot_against_sigma(summary, "h_acc_3"),
    }
    return [_save(figure, out / name) for name, figure in figures.items()]


def run(args: argparse.Namespace) -> dict:
    """Run the benchmark and write its tables, figures and settings; return a summary."""
    if args.max_keypoints < 1:
        raise ValueError(f"--max-keypoints must be a positive integer, got {args.max_keypoints}")
    if any(sigma < 0 for sigma in args.sigmas):
        raise ValueError(f"--sigmas must be >= 0 (std on the 0..255 scale), got {args.sigmas}")
    if args.pairs and any(k < 2 for k in args.pairs):
        raise ValueError(f"--pairs: image numbers k >= 2 (matched against image 1), got {args.pairs}")
    denoiser_paths = parse_denoisers(args.denoiser)
    specs = row_specs(args, list(denoiser_paths))
    data_dir = args.data if args.data is not None else image_pairs.ensure_dev_pairs(seed=args.seed)
    folders = select_sequences(image_pairs.image_sequence_dirs(data_dir), args.sequences)
    sequences = [image_pairs.read_image_sequence(folder) for folder in folders]  # every folder checked first
    denoisers = {name: load_image_denoiser(path) for name, path in denoiser_paths.items()}
    methods = [build_method(spec, args.max_keypoints, denoisers) for spec in specs]
    start = time.perf_counter()
    records = bench.run_benchmark(
        sequences,
        methods,
        args.sigmas,
        seed=args.seed,
        pairs=args.pairs,
        estimator=args.estimator,
        also=args.also_estimator,
        progress=lambda line: print(line, flush=True),
    )
    seconds = time.perf_counter() - start
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    summary = bench.summarise(records)
    with atomic_path(out / "pairs.csv") as tmp:
        records.to_csv(tmp, index=False)
    write_table(summary, out / "summary")
    if records["kind"].ne("").any():
        write_table(bench.summarise(records, by=("method", "sigma", "kind")), out / "summary_by_kind")
    headline = bench.headline(summary)
    headline["s/pair"] = summary["seconds_per_pair"].groupby("method", sort=False).mean()
    write_table(headline, out / "headline")
    figures = write_figures(records, out)
    settings = {
        "data": str(config.display_path(Path(data_dir).resolve())),
        "sequences": [sequence.name for sequence in sequences],
        "pairs": int(records.groupby("method").size().iloc[0] / len(args.sigmas)),
        "rows": [spec.name for spec in specs],
        "denoisers": {name: str(path) for name, path in denoiser_paths.items()},
        "sigmas": args.sigmas,
        "max_keypoints": args.max_keypoints,
        "estimator": args.estimator,
        "also_estimators": args.also_estimator,
        "seed": args.seed,
        "seconds": round(seconds, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    with atomic_path(out / "run.json") as tmp:
        tmp.write_text(json.dumps(settings, indent=1) + "\n")
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(headline)
    print(
        f"{len(sequences)} sequences, {settings['pairs']} pairs per row and sigma, {len(methods)} rows, "
        f"{len(args.sigmas)} sigmas in {seconds:.1f} s; tables and {len(figures)} figures in {out}"
    )
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 on success, 2 on bad input or usage (message on stderr)."""
    return run_command("hpatches-match-bench", build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
