"""``hpatches-eval``: evaluate any descriptor folder on the HPatches tasks of one split.

Example: ``hpatches-eval descriptors/ --tasks data/hpatches-tasks --split a --json results.json``
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from nhpatches.cli.common import run_command
from nhpatches.core.cache import atomic_path
from nhpatches.data.tasks import load_tasks
from nhpatches.evaluation import DISTANCES, evaluate, format_results
from nhpatches.evaluation.descriptor_io import read_descriptor_dir


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments of hpatches-eval."""
    parser = argparse.ArgumentParser(
        prog="hpatches-eval",
        description="HPatches verification / matching / retrieval mAP of a descriptor folder "
        "laid out as DESCR_DIR/<sequence>/<type>.csv (or .npy), 16 files per sequence.",
    )
    parser.add_argument("descr_dir", type=Path, metavar="DESCR_DIR", help="descriptor folder")
    parser.add_argument(
        "--tasks",
        type=Path,
        required=True,
        metavar="TASKS_DIR",
        help="folder with splits.json and the five task CSVs of the split",
    )
    parser.add_argument("--split", required=True, metavar="NAME", help="split name, e.g. a")
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="write all results as JSON")
    parser.add_argument("--distance", choices=DISTANCES, default="L2", help="descriptor distance (default L2)")
    return parser


def run(args: argparse.Namespace) -> dict:
    """Load tasks and descriptors, evaluate, print the table, write the JSON."""
    tasks = load_tasks(args.tasks, args.split)
    descriptors = read_descriptor_dir(args.descr_dir, tasks.sequences)
    results = evaluate(descriptors, tasks, distance=args.distance, progress=None)
    results["descriptors"] = str(args.descr_dir.resolve())
    print(format_results(results))
    if args.json is not None:
        text = json.dumps(results, indent=1) + "\n"
        with atomic_path(args.json) as temp:
            temp.write_text(text)
        print(f"results written to {args.json}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 on success, 2 on bad input or usage (message on stderr)."""
    return run_command("hpatches-eval", build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
