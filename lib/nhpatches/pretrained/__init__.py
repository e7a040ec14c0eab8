"""The product: ``describe`` with the shipped pipeline, loading and exporting pipelines, the release recipe.

``nhpatches.describe`` is :func:`nhpatches.pretrained.load.describe`; ``detect_and_describe`` and
``match_images`` (:mod:`.images`) take photographs to keypoints, descriptors, matches and a
homography. Exports are written by
:mod:`.export`; the descriptor shipped in ``resources/pretrained`` is trained by :mod:`.recipe`
(``scripts/train_pretrained.py``; ``nhpatches.pretrained.train`` is its ``train_release``).
This package imports the library layers only: never the study, pandas or matplotlib.
"""
# isort: skip_file

from nhpatches.core.backend import quiet_tensorflow

quiet_tensorflow()

from nhpatches.pretrained.export import check_export, export_pipeline, write_manifest
from nhpatches.pretrained.images import Features, ImageMatches, detect_and_describe, match_images
from nhpatches.pretrained.load import (
    DEFAULT_PIPELINE,
    FORMAT,
    MANIFEST_NAME,
    NO_DENOISER,
    SUPPORTED_PATCH_SIZES,
    WEIGHTS_NAME,
    LearnedPipeline,
    available_pipelines,
    check_input,
    describe,
    load_pipeline,
    prepare_patches,
    photographs_dir,
    pretrained_dir,
    read_manifest,
    sha256_of,
    shipped_pipeline_name,
    verified_weights_path,
)

__all__ = [
    "DEFAULT_PIPELINE",
    "FORMAT",
    "MANIFEST_NAME",
    "NO_DENOISER",
    "SUPPORTED_PATCH_SIZES",
    "WEIGHTS_NAME",
    "Features",
    "ImageMatches",
    "LearnedPipeline",
    "available_pipelines",
    "check_export",
    "check_input",
    "describe",
    "detect_and_describe",
    "export_pipeline",
    "load_pipeline",
    "match_images",
    "photographs_dir",
    "prepare_patches",
    "pretrained_dir",
    "read_manifest",
    "sha256_of",
    "shipped_pipeline_name",
    "train",
    "verified_weights_path",
    "write_manifest",
]


def __getattr__(name: str):
    """``train``: the release recipe's training entry point, imported on first use (it needs the evaluation)."""
    if name == "train":
        from nhpatches.pretrained.recipe import train_release

        return train_release
    raise AttributeError(f"module 'nhpatches.pretrained' has no attribute {name!r}")
