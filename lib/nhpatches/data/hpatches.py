"""Loading HPatches-format sequences and datasets: strips, validation, resizing to 32 px, noise.

A sequence folder holds 16 strips per kind (clean ``<type>.png``, noisy ``<type>_noise.png``);
each strip is an 8-bit grayscale PNG of N square patches stacked vertically (the layouts are
described in :mod:`nhpatches.data.layout`). Patches of another size than 32 px are resized with
:func:`nhpatches.data.resize.resize_patches`; sequences without noisy strips get them from the
noise model of :mod:`nhpatches.data.noise`. Every rule broken raises an error naming the path,
the rule and the expected layout.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nhpatches.core.config import IMAGE_TYPES, PATCH_SIZE
from nhpatches.data.layout import NOISE_SUFFIX, check_sequence_name, detect_layout, layout_error
from nhpatches.data.noise import make_noisy, sequence_noise_seed
from nhpatches.data.resize import resize_patches
from nhpatches.data.splits import read_splits, select_sequences, split_sequence_names


@dataclass(frozen=True)
class Sequence:
    """One HPatches sequence: clean and noisy patches of its 16 image types.

    Shape: clean, noisy (16, N, 32, 32) uint8 in IMAGE_TYPES order (either may be None).
    """

    name: str
    clean: np.ndarray | None
    noisy: np.ndarray | None

    @property
    def num_patches(self) -> int:
        """Number of patches N (3-D points) of the sequence."""
        array = self.clean if self.clean is not None else self.noisy
        return 0 if array is None else int(array.shape[1])

    @property
    def kind(self) -> str:
        """'illumination' for i_ sequences, 'viewpoint' for v_ sequences."""
        return "illumination" if self.name.startswith("i_") else "viewpoint"


# --------------------------------------------------------------------------- strips


def read_strip(path: Path | str) -> np.ndarray:
    """Read a strip PNG as patches, checking it is 8-bit grayscale with height % width == 0.

    Shape: -> (N, W, W) uint8 with W the strip width.
    """
    path = Path(path)
    if not path.is_file():
        raise layout_error(path, "missing strip file", FileNotFoundError)
    try:
        with Image.open(path) as image:
            mode = image.mode
            pixels = np.asarray(image)
    except (OSError, SyntaxError) as exc:
        raise layout_error(path, f"not a readable PNG image ({exc})") from None
    if mode != "L" or pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise layout_error(
            path,
            f"expected a 2-D uint8 grayscale strip (PIL mode L), got mode "
            f"{mode} with shape {pixels.shape} and dtype {pixels.dtype}",
        )
    height, width = pixels.shape
    if width == 0 or height % width != 0:
        raise layout_error(
            path, f"height % width must be 0 (strip of square patches), got height {height} and width {width}"
        )
    return pixels.reshape(height // width, width, width)


def _strip_paths(seq_dir: Path, suffix: str) -> list[Path]:
    """Paths of the 16 strips of one kind (suffix '' = clean, '_noise' = noisy)."""
    return [seq_dir / f"{image_type}{suffix}.png" for image_type in IMAGE_TYPES]


def _present_kinds(seq_dir: Path) -> dict[str, list[Path]]:
    """The complete strip kinds ('clean', 'noisy') of a sequence folder; partial sets raise."""
    kinds = {}
    for kind, suffix in (("clean", ""), ("noisy", NOISE_SUFFIX)):
        paths = _strip_paths(seq_dir, suffix)
        missing = [path.name for path in paths if not path.is_file()]
        if len(missing) < len(paths) and missing:
            raise layout_error(
                seq_dir, f"all 16 {kind} strips must exist; missing {', '.join(missing)}", FileNotFoundError
            )
        if not missing:
            kinds[kind] = paths
    if not kinds:
        raise layout_error(
            seq_dir,
            "all 16 strips must exist; found neither the clean <type>.png nor the noisy <type>_noise.png set",
            FileNotFoundError,
        )
    return kinds


def read_strip_set(paths: list[Path], width: int | None) -> np.ndarray:
    """Read 16 strips, checking equal widths and equal N. Shape: -> (16, N, W, W) uint8."""
    strips: list[np.ndarray] = []
    for path in paths:
        strip = read_strip(path)
        if width is not None and strip.shape[-1] != width:
            raise layout_error(
                path,
                f"all strips must have the same width; got {strip.shape[-1]} px, "
                f"expected {width} px like {paths[0].name}",
            )
        if strips and strip.shape[0] != strips[0].shape[0]:
            raise layout_error(
                path,
                f"all 16 strips must hold the same number of patches N; got "
                f"{strip.shape[0]}, expected {strips[0].shape[0]} like {paths[0].name}",
            )
        width = strip.shape[-1]
        strips.append(strip)
    return np.stack(strips)


def _check_pair(seq_dir: Path, clean: np.ndarray | None, noisy: np.ndarray | None) -> None:
    """Check N >= 2 and that clean and noisy strips agree in N."""
    arrays = [array for array in (clean, noisy) if array is not None]
    if clean is not None and noisy is not None and clean.shape[1] != noisy.shape[1]:
        raise layout_error(
            seq_dir,
            f"clean and noisy strips must hold the same number of patches; "
            f"got N={clean.shape[1]} clean and N={noisy.shape[1]} noisy",
        )
    if arrays[0].shape[1] < 2:
        raise layout_error(seq_dir, f"a sequence needs N >= 2 patches; got N={arrays[0].shape[1]}")


def load_sequence(
    seq_dir: Path | str, noise_seed: int = 0, patch_size: int = PATCH_SIZE, max_patches: int | None = None
) -> Sequence:
    """Load and validate one sequence folder; synthesise noisy patches if it has none.

    Shape: Sequence.clean / .noisy (16, N, patch_size, patch_size) uint8.
    """
    seq_dir = Path(seq_dir)
    if not seq_dir.is_dir():
        raise layout_error(seq_dir, "sequence folder not found", FileNotFoundError)
    check_sequence_name(seq_dir)
    kinds = _present_kinds(seq_dir)
    clean = read_strip_set(kinds["clean"], None) if "clean" in kinds else None
    width = None if clean is None else clean.shape[-1]
    noisy = read_strip_set(kinds["noisy"], width) if "noisy" in kinds else None
    _check_pair(seq_dir, clean, noisy)
    clean, noisy = (
        None if array is None else resize_patches(array[:, :max_patches], patch_size) for array in (clean, noisy)
    )
    if noisy is None and clean is not None:
        noisy = make_noisy(clean, sequence_noise_seed(noise_seed, seq_dir.name))
    return Sequence(seq_dir.name, clean, noisy)


# --------------------------------------------------------------------------- datasets


def load_dataset(
    data_dir: Path | str,
    split: str = "a",
    subset: str = "test",
    sequences: SequenceABC[str] | None = None,
    max_patches: int | None = None,
    noise_seed: int = 0,
) -> dict[str, Sequence]:
    """Load the split's sequences (in split order), validating the whole layout first."""
    data_dir = Path(data_dir)
    detect_layout(data_dir)
    names = select_sequences(split_sequence_names(read_splits(data_dir), split, subset), sequences, split, subset)
    missing = [name for name in names if not (data_dir / name).is_dir()]
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise layout_error(
            data_dir,
            f"split {split!r} ({subset}) needs {len(missing)} sequence folders that are missing: {shown}",
            FileNotFoundError,
        )
    return {name: load_sequence(data_dir / name, noise_seed=noise_seed, max_patches=max_patches) for name in names}
