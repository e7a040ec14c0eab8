"""Writing a trained pipeline as an export that ``describe(weights=...)`` reads, and checking it."""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nhpatches.core.cache import atomic_path
from nhpatches.core.version import package_version
from nhpatches.nets.inference import denoise_patches, run_network
from nhpatches.pretrained.load import (
    FLOAT16_TOLERANCE,
    FORMAT,
    MANIFEST_NAME,
    NO_DENOISER,
    WEIGHTS_NAME,
    load_pipeline,
    prepare_patches,
    sha256_of,
)

if TYPE_CHECKING:
    import keras


def _storage(values: np.ndarray, path: str) -> np.ndarray:
    """float16 for kernels and biases when that keeps them within FLOAT16_TOLERANCE, else float32.

    BatchNormalization statistics stay float32: a variance below float16's normal range (6e-5)
    would lose its relative precision, and 1 / sqrt(variance) amplifies it.
    """
    values = np.asarray(values, np.float32)
    if not path.endswith(("kernel", "bias")):
        return values
    half = values.astype(np.float16)
    scale = float(np.max(np.abs(values))) if values.size else 0.0
    if (
        np.all(np.isfinite(half))
        and np.max(np.abs(half.astype(np.float32) - values), initial=0.0) <= FLOAT16_TOLERANCE * scale
    ):
        return half
    return values


def export_pipeline(
    out_dir: str | os.PathLike[str],
    descriptor: keras.Model,
    descriptor_spec: Any,
    denoiser: keras.Model | None = None,
    denoiser_spec: Any = None,
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``weights.npz`` (both networks) and ``manifest.json`` into ``out_dir``; return the manifest path.

    ``descriptor_spec`` / ``denoiser_spec`` are the :class:`~nhpatches.specs.DescriptorSpec` /
    :class:`~nhpatches.specs.DenoiserSpec` the networks were built from (the loader rebuilds
    them from these); no denoiser means the pipeline "none + descriptor". ``info`` is merged into
    the manifest (profile, seed, training data, metrics...).
    """
    import keras

    if (denoiser is None) != (denoiser_spec is None):
        raise ValueError("give both denoiser and denoiser_spec, or neither")
    out = Path(out_dir)
    arrays: dict[str, np.ndarray] = {}
    layout: dict[str, list] = {}
    for role, model in (("denoiser", denoiser), ("descriptor", descriptor)):
        if model is None:
            continue
        layout[role] = []
        for index, variable in enumerate(model.weights):
            stored = _storage(keras.ops.convert_to_numpy(variable.value), variable.path)
            arrays[f"{role}/{index:03d}"] = stored
            layout[role].append(f"{variable.path} {tuple(stored.shape)} {stored.dtype}")
    with atomic_path(out / WEIGHTS_NAME) as tmp:
        _write_npz(tmp, arrays)
    weights_path = out / WEIGHTS_NAME
    denoiser_name = NO_DENOISER if denoiser_spec is None else denoiser_spec.name
    manifest = {
        "format": FORMAT,
        "name": f"{denoiser_name}+{descriptor_spec.name}",
        "denoiser": {
            "name": denoiser_name,
            "spec": None if denoiser_spec is None else dataclasses.asdict(denoiser_spec),
            "parameters": None if denoiser is None else int(denoiser.count_params()),
        },
        "descriptor": {
            "name": descriptor_spec.name,
            "spec": dataclasses.asdict(descriptor_spec),
            "parameters": int(descriptor.count_params()),
            "output_dim": int(descriptor.output_shape[-1]),
        },
        "patch_size": int(descriptor.input_shape[1]),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "nhpatches_version": package_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "weights_file": WEIGHTS_NAME,
        "weights_bytes": weights_path.stat().st_size,
        "sha256": sha256_of(weights_path),
        "storage": {
            "float16": "kernels and biases (within FLOAT16_TOLERANCE of float32)",
            "float32": "BatchNormalization statistics and any array float16 would change",
        },
        "arrays": layout,
    }
    for role in ("denoiser", "descriptor"):
        manifest[role].update((info or {}).get(role, {}))
    manifest.update({key: value for key, value in (info or {}).items() if key not in ("denoiser", "descriptor")})
    write_manifest(out / MANIFEST_NAME, manifest)
    return out / MANIFEST_NAME


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """A compressed .npz (np.load reads it) with fixed zip timestamps: equal weights, equal bytes and sha256."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    """Write a manifest atomically (JSON, indent 1, keys in insertion order)."""
    text = json.dumps(manifest, indent=1, default=_json_default) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(value: Any) -> Any:
    """JSON fallback for the numpy scalars (as Python numbers) and paths (as text) of a manifest."""
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def check_export(
    manifest_path: str | os.PathLike[str],
    patches: np.ndarray,
    descriptor: keras.Model,
    denoiser: keras.Model | None = None,
    batch_size: int = 256,
) -> dict:
    """Compare an export with the models it came from on the same patches.

    Returns the largest absolute descriptor difference, the smallest cosine between matching rows,
    and the fraction of denoised pixels that differ (float16 weights can move a denoised value across
    an integer, changing its truncated uint8 value by 1). Shape: patches (N, 32, 32) uint8.
    """
    loaded = load_pipeline(manifest_path)
    patches = prepare_patches(patches)
    reference_input = patches if denoiser is None else denoise_patches(denoiser, patches, batch_size)
    reference = run_network(descriptor, reference_input, batch_size)
    exported = loaded(patches, batch_size)
    changed = 0.0
    if denoiser is not None:
        changed = float(np.mean(denoise_patches(loaded.denoiser, patches, batch_size) != reference_input))
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(exported, axis=1)
    cosine = np.sum(reference * exported, axis=1) / np.maximum(norms, 1e-12)
    return {
        "patches": len(patches),
        "max_abs_diff": float(np.max(np.abs(reference - exported))),
        "min_cosine": float(np.min(cosine)),
        "denoised_pixels_changed": changed,
    }
