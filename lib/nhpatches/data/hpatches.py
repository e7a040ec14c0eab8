"""HPatches-format data: layout detection, validated loading, resizing and the noise model.

Three on-disk layouts are read (see ``HPATCHES_SPEC.md`` section 1):

* ``"nhpatches"``: N-HPatches, ``<data_dir>/<seq>/<type>.png`` (clean) and
  ``<type>_noise.png`` (noisy), strips 32 px wide;
* ``"release"``: the genuine ``hpatches-release``, 65 px strips, no noisy strips;
  the noisy patches are synthesised with the noise model below;
* ``"embedded"``: the offline dataset built by :mod:`nhpatches.data.embedded`, laid out like
  N-HPatches plus a ``dataset.json`` manifest.

The patch size of a strip is always its width (``N = height // width``); patches of
another size are resized to 32x32 with the bilinear interpolation of OpenCV's
``INTER_LINEAR`` (half-pixel centres, no antialiasing), see :func:`resize_patches`.

Noise model (ours: N-HPatches' model is unpublished). Additive, pixel-independent
Gaussian noise on the 0..255 scale, added to the clean 32x32 uint8 patches, clipped to
0..255 and rounded to uint8. The std depends only on the image type's level:
``ref`` and ``e1..e5`` get ``easy``, ``h1..h5`` ``hard`` and ``t1..t5`` ``tough``
(E < H < T, as in N-HPatches)::

    NOISE_STD = {"easy": 20.0, "hard": 35.0, "tough": 50.0}

Calibration. The spec's one hint is that a noisy N-HPatches patch correlates about 0.77
with its clean patch, i.e. noise std about 0.85 x the patch's own pixel std. The median
per-patch pixel std of real HPatches patches at 32 px (65 -> 32 with
:func:`resize_patches`) is 47.4 on the genuine release strip ``ref.png`` (1123 patches)
and 38.5 on the 2400 patches of the re-extracted ``v_wormhole`` sequence; pooled over
the 3523 patches it is 41.1. Hard is set to ~0.85 x 41.1 = 35. The median clean/noisy
correlation measured on those real patches (with clipping and rounding) is then 0.90
(easy, std 20), 0.77 (hard, std 35) and 0.64 (tough, std 50): the hint falls at the hard
level, between easy and tough.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
from collections.abc import Iterable, Mapping
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nhpatches.core.config import (
    IMAGE_TYPES,
    NOISE_LEVELS,
    PATCH_SIZE,
    SPLITS,
    resource_path,
)

#: Noise std per level on the 0..255 scale (see the module docstring for the calibration).
NOISE_STD: Mapping[str, float] = types.MappingProxyType({"easy": 20.0, "hard": 35.0, "tough": 50.0})
#: Name of the manifest that marks a finished embedded dataset.
MANIFEST_NAME = "dataset.json"
#: Suffix of the noisy strips in the N-HPatches layout.
NOISE_SUFFIX = "_noise"

_SEQUENCE_NAME = re.compile(r"^[iv]_[a-z0-9]+$")
_LAYOUT_HELP = (
    "Expected layout: <data_dir>/<seq>/{ref,e1..e5,h1..h5,t1..t5}.png, one folder per "
    "sequence named i_<name> or v_<name> (lowercase letters and digits); each PNG is an 8-bit "
    "grayscale strip W px wide and N*W px tall (patch k = rows [k*W, (k+1)*W), N >= 2, the "
    "same W and N in all strips of a sequence). N-HPatches (32 px) adds "
    "<type>_noise.png noisy strips of the same size; the hpatches-release has 65 px strips "
    "and no noisy strips; the embedded dataset adds <data_dir>/dataset.json. Splits come "
    "from <data_dir>/splits.json, else the official file shipped with nhpatches."
)


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


def layout_error(path: Path | str, rule: str, error: type[Exception] = ValueError) -> Exception:
    """An exception naming the path, the rule broken and the expected layout."""
    return error(f"{path}: {rule}.\n{_LAYOUT_HELP}")


def noise_level_of(image_type: str) -> str:
    """Noise level of an image type: 'easy' for ref and e*, 'hard' for h*, 'tough' for t*."""
    return "easy" if image_type == "ref" else NOISE_LEVELS[image_type[0]]


# --------------------------------------------------------------------------- resizing


def linear_resize_matrix(source: int, target: int) -> np.ndarray:
    """Row-stochastic matrix of OpenCV INTER_LINEAR resampling along one axis.

    Shape: (target, source) float64.
    """
    coords = (np.arange(target) + 0.5) * (source / target) - 0.5
    coords = np.clip(coords, 0.0, source - 1)
    lower = np.floor(coords).astype(np.int64)
    upper = np.minimum(lower + 1, source - 1)
    weight = coords - lower
    matrix = np.zeros((target, source))
    np.add.at(matrix, (np.arange(target), lower), 1.0 - weight)
    np.add.at(matrix, (np.arange(target), upper), weight)
    return matrix


def resize_patches(patches: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of square patches as cv2.resize(..., INTER_LINEAR); uint8 in, uint8 out.

    Shape: (..., P, P) -> (..., size, size); the dtype is kept (uint8 is rounded and clipped).
    """
    patches = np.asarray(patches)
    if patches.ndim < 2 or patches.shape[-1] != patches.shape[-2]:
        raise ValueError(f"expected square patches of shape (..., P, P), got {patches.shape}")
    if patches.shape[-1] == size:
        return patches.copy()
    matrix = linear_resize_matrix(patches.shape[-1], size).astype(np.float32)
    resized = matrix @ patches.astype(np.float32) @ matrix.T
    if np.issubdtype(patches.dtype, np.integer):
        info = np.iinfo(patches.dtype)
        return np.clip(np.floor(resized + 0.5), info.min, info.max).astype(patches.dtype)
    return resized.astype(patches.dtype)


