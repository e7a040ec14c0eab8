"""Constants of the HPatches format, run profiles and project paths."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

#: The 16 images of an HPatches sequence, in the order used for every (16, N, ...) array.
IMAGE_TYPES: tuple[str, ...] = ("ref",) + tuple(
    f"{level}{k}" for level in "eht" for k in range(1, 6)
)
#: Noise / geometric difficulty levels of HPatches, keyed by their strip prefix.
NOISE_LEVELS: dict[str, str] = {"e": "easy", "h": "hard", "t": "tough"}
#: The three HPatches tasks.
TASKS: tuple[str, ...] = ("verification", "matching", "retrieval")
#: The HPatches splits.
SPLITS: tuple[str, ...] = ("a", "b", "c", "illum", "view", "full")
#: Patch side used by the models (N-HPatches strips are 32 px wide).
PATCH_SIZE = 32
#: Side of a patch in the genuine hpatches-release strips.
RELEASE_PATCH_SIZE = 65


def image_index(image_type: str) -> int:
    """Position of an image type ('ref', 'e1', ...) in IMAGE_TYPES."""
    try:
        return IMAGE_TYPES.index(image_type)
    except ValueError:
        raise ValueError(f"unknown image type {image_type!r}; expected one of {IMAGE_TYPES}") from None


def project_root() -> Path:
    """Root of the project: $NHPATCHES_ROOT, else the checkout holding lib/, else the cwd."""
    env = os.environ.get("NHPATCHES_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "lib" / "nhpatches").is_dir():
            return parent
    return Path.cwd().resolve()


def resource_path(*parts: str) -> Path:
    """Path of a file shipped as package data under nhpatches/resources/."""
    return Path(__file__).resolve().parent.joinpath("resources", *parts)
