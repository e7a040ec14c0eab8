"""The offline embedded dataset: HPatches-format sequences built from scikit-image's real photos.

The HPatches download is not reachable offline, so this module builds an N-HPatches-layout
dataset from the real photographs bundled in scikit-image's wheel, following the HPatches
extraction protocol (``hpatches-sample/README.md``):

* every photo gives two sequences. ``i_<name>`` (illumination): five target images of the
  same view under gamma, gain/offset, a smooth non-uniform illumination field and a little
  blur, with a tiny (about 1 px) geometric change. ``v_<name>`` (viewpoint): the reference is
  the photo mirrored left-right and scaled by 0.8 (so its patches differ from the ``i_``
  ones); its five targets are random homographies of increasing strength (zoom, rotation,
  perspective) with a mild photometric change. Targets get auto-exposure (no saturation),
  Gaussian sensor noise of std 1.5 (0..255) and are quantised like camera images;
* keypoints on the reference only: a difference-of-Gaussians detector (3 scales per octave,
  sigma >= 2 px), one dominant orientation each; detections whose 5-sigma circles overlap
  with IoU > 0.5 are thinned (random order, greedy);
* patch = square of half-width 5 sigma oriented by the keypoint, sampled at 65x65 from a
  Gaussian pyramid level chosen from the local sampling step (no aliasing), rounded to uint8
  and resized to 32x32 with :func:`nhpatches.data.resize_patches` (as the loader does);
* for every target image and level e/h/t an independent affine jitter per patch (uniform
  rotation, log-uniform per-axis scales along a random axis pair, translation in half-widths;
  the calibrated table of the sample README) is applied to the reference frame, and the
  jittered frame is projected through the ground-truth homography. Only points whose frames
  lie inside every image are kept, then at most ``max_patches_per_sequence`` in random order;
* noisy strips come from :func:`nhpatches.data.make_noisy` (noise model of
  :mod:`nhpatches.data.noise`), seeded by the build seed and the sequence name.

The photos are loaded by :mod:`nhpatches.data.photos`: contrast-stretched (0.5-99.5 percentiles
to 0..255), three nearly flat ones (``FLAT_PHOTOS``) left out, so patch contrast is closer to real
HPatches and the noise levels mean about the same on both.

How close the result is to real HPatches is measured by :mod:`nhpatches.data.realism`.

The dataset is built in a temporary sibling folder and moved into place with ``os.replace``;
``dataset.json`` (the manifest) is written last, so a folder without it is never reused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Mapping
from collections.abc import Sequence as SequenceABC
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nhpatches.core.config import IMAGE_TYPES, NOISE_LEVELS, PATCH_SIZE
from nhpatches.data.extraction import JITTER, MAGNIFICATION, extract_sequence, make_targets
from nhpatches.data.layout import DATASET_MANIFEST_NAME, NOISE_SUFFIX
from nhpatches.data.noise import NOISE_STD, make_noisy, sequence_noise_seed
from nhpatches.data.photos import MAX_SIDE, PHOTOS, load_photo, resolve_images, viewpoint_reference

#: Bumped whenever the generator's output changes; part of the manifest match.
GENERATOR_VERSION = "1.1"
#: Fraction of photos whose two sequences form the test side of splits a, b and c.
TEST_FRACTION = 0.45


def sequence_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of one sequence, from the build seed and the sequence name."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def build_sequence(photo: np.ndarray, name: str, seed: int, max_patches: int) -> np.ndarray:
    """Clean strips of sequence i_<stem> or v_<stem> made from one photo.

    Shape: photo (H, W) float32 0..255 -> (16, N, 32, 32) uint8
    """
    rng = sequence_rng(seed, name)
    kind = "illumination" if name.startswith("i_") else "viewpoint"
    reference = photo if kind == "illumination" else np.round(viewpoint_reference(photo))
    targets, homographies = make_targets(reference, kind, rng)
    clean = extract_sequence(reference, targets, homographies, max_patches, rng)
    if clean.shape[1] < 2:
        raise ValueError(f"sequence {name}: only {clean.shape[1]} valid patches; need N >= 2")
    return clean


def write_sequence(seq_dir: Path, clean: np.ndarray, noisy: np.ndarray) -> None:
    """Write clean <type>.png and noisy <type>_noise.png strips (32 px wide)."""
    seq_dir.mkdir(parents=True, exist_ok=True)
    for index, image_type in enumerate(IMAGE_TYPES):
        for array, suffix in ((clean, ""), (noisy, NOISE_SUFFIX)):
            strip = array[index].reshape(-1, array.shape[-1])
            Image.fromarray(strip, mode="L").save(seq_dir / f"{image_type}{suffix}.png", compress_level=1)


def make_splits(stems: SequenceABC[str], seed: int) -> dict[str, dict[str, Any]]:
    """HPatches-style splits split by source photo (a, b, c) plus illum, view and full."""
    num_test = min(max(round(TEST_FRACTION * len(stems)), 1), len(stems) - 1)
    splits: dict[str, dict[str, Any]] = {}
    for index, split in enumerate("abc"):
        test_stems = set(np.random.default_rng([seed, index]).permutation(list(stems))[:num_test])
        sides = {
            side: [stem for stem in stems if (stem in test_stems) == (side == "test")] for side in ("test", "train")
        }
        splits[split] = {
            "name": split,
            **{side: [f"{p}_{s}" for p in "iv" for s in chosen] for side, chosen in sides.items()},
        }
    splits["illum"] = {"name": "illum", "test": [f"i_{stem}" for stem in stems]}
    splits["view"] = {"name": "view", "test": [f"v_{stem}" for stem in stems]}
    splits["full"] = {"name": "full", "test": splits["illum"]["test"] + splits["view"]["test"]}
    return splits


def build_parameters(
    seed: int = 0, max_patches_per_sequence: int = 256, images: int | SequenceABC[str] | None = None
) -> dict[str, Any]:
    """The parameters a manifest must match for a dataset to be reused."""
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "max_patches_per_sequence": int(max_patches_per_sequence),
        "images": [file_name for file_name, _ in resolve_images(images)],
        "noise_std": dict(NOISE_STD),
        "max_side": MAX_SIDE,
    }


def build_photo_sequences(
    folder: Path, file_name: str, stem: str, parameters: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Build and write i_<stem> and v_<stem> into folder; return their manifest entries."""
    photo = load_photo(file_name, parameters["max_side"])
    entries = {}
    for name in (f"i_{stem}", f"v_{stem}"):
        clean = build_sequence(photo, name, parameters["seed"], parameters["max_patches_per_sequence"])
        write_sequence(folder / name, clean, make_noisy(clean, sequence_noise_seed(parameters["seed"], name)))
        entries[name] = {"num_patches": int(clean.shape[1]), "source_image": file_name}
    return entries


