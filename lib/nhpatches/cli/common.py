"""What the command-line tools share: turning bad input into one line and exit code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

#: Errors a command turns into a one-line message and exit code 2 (bad input or usage).
INPUT_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    FileNotFoundError,
    NotADirectoryError,
    PermissionError,
)


def run_command(
    prog: str,
    parser: argparse.ArgumentParser,
    run_args: Callable[[argparse.Namespace], object],
    argv: Sequence[str] | None,
) -> int:
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
