"""``hpatches-eval``: evaluate any descriptor folder on the HPatches tasks of one split.

Example: ``hpatches-eval descriptors/ --tasks data/hpatches-tasks --split a --json results.json``
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from nhpatches.descriptor_io import read_descriptor_dir
from nhpatches.evaluation import DISTANCES, evaluate, format_results
from nhpatches.tasks import atomic_write, load_tasks


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments of hpatches-eval."""
    parser = argparse.ArgumentParser(
        prog="hpatches-eval",
        description="HPatches verification / matching / retrieval mAP of a descriptor folder "
        "laid out as DESCR_DIR/<sequence>/<type>.csv (or .npy), 16 files per sequence.",
    )
    parser.add_argument("descr_dir", type=Path, metavar="DESCR_DIR", help="descriptor folder")
    parser.add_argument("--tasks", type=Path, required=True, metavar="TASKS_DIR",
                        help="folder with splits.json and the five task CSVs of the split")
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
        atomic_write(args.json, lambda temp: Path(temp).write_text(text))
        print(f"results written to {args.json}")
    return results


#: Errors a command turns into a one-line message and exit code 2 (bad input or usage).
INPUT_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, FileNotFoundError, NotADirectoryError,
                                             PermissionError)


def run_command(prog: str, parser: argparse.ArgumentParser, run_args: Callable[[argparse.Namespace], object],
                argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run; 0 on success, 2 on bad input or usage with ``prog: error: ...`` on stderr."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        run_args(args)
    except INPUT_ERRORS as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 on success, 2 on bad input or usage (message on stderr)."""
    return run_command("hpatches-eval", build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
