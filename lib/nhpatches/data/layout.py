"""The on-disk layouts of HPatches-format data: file names, the layout error, detection, the fingerprint.

Three layouts are read (see ``HPATCHES_SPEC.md`` section 1):

* ``"nhpatches"``: N-HPatches, ``<data_dir>/<seq>/<type>.png`` (clean) and
  ``<type>_noise.png`` (noisy), strips 32 px wide;
* ``"release"``: the genuine ``hpatches-release``, 65 px strips, no noisy strips;
  the noisy patches are synthesised with the noise model of :mod:`nhpatches.data.noise`;
* ``"embedded"``: the offline dataset built by :mod:`nhpatches.data.embedded`, laid out like
  N-HPatches plus a ``dataset.json`` manifest (:data:`DATASET_MANIFEST_NAME`).

The patch size of a strip is always its width (``N = height // width``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

#: File name of the manifest that marks a finished embedded dataset (not a pretrained export's
#: ``manifest.json``, see :data:`nhpatches.pretrained.load.MANIFEST_NAME`).
DATASET_MANIFEST_NAME = "dataset.json"
#: Suffix of the noisy strips in the N-HPatches layout.
NOISE_SUFFIX = "_noise"
#: Sequence folder names: i_<name> (illumination) or v_<name> (viewpoint).
SEQUENCE_NAME = re.compile(r"^[iv]_[a-z0-9]+$")

_LAYOUT_HELP = (
    "Expected layout: <data_dir>/<seq>/{ref,e1..e5,h1..h5,t1..t5}.png, one folder per "
    "sequence named i_<name> or v_<name> (lowercase letters and digits); each PNG is an 8-bit "
    "grayscale strip W px wide and N*W px tall (patch k = rows [k*W, (k+1)*W), N >= 2, the "
    "same W and N in all strips of a sequence). N-HPatches (32 px) adds "
    "<type>_noise.png noisy strips of the same size; the hpatches-release has 65 px strips "
    "and no noisy strips; the embedded dataset adds <data_dir>/dataset.json. Splits come "
    "from <data_dir>/splits.json, else the official file shipped with nhpatches."
)


def layout_error(path: Path | str, rule: str, error: type[Exception] = ValueError) -> Exception:
    """An exception naming the path, the rule broken and the expected layout."""
    return error(f"{path}: {rule}.\n{_LAYOUT_HELP}")


def check_sequence_name(seq_dir: Path) -> None:
    """Raise unless the folder name matches ^[iv]_[a-z0-9]+$."""
    if not SEQUENCE_NAME.match(seq_dir.name):
        raise layout_error(seq_dir, f"sequence folder name {seq_dir.name!r} does not match ^[iv]_[a-z0-9]+$")


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
    if (data_dir / DATASET_MANIFEST_NAME).is_file():
        if not has_noise:
            raise layout_error(
                data_dir,
                f"{DATASET_MANIFEST_NAME} marks an embedded dataset, but {first.name} has no noisy "
                "<type>_noise.png strips",
            )
        return "embedded"
    return "nhpatches" if has_noise else "release"


def dataset_fingerprint(data_dir: Path | str) -> str:
    """Cheap hash of the dataset: strip and JSON file names and sizes, plus the manifest text."""
    data_dir = Path(data_dir)
    digest = hashlib.sha256()
    for path in sorted(data_dir.glob("*/*.png")) + sorted(data_dir.glob("*.json")):
        digest.update(f"{path.relative_to(data_dir).as_posix()}:{path.stat().st_size};".encode())
    manifest = data_dir / DATASET_MANIFEST_NAME
    if manifest.is_file():
        digest.update(manifest.read_bytes())
    return digest.hexdigest()[:16]
