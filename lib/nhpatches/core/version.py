"""The installed package's version, read from its metadata (no import of the package root)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

#: The version reported by a source tree that is not installed.
UNKNOWN_VERSION = "0+unknown"


def package_version() -> str:
    """Version of the installed ``nhpatches`` distribution, or ``0+unknown`` for a bare source tree."""
    try:
        return version("nhpatches")
    except PackageNotFoundError:
        return UNKNOWN_VERSION