# --------------------------------------------------------------------------- noise


def add_noise(patches: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of the given std (0..255 scale), clipped and rounded to uint8.

    Shape: (...) uint8 -> (...) uint8
    """
    noise = rng.standard_normal(patches.shape, dtype=np.float32) * np.float32(std)
    noisy = patches.astype(np.float32) + noise
    return np.clip(np.floor(noisy + 0.5), 0, 255).astype(np.uint8)


def make_noisy(clean16: np.ndarray, seed: int) -> np.ndarray:
    """Noisy version of a sequence's 16 clean strips, with per-type level; deterministic.

    Each image type draws from its own generator, so the noise of patch k does not depend on
    how many patches follow it (make_noisy(c[:, :k]) == make_noisy(c)[:, :k]).
    Shape: (16, N, P, P) uint8 -> (16, N, P, P) uint8
    """
    if clean16.ndim != 4 or clean16.shape[0] != len(IMAGE_TYPES):
        raise ValueError(f"expected clean patches of shape (16, N, P, P), got {clean16.shape}")
    noisy = np.empty_like(clean16, dtype=np.uint8)
    for index, image_type in enumerate(IMAGE_TYPES):
        rng = np.random.default_rng([seed, index])
        noisy[index] = add_noise(clean16[index], NOISE_STD[noise_level_of(image_type)], rng)
    return noisy


def sequence_noise_seed(noise_seed: int, name: str) -> int:
    """Deterministic per-sequence noise seed from a global seed and the sequence name."""
    digest = hashlib.sha256(f"{noise_seed}:{name}".encode()).hexdigest()
    return int(digest[:15], 16)


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
    strips = []
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


def check_sequence_name(seq_dir: Path) -> None:
    """Raise unless the folder name matches ^[iv]_[a-z0-9]+$."""
    if not _SEQUENCE_NAME.match(seq_dir.name):
        raise layout_error(seq_dir, f"sequence folder name {seq_dir.name!r} does not match ^[iv]_[a-z0-9]+$")


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
    if noisy is None:
        noisy = make_noisy(clean, sequence_noise_seed(noise_seed, seq_dir.name))
    return Sequence(seq_dir.name, clean, noisy)


# --------------------------------------------------------------------------- datasets


def sequence_dirs(data_dir: Path) -> list[Path]:
    """Sub-folders of data_dir that hold a ref strip (clean or noisy), sorted by name."""
    if not data_dir.is_dir():
        raise layout_error(data_dir, "data directory not found", FileNotFoundError)
    found = [
        path
        for path in sorted(data_dir.iterdir())
        if path.is_dir() and ((path / "ref.png").is_file() or (path / f"ref{NOISE_SUFFIX}.png").is_file())
    ]
    if not found:
        raise layout_error(data_dir, "no sequence folders with a ref.png or ref_noise.png strip", FileNotFoundError)
    return found


def detect_layout(data_dir: Path | str) -> str:
    """'embedded', 'nhpatches' or 'release', from the manifest and the first sequence's files."""
    data_dir = Path(data_dir)
    first = sequence_dirs(data_dir)[0]
    has_noise = (first / f"ref{NOISE_SUFFIX}.png").is_file()
    if (data_dir / MANIFEST_NAME).is_file():
        if not has_noise:
            raise layout_error(
                data_dir,
                f"{MANIFEST_NAME} marks an embedded dataset, but {first.name} has no noisy <type>_noise.png strips",
            )
        return "embedded"
    return "nhpatches" if has_noise else "release"


def read_splits_file(path: Path | str) -> dict:
    """Read and validate a splits.json: {split: {name, test: [...], train?: [...]}}.

    Every split needs a non-empty ``test`` list; ``test`` and ``train`` list distinct sequence
    names like ``i_fog``. Errors name the file and the rule broken.
    """
    path = Path(path)
    if not path.is_file():
        raise layout_error(path, "splits file not found", FileNotFoundError)
    try:
        splits = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise layout_error(path, f"splits file is not valid JSON ({error})") from None
    if not isinstance(splits, dict) or not splits:
        raise layout_error(path, "splits file must be a JSON object keyed by split name")
    for name, entry in splits.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("test"), list) or not entry["test"]:
            raise layout_error(
                path,
                f"split {name!r} must be an object with a non-empty 'test' list (and optionally 'train' and 'name')",
            )
        for key in ("test", "train"):
            names = entry.get(key, [])
            if not isinstance(names, list) or not all(isinstance(n, str) and _SEQUENCE_NAME.match(n) for n in names):
                raise layout_error(path, f"split {name!r} '{key}' must list sequence names like 'i_fog'")
            if len(set(names)) != len(names):
                raise layout_error(path, f"split {name!r} '{key}' lists a sequence twice")
    return splits


