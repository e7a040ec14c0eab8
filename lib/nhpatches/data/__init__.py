"""Data: HPatches-format readers and noise (``hpatches``), the embedded dataset, task files, the noise sweep.

The reader API is re-exported here (``nhpatches.data.load_dataset``); ``embedded``, ``tasks``
and ``sweep`` are imported as submodules.
"""

from nhpatches.data.hpatches import (
    MANIFEST_NAME,
    NOISE_STD,
    NOISE_SUFFIX,
    Sequence,
    add_noise,
    check_sequence_name,
    dataset_fingerprint,
    detect_layout,
    layout_error,
    linear_resize_matrix,
    load_dataset,
    load_sequence,
    make_noisy,
    noise_level_of,
    read_splits,
    read_splits_file,
    read_strip,
    read_strip_set,
    resize_patches,
    sequence_dirs,
    sequence_noise_seed,
    split_sequence_names,
)

__all__ = [
    "MANIFEST_NAME",
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
