"""Run the notebook series (00..11) with papermill for one profile.

Executed copies go to outputs/<profile>/ (ignored by git); figures and tables go to
figures/<profile>/. Models and evaluations are cached under results/, so a rerun
only executes what changed.

    python scripts/run_series.py --profile cpu [--data-dir PATH] [--seed 0] [--only 02 03]
    python scripts/run_series.py --profile cpu --seeds 0 1 2   # tables as mean ± std over 3 seeds

With several seeds every model is trained once per seed, and the figures and tables go to
figures/<profile>_seeds_<s1>_<s2>_.../ beside the one-seed ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import papermill
from papermill.exceptions import PapermillExecutionError

ROOT = Path(__file__).resolve().parents[1]
#: The kernel logs errors only: its start-up warning ("Kernel is running over TCP without
#: encryption", about a local kernel on the loopback) would print once per notebook.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--data-dir", default=None, help="hpatches-release or N-HPatches folder (default: embedded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        metavar="SEED",
        help="several seeds: every model once per seed, tables as mean ± std (e.g. --seeds 0 1 2)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="train every model for this many epochs (default: the profile's counts)",
    )
    parser.add_argument("--split", default="a")
    parser.add_argument("--force-retrain", action="store_true")
    parser.add_argument("--only", nargs="*", default=None, help="notebook number prefixes to run, e.g. 00 07")
    parser.add_argument("--output-dir", default=None, help="where executed notebooks go (default outputs/<profile>)")
    return parser.parse_args(argv)


def failure_summary(notebook: Path, executed: Path, error: PapermillExecutionError) -> str:
    """A few lines on a failed notebook: which one, which cell, and the library's own message."""
    source = [line for line in str(error.source).strip().splitlines() if line.strip()]
    shown = "\n".join(f"    {line}" for line in source[:3]) + ("\n    ..." if len(source) > 3 else "")
    return (
        f"\n{notebook.name} failed in cell {error.exec_count} (code cell index {error.cell_index}):\n{shown}\n"
        f"{error.ename}: {error.evalue}\n"
        f"(full traceback in {executed})"
    )


def main(argv: list[str] | None = None) -> int:
    """Execute the selected notebooks in order; stop at the first failure."""
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the kernels inherit it: TensorFlow's C++ logs off
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if nb.name[:2] in set(args.only)]
    if not notebooks:
        print(f"no notebooks selected under {ROOT / 'notebooks'}", file=sys.stderr)
        return 2
    tag = (
        args.profile
        if not args.seeds or len(args.seeds) == 1
        else f"{args.profile}_seeds_" + "_".join(str(s) for s in args.seeds)
    )
    output_dir = Path(args.output_dir).resolve() if args.output_dir else ROOT / "outputs" / tag
    output_dir.mkdir(parents=True, exist_ok=True)
    data_dir = str(Path(args.data_dir).expanduser().resolve()) if args.data_dir else None  # kernels run in notebooks/
    parameters = {
        "profile": args.profile,
        "data_dir": data_dir,
        "seed": args.seed,
        "split": args.split,
        "force_retrain": args.force_retrain,
        "epochs": args.epochs,
        "seeds": args.seeds,
    }
    total = time.perf_counter()
    os.chdir(ROOT)  # papermill records the paths it is given: keep them relative to the project in the outputs
    for notebook in notebooks:
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                os.path.relpath(notebook, ROOT),
                os.path.relpath(output_dir / notebook.name, ROOT),
                parameters=parameters,
                cwd=str(ROOT / "notebooks"),
                progress_bar=False,
                extra_arguments=KERNEL_ARGUMENTS,
            )
        except PapermillExecutionError as error:
            print(failure_summary(notebook, output_dir / notebook.name, error), file=sys.stderr)
            return 1
        print(f"{notebook.name}: {time.perf_counter() - start:7.1f} s", flush=True)
    print(f"series ({tag}): {time.perf_counter() - total:.1f} s; executed notebooks in {output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