def read_splits(data_dir: Path | str) -> dict:
    """Splits of a dataset: <data_dir>/splits.json if present, else the official file shipped as package data."""
    local = Path(data_dir) / "splits.json"
    return read_splits_file(local if local.is_file() else resource_path("hpatches_tasks", "splits.json"))


def split_sequence_names(splits: Mapping, split: str, subset: str) -> list[str]:
    """Sequence names of a split's subset ('test', 'train' or 'all' = test then train)."""
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(splits)} (HPatches: {SPLITS})")
    if subset not in ("test", "train", "all"):
        raise ValueError(f"unknown subset {subset!r}; expected 'test', 'train' or 'all'")
    entry = splits[split]
    names = {
        "test": entry["test"],
        "train": entry.get("train", []),
        "all": list(entry["test"]) + list(entry.get("train", [])),
    }[subset]
    if not names:
        raise ValueError(f"split {split!r} has no {subset!r} sequences")
    return list(names)


def _select(names: list[str], sequences: Iterable[str] | None, split: str, subset: str) -> list[str]:
    """Restrict split names to the requested sequences, keeping split order."""
    if sequences is None:
        return names
    wanted = [sequences] if isinstance(sequences, str) else list(sequences)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(f"sequences {unknown} are not in split {split!r} subset {subset!r}")
    return [name for name in names if name in set(wanted)]


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
    names = _select(split_sequence_names(read_splits(data_dir), split, subset), sequences, split, subset)
    missing = [name for name in names if not (data_dir / name).is_dir()]
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise layout_error(
            data_dir,
            f"split {split!r} ({subset}) needs {len(missing)} sequence folders that are missing: {shown}",
            FileNotFoundError,
        )
    return {name: load_sequence(data_dir / name, noise_seed=noise_seed, max_patches=max_patches) for name in names}


def dataset_fingerprint(data_dir: Path | str) -> str:
    """Cheap hash of the dataset: strip and JSON file names and sizes, plus the manifest text."""
    data_dir = Path(data_dir)
    digest = hashlib.sha256()
    for path in sorted(data_dir.glob("*/*.png")) + sorted(data_dir.glob("*.json")):
        digest.update(f"{path.relative_to(data_dir).as_posix()}:{path.stat().st_size};".encode())
    manifest = data_dir / MANIFEST_NAME
    if manifest.is_file():
        digest.update(manifest.read_bytes())
    return digest.hexdigest()[:16]