def _build_all(
    folder: Path, photos: list[tuple[str, str]], parameters: Mapping[str, Any], workers: int
) -> dict[str, dict[str, Any]]:
    """Build every photo's sequences, in worker threads when workers > 1; entries in photo order."""
    jobs = [(folder, file_name, stem, parameters) for file_name, stem in photos]
    if workers <= 1 or len(jobs) <= 1:
        results = [build_photo_sequences(*job) for job in jobs]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(build_photo_sequences, *zip(*jobs, strict=True)))
    return {name: entry for result in results for name, entry in result.items()}


def _write_dataset(folder: Path, parameters: Mapping[str, Any], workers: int) -> dict[str, Any]:
    """Write every sequence, splits.json and, last, the manifest into folder; return the manifest."""
    started = time.perf_counter()
    photos = [photo for photo in PHOTOS if photo[0] in parameters["images"]]
    sequences = _build_all(folder, photos, parameters, workers)
    splits = make_splits([stem for _, stem in photos], parameters["seed"])
    (folder / "splits.json").write_text(json.dumps(splits, indent=1))
    manifest = {
        "generator": "nhpatches.embedded",
        "parameters": dict(parameters),
        "jitter": {NOISE_LEVELS[key]: value for key, value in JITTER.items()},
        "magnification": MAGNIFICATION,
        "patch_size": PATCH_SIZE,
        "sequences": sequences,
        "num_patches": sum(entry["num_patches"] for entry in sequences.values()),
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    (folder / DATASET_MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
    return manifest


def _replace_folder(source: Path, destination: Path) -> None:
    """Move a finished folder into place, replacing any old one (which is deleted)."""
    old = None
    if destination.exists():
        old = destination.with_name(f".{destination.name}.old-{os.getpid()}-{time.time_ns()}")
        os.replace(destination, old)
    os.replace(source, destination)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def default_workers() -> int:
    """Worker threads for a build: the usable CPU cores, at most 4."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def build_embedded_dataset(
    out_dir: Path | str,
    seed: int = 0,
    max_patches_per_sequence: int = 256,
    images: int | SequenceABC[str] | None = None,
    workers: int | None = None,
) -> Path:
    """Build the embedded dataset in a temporary sibling folder and move it to out_dir.

    workers (default: the CPU cores, at most 4) only changes the speed, never the data.
    """
    out_dir = Path(out_dir)
    parameters = build_parameters(seed, max_patches_per_sequence, images)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _write_dataset(folder, parameters, default_workers() if workers is None else workers)
        _replace_folder(folder, out_dir)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out_dir


def read_dataset_manifest(data_dir: Path | str) -> dict[str, Any] | None:
    """The embedded dataset's ``dataset.json`` manifest, or None if it is missing or unreadable."""
    try:
        manifest = json.loads((Path(data_dir) / DATASET_MANIFEST_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def is_complete(data_dir: Path | str, parameters: Mapping[str, Any]) -> bool:
    """True if data_dir holds a finished build with exactly these parameters."""
    manifest = read_dataset_manifest(data_dir)
    if manifest is None or manifest.get("parameters") != json.loads(json.dumps(dict(parameters))):
        return False
    names = manifest.get("sequences", {})
    return (
        bool(names)
        and (Path(data_dir) / "splits.json").is_file()
        and all((Path(data_dir) / name / f"t5{NOISE_SUFFIX}.png").is_file() for name in names)
    )


def ensure_embedded_dataset(
    out_dir: Path | str,
    seed: int = 0,
    max_patches_per_sequence: int = 256,
    images: int | SequenceABC[str] | None = None,
    workers: int | None = None,
) -> Path:
    """Reuse out_dir if its manifest matches the parameters, else (re)build it."""
    parameters = build_parameters(seed, max_patches_per_sequence, images)
    if is_complete(out_dir, parameters):
        return Path(out_dir)
    return build_embedded_dataset(out_dir, seed, max_patches_per_sequence, images, workers)
