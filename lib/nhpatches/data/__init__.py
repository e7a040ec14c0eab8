"""Data: HPatches-format readers, the noise model, the embedded dataset, task files, the noise sweep.

The reader API is re-exported here (``nhpatches.data.load_dataset``): the layouts
(``layout``), ``splits.json`` (``splits``), the noise model (``noise``), patch resizing
(``resize``) and the loader (``hpatches``). ``embedded``, ``tasks`` and ``sweep`` are imported
as submodules.
"""

from nhpatches.data.hpatches import Sequence, load_dataset, load_sequence, read_strip, read_strip_set
from nhpatches.data.layout import (
    DATASET_MANIFEST_NAME,
    NOISE_SUFFIX,
    check_sequence_name,
    dataset_fingerprint,
    detect_layout,
    layout_error,
    sequence_dirs,
)
from nhpatches.data.noise import NOISE_STD, add_noise, make_noisy, noise_level_of, sequence_noise_seed
from nhpatches.data.resize import linear_resize_matrix, resize_patches
from nhpatches.data.splits import read_splits, read_splits_file, split_sequence_names

__all__ = [
    "DATASET_MANIFEST_NAME",
    "NOISE_STD",
    "NOISE_SUFFIX",
    "Sequence",
    "add_noise",
    "check_sequence_name",
    "dataset_fingerprint",
    "detect_layout",
    "layout_error",
    "linear_resize_matrix",
    "load_dataset",
    "load_sequence",
    "make_noisy",
    "noise_level_of",
    "read_splits",
    "read_splits_file",
    "read_strip",
    "read_strip_set",
    "resize_patches",
    "sequence_dirs",
    "sequence_noise_seed",
    "split_sequence_names",
]
