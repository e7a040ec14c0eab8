"""A patch descriptor to call: ``nhpatches.describe(patches)``, with the shipped trained pipeline.

An export is an optional denoiser followed by a descriptor network: one weights file
(``weights.npz``: the weights of both networks, kernels stored as float16) and a manifest
(``manifest.json``: the specs, how it was trained, the file's sha256). The shipped export in
``nhpatches/resources/pretrained/`` is written by the release recipe (:mod:`.recipe`,
``scripts/train_pretrained.py``); ``scripts/export_pretrained.py`` exports any pipeline of a
study. Loading rebuilds the networks from the specs with
:func:`nhpatches.nets.specs.build_denoiser_network` and :func:`~nhpatches.nets.specs.build_descriptor_network`
and sets their weights, so an export does not depend on the backend it was trained on (the tests
load it on TensorFlow and on JAX); the networks then run through :mod:`nhpatches.nets.inference`.
The classical descriptors of :mod:`nhpatches.nets.classical` ("sift", "raw") are available under
the same call::

    import nhpatches
    descriptors = nhpatches.describe(patches)                   # (N, 32, 32) or (N, 65, 65) uint8
    sift = nhpatches.describe(patches, pipeline="sift")         # (N, 128) float32
    mine = nhpatches.describe(patches, weights="my_export/")    # a pipeline you exported
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nhpatches.core.config import PATCH_SIZE, RELEASE_PATCH_SIZE, resource_path
from nhpatches.data.resize import resize_patches
from nhpatches.nets.classical import CLASSICAL, check_patches
from nhpatches.nets.inference import DEFAULT_BATCH_SIZE, denoise_patches, run_network

if TYPE_CHECKING:
    import keras

#: Patch sides ``describe`` accepts: N-HPatches' 32 px and the hpatches-release's 65 px.
SUPPORTED_PATCH_SIZES: tuple[int, ...] = (PATCH_SIZE, RELEASE_PATCH_SIZE)
#: Name of the default (shipped) learned pipeline in ``describe(pipeline=...)``.
DEFAULT_PIPELINE = "default"
#: File names of an export.
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.npz"
#: Format tag written into every manifest.
FORMAT = "nhpatches-pretrained/1"
#: Pseudo-denoiser name of a pipeline without a denoiser (the descriptor sees the patches as given).
NO_DENOISER = "none"
#: Largest error float16 storage may add to a kernel, relative to the kernel's largest |value|
#: (float16 has an 11-bit significand: rounding error <= 2**-11 relative per value).
FLOAT16_TOLERANCE = 2.0**-10


def pretrained_dir() -> Path:
    """Folder of the shipped pipeline (package data): ``nhpatches/resources/pretrained``."""
    return resource_path("pretrained")


def photographs_dir() -> Path:
    """Folder of the shipped descriptor of the image pipeline: ``nhpatches/resources/photographs``.

    It is the release descriptor fine-tuned on patches cut from whole noisy photographs at a wider
    region (its manifest's ``recipe.magnification``); :func:`nhpatches.detect_and_describe` uses it
    by default, ``describe()`` keeps the patch descriptor of :func:`pretrained_dir`.
    """
    return resource_path("photographs")


# --------------------------------------------------------------------------- loading


@dataclasses.dataclass(frozen=True)
class LearnedPipeline:
    """A loaded learned pipeline: optional denoiser, descriptor network and the export's manifest."""

    name: str
    denoiser: keras.Model | None
    descriptor: keras.Model
    manifest: dict
    manifest_path: Path

    @property
    def dim(self) -> int:
        """Descriptor dimension D."""
        return int(self.descriptor.output_shape[-1])

    def __call__(self, patches: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Denoise (clip, truncate to uint8) then describe.

        Shape: (N, 32, 32) uint8 -> (N, D) float32.
        """
        if len(patches) == 0:
            return np.zeros((0, self.dim), np.float32)
        if self.denoiser is not None:
            patches = denoise_patches(self.denoiser, patches, batch_size)
        return run_network(self.descriptor, patches, batch_size)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_path_of(weights: str | os.PathLike[str] | None) -> Path:
    """The manifest of an export given as its folder, its manifest.json or its weights file.

    ``None`` is the shipped pipeline.
    """
    if weights is None:
        return pretrained_dir() / MANIFEST_NAME
    path = Path(weights).expanduser()
    if path.is_dir():
        return path / MANIFEST_NAME
    if path.suffix == ".npz":
        return path.with_name(MANIFEST_NAME)
    return path


def read_manifest(manifest_path: Path) -> dict:
    """Read and check an export manifest, naming the path and what was expected."""
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{manifest_path}: pretrained pipeline manifest not found; expected the "
            f"{MANIFEST_NAME} written by scripts/export_pretrained.py (or give "
            "weights= an export folder, its manifest.json or its weights.npz)"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{manifest_path}: not a valid JSON manifest ({error})") from None
    required = ("format", "name", "weights_file", "sha256", "descriptor", "denoiser", "patch_size")
    missing = [key for key in required if not isinstance(manifest, dict) or key not in manifest]
    if missing or manifest.get("format") != FORMAT:
        raise ValueError(
            f"{manifest_path}: expected an nhpatches export manifest (format {FORMAT!r} with keys "
            f"{', '.join(required)}); missing {missing or 'nothing'}, format {manifest.get('format')!r}"
            if isinstance(manifest, dict)
            else f"{manifest_path}: expected a JSON object"
        )
    return manifest


def verified_weights_path(manifest_path: Path, manifest: Mapping) -> Path:
    """The export's weights file, after checking that it exists and matches the manifest's sha256."""
    path = manifest_path.parent / manifest["weights_file"]
    expected = manifest["sha256"]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: pretrained weights file not found; expected the file named in "
            f"{manifest_path} with sha256 {expected}"
        )
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(
            f"{path}: checksum mismatch: sha256 {actual}, expected {expected} (from "
            f"{manifest_path}); the file is corrupt or does not belong to this manifest; "
            "re-install nhpatches or re-run scripts/export_pretrained.py"
        )
    return path


def _set_weights(model: keras.Model, stored: Mapping[str, np.ndarray], role: str, path: Path) -> None:
    """Set a rebuilt model's weights from the ``<role>/<index>`` arrays of an export."""
    variables = model.weights
    keys = sorted(key for key in stored if key.startswith(f"{role}/"))
    if len(keys) != len(variables):
        raise ValueError(
            f"{path}: holds {len(keys)} {role} arrays; expected {len(variables)} for the "
            f"{model.name!r} network rebuilt from the manifest's spec"
        )
    values = []
    for key, variable in zip(keys, variables, strict=True):
        array = stored[key]
        if tuple(array.shape) != tuple(variable.shape):
            raise ValueError(
                f"{path}: array {key} has shape {tuple(array.shape)}; expected "
                f"{tuple(variable.shape)} for {variable.path}"
            )
        values.append(array.astype(np.float32))
    model.set_weights(values)


@functools.lru_cache(maxsize=4)
def _load_cached(manifest_path: str, mtime_ns: int, weights_mtime_ns: int, backend: str) -> LearnedPipeline:
    """Load an export (cached per file version and backend)."""
    from nhpatches.nets import specs

    path = Path(manifest_path)
    manifest = read_manifest(path)
    weights_path = verified_weights_path(path, manifest)
    with np.load(weights_path, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    denoiser = None
    if manifest["denoiser"]["name"] != NO_DENOISER:
        denoiser = specs.build_denoiser_network(specs.DenoiserSpec(**manifest["denoiser"]["spec"]))
        _set_weights(denoiser, arrays, "denoiser", weights_path)
    descriptor = specs.build_descriptor_network(specs.DescriptorSpec(**manifest["descriptor"]["spec"]))
    _set_weights(descriptor, arrays, "descriptor", weights_path)
    return LearnedPipeline(manifest["name"], denoiser, descriptor, manifest, path)


def load_pipeline(weights: str | os.PathLike[str] | None = None) -> LearnedPipeline:
    """Load an exported pipeline: the shipped one (``None``) or a folder / manifest / weights path.

    The weights file's sha256 is checked against the manifest (a mismatch or a missing file raises,
    naming the path and the expected checksum). Loaded pipelines are cached per file version.

    Examples
    --------
    >>> import numpy as np
    >>> from nhpatches.pretrained import load_pipeline, shipped_pipeline_name
    >>> pipeline = load_pipeline()  # the shipped export
    >>> pipeline.name == shipped_pipeline_name(), pipeline.dim, pipeline.manifest["format"]
    (True, 128, 'nhpatches-pretrained/1')
    >>> patches = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    >>> pipeline(patches).shape  # (N, 32, 32) uint8 -> (N, D) float32
    (3, 128)
    >>> load_pipeline("no/such/export")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    FileNotFoundError: .../no/such/export: pretrained pipeline manifest not found; ...
    """
    import keras

    path = manifest_path_of(weights).resolve()
    weights_file = path.parent / read_manifest(path)["weights_file"]  # clear error for a bad manifest first
    weights_mtime = weights_file.stat().st_mtime_ns if weights_file.is_file() else -1
    return _load_cached(str(path), path.stat().st_mtime_ns, weights_mtime, keras.backend.backend())


def shipped_pipeline_name() -> str | None:
    """Name of the shipped learned pipeline ('<denoiser>+<descriptor>', e.g. 'none+hardnet_release'), None if none."""
    path = pretrained_dir() / MANIFEST_NAME
    if not path.is_file():
        return None
    return read_manifest(path)["name"]


def available_pipelines() -> list[str]:
    """Names ``describe(pipeline=...)`` accepts without ``weights=``."""
    shipped = shipped_pipeline_name()
    return [DEFAULT_PIPELINE] + ([shipped] if shipped else []) + sorted(CLASSICAL)


# --------------------------------------------------------------------------- describe


def check_input(patches: np.ndarray) -> np.ndarray:
    """Check that ``patches`` are uint8 of shape (N, 32, 32) or (N, 65, 65); return them as an array."""
    array = check_patches(patches)
    if array.shape[1] not in SUPPORTED_PATCH_SIZES:
        raise ValueError(
            f"patches: expected shape (N, 32, 32) (N-HPatches) or (N, 65, 65) (hpatches-release), got {array.shape}"
        )
    return array


def prepare_patches(patches: np.ndarray, size: int = PATCH_SIZE) -> np.ndarray:
    """Check uint8 (N, 32, 32) or (N, 65, 65) patches and resize them to ``size`` px.

    65 px patches are resized as data.py resizes the hpatches-release strips
    (:func:`nhpatches.data.resize_patches`, OpenCV INTER_LINEAR). Shape: (N, P, P) -> (N, size, size).
    """
    return resize_patches(check_input(patches), size)


def describe(
    patches: np.ndarray,
    pipeline: str = DEFAULT_PIPELINE,
    weights: str | os.PathLike[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Descriptors of grayscale patches, like kornia's ``HardNet``: one float32 row per patch.

    ``patches``: uint8 (N, 32, 32) (N-HPatches) or (N, 65, 65) (hpatches-release) in 0..255.
    ``pipeline``:

    * ``"default"`` (or the shipped pipeline's name, see :func:`shipped_pipeline_name`, to insist
      on that one): the shipped learned pipeline. 65 px patches are first resized to 32 px as the
      release layout is in :mod:`nhpatches.data`; an export with a denoiser clips and truncates its
      output to uint8 as in the study; -> (N, 128), unit L2 norm for the HardNet-style descriptors.
    * ``"sift"``: :func:`nhpatches.nets.classical.describe_sift` on the patches at their own size (a
      65 px patch is described natively, not resized); -> (N, 128), unit norm.
    * ``"raw"``: :func:`nhpatches.nets.classical.describe_raw` on the 32 px patches (65 px patches are
      resized to 32 first, so every input gives the same 1024-d layout); -> (N, 1024).

    ``weights``: an export of your own (its folder, manifest.json or weights.npz, as written by
    ``scripts/export_pretrained.py``) instead of the shipped one; ``pipeline`` must then be
    "default" or that export's name. Raises TypeError for a dtype other than uint8 and
    ValueError for another shape or an unknown pipeline, naming what was expected.

    Examples
    --------
    >>> import numpy as np
    >>> import nhpatches
    >>> patches = np.random.default_rng(0).integers(0, 256, (4, 32, 32), dtype=np.uint8)
    >>> descriptors = nhpatches.describe(patches)
    >>> descriptors.shape, descriptors.dtype  # one unit-length row per patch
    ((4, 128), dtype('float32'))
    >>> np.allclose(np.linalg.norm(descriptors, axis=1), 1.0, atol=1e-5)
    True
    >>> nhpatches.describe(patches, pipeline="sift").shape
    (4, 128)
    >>> big = np.random.default_rng(1).integers(0, 256, (2, 65, 65), dtype=np.uint8)  # hpatches-release size
    >>> nhpatches.describe(big, pipeline="raw").shape  # resized to 32 px first
    (2, 1024)
    """
    if not isinstance(pipeline, str):
        raise TypeError(
            f"pipeline must be a name (str), got {type(pipeline).__name__}; expected one of {available_pipelines()}"
        )
    if pipeline in CLASSICAL:
        if weights is not None:
            raise ValueError(f"weights= applies to learned pipelines only, not to the classical {pipeline!r}")
        array = check_input(patches)
        return CLASSICAL[pipeline](array if pipeline == "sift" else prepare_patches(array))
    array = prepare_patches(patches)
    if weights is None and pipeline not in (DEFAULT_PIPELINE, shipped_pipeline_name()):
        raise ValueError(
            f"unknown pipeline {pipeline!r}; expected one of {available_pipelines()} "
            "(or weights=<your export> with pipeline='default')"
        )
    loaded = load_pipeline(weights)
    if pipeline not in (DEFAULT_PIPELINE, loaded.name):
        raise ValueError(
            f"pipeline {pipeline!r} does not match the export {loaded.manifest_path}, which holds "
            f"{loaded.name!r}; pass pipeline='default' or {loaded.name!r}"
        )
    return loaded(array, batch_size)
