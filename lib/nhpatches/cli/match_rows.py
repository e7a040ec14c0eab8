"""The rows of ``hpatches-match-bench``: parameterised specs turned into benchmark methods.

A row is written ``[DENOISER+]DESCRIPTOR[:key=value,...]``, e.g. ``sift``, ``rootsift``, ``describe``,
``nlm+describe``, ``unet+describe``, ``describe:magnification=8`` or ``describe:weights=runs/release``:

* DENOISER, run on the whole (noisy) image before detection and description: ``nlm`` (OpenCV's
  non-local means, ``cv2.fastNlMeansDenoising`` with h = the image's estimated noise std,
  :func:`estimate_noise_sigma`), or the name of a Keras denoiser given as ``--denoiser NAME=PATH`` (a
  study U-Net or DnCNN ``model.keras``; fully convolutional, so it runs on the whole image at once);
* DESCRIPTOR, on OpenCV SIFT keypoints (``cv2.SIFT_create(nfeatures=max_keypoints)``, the same
  keypoints for every descriptor): ``sift`` (OpenCV's own descriptor), ``rootsift`` (Arandjelovic &
  Zisserman 2012: L1-normalised, square-rooted SIFT) or ``describe`` (a 32 px patch cut at each
  keypoint by :func:`nhpatches.data.regions.extract_patches`, half-width ``magnification`` x sigma,
  described by :func:`nhpatches.describe`; ``weights=DIR`` describes with your own export);
* keys: ``magnification`` (describe, default 5: HPatches' region), ``weights`` (describe),
  ``pipeline`` (describe's pipeline name, default "default").

Matching is mutual nearest neighbours (L2) for every row.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import cv2
import numpy as np

from nhpatches.evaluation.image_matching import Method

#: The rows the command runs by default (plus ``NAME+describe`` for every ``--denoiser NAME=PATH``).
DEFAULT_ROWS: tuple[str, ...] = ("sift", "rootsift", "describe", "nlm+sift", "nlm+describe")
#: Descriptors a row may name.
DESCRIPTORS: tuple[str, ...] = ("sift", "rootsift", "describe")
#: The built-in image denoiser (non-local means) and the absence of one.
NLM, NO_DENOISER = "nlm", "none"
#: The U-Net pools and upsamples by 2; images are padded (reflected) to a multiple of this side.
PAD_MULTIPLE = 8

ImageFilter = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class RowSpec:
    """One benchmark row: an optional whole-image denoiser, SIFT keypoints and a descriptor."""

    name: str
    descriptor: str = "describe"
    denoiser: str = NO_DENOISER
    magnification: float = 5.0
    weights: str | None = None
    pipeline: str = "default"

    @classmethod
    def parse(cls, text: str) -> RowSpec:
        """A spec from ``[DENOISER+]DESCRIPTOR[:key=value,...]``; ValueError naming what is wrong."""
        head, _, options = text.strip().partition(":")
        denoiser, _, descriptor = head.rpartition("+")
        if descriptor not in DESCRIPTORS:
            raise ValueError(
                f"row {text!r}: unknown descriptor {descriptor!r}; expected [DENOISER+]DESCRIPTOR[:key=value,...] "
                f"with DESCRIPTOR one of {list(DESCRIPTORS)}"
            )
        values: dict[str, object] = {}
        keys = {"magnification": float, "weights": str, "pipeline": str}
        for item in filter(None, options.split(",")):
            key, sep, value = item.partition("=")
            if not sep or key not in keys:
                raise ValueError(f"row {text!r}: bad option {item!r}; expected key=value with key one of {list(keys)}")
            if descriptor != "describe":
                raise ValueError(f"row {text!r}: option {key!r} applies to the describe descriptor only")
            try:
                values[key] = keys[key](value)
            except ValueError:
                raise ValueError(f"row {text!r}: {key}={value!r} is not a number") from None
        if float(values.get("magnification", 5.0)) <= 0:
            raise ValueError(f"row {text!r}: magnification must be > 0 (half-width in keypoint sigmas)")
        return cls(name=text.strip(), descriptor=descriptor, denoiser=denoiser or NO_DENOISER, **values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- denoisers


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Std of additive Gaussian noise (0..255 scale) by Immerkaer's (1996) fast estimator.

    The image is filtered with the difference of two Laplacians (zero on any plane and on a
    quadratic-free ramp) and sigma = sqrt(pi / 2) / (6 (W - 2) (H - 2)) * sum |response|. Strong
    texture and edges add to the estimate. Shape: (H, W) uint8 -> float
    """
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = cv2.filter2D(image.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(response).sum() / (6.0 * response.size))


def nlm_denoise(image: np.ndarray) -> np.ndarray:
    """OpenCV non-local means with h = the estimated noise std (7 px template, 21 px search window).

    Shape: (H, W) uint8 -> (H, W) uint8
    """
    return cv2.fastNlMeansDenoising(
        image, None, h=max(estimate_noise_sigma(image), 1.0), templateWindowSize=7, searchWindowSize=21
    )


def load_image_denoiser(path: Path | str) -> ImageFilter:
    """A study denoiser (U-Net or DnCNN ``model.keras``) made to run on whole images of any size.

    The saved model takes (B, 32, 32, 1) patches; it is cloned with an input of (None, None, 1) and
    given the same weights. An image is reflect-padded to a multiple of PAD_MULTIPLE, denoised in
    one call, cropped, clipped and truncated to uint8 (as the study treats denoised patches).
    Shape: (H, W) uint8 -> (H, W) uint8
    """
    import keras

    import nhpatches.nets.losses
    import nhpatches.nets.models  # noqa: F401  (both register the project's serialisable Keras objects)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: denoiser model not found; expected a study model.keras (U-Net or DnCNN)")
    try:
        model = keras.models.load_model(path, compile=False)
    except (ValueError, OSError, TypeError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a loadable Keras model ({type(error).__name__}: {error})") from None
    if len(model.inputs) != 1 or tuple(model.input_shape[1:]) != tuple(model.output_shape[1:]):
        raise ValueError(
            f"{path}: expected an image-to-image denoiser, got input {model.input_shape} "
            f"and output {model.output_shape}"
        )
    whole = keras.models.clone_model(model, input_tensors=keras.Input((None, None, 1), dtype="float32"))
    whole.set_weights(model.get_weights())

    def denoise(image: np.ndarray) -> np.ndarray:
        height, width = image.shape
        padded = np.pad(image, ((0, -height % PAD_MULTIPLE), (0, -width % PAD_MULTIPLE)), mode="reflect")
        output = np.asarray(whole.predict_on_batch(padded[None, :, :, None].astype(np.float32)))
        return np.clip(output[0, :height, :width, 0], 0, 255).astype(np.uint8)

    return denoise


def image_filter(name: str, denoisers: Mapping[str, ImageFilter]) -> ImageFilter | None:
    """The whole-image denoiser of a row: None, non-local means or a loaded Keras denoiser."""
    if name == NO_DENOISER:
        return None
    if name == NLM:
        return nlm_denoise
    if name not in denoisers:
        raise ValueError(
            f"denoiser {name!r}: expected {NLM!r} or a name given with --denoiser NAME=PATH "
            f"(given: {sorted(denoisers) or 'none'})"
        )
    return denoisers[name]


# --------------------------------------------------------------------------- methods


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT: L1-normalise, then square-root (Hellinger kernel as L2). Shape: (N, 128) -> (N, 128)"""
    descriptors = np.maximum(descriptors.astype(np.float32), 0)
    return np.sqrt(descriptors / (descriptors.sum(axis=1, keepdims=True) + 1e-7))


def build_method(spec: RowSpec, max_keypoints: int, denoisers: Mapping[str, ImageFilter]) -> Method:
    """The benchmark method of a row: image (H, W) uint8 -> (xy (N, 2), descriptors (N, D))."""
    if max_keypoints < 1:
        raise ValueError(f"max_keypoints must be a positive integer, got {max_keypoints}")
    denoise = image_filter(spec.denoiser, denoisers)
    sift = cv2.SIFT_create(nfeatures=max_keypoints)
    describe_keypoints = _patch_describer(spec) if spec.descriptor == "describe" else None

    def features(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if denoise is not None:
            image = denoise(image)
        if describe_keypoints is not None:
            keypoints = sift.detect(image, None)
            descriptors = describe_keypoints(image, keypoints)
        else:
            keypoints, descriptors = sift.detectAndCompute(image, None)
            if descriptors is None:
                descriptors = np.zeros((0, 128), np.float32)
            if spec.descriptor == "rootsift":
                descriptors = root_sift(descriptors)
        return np.array([point.pt for point in keypoints], np.float64).reshape(-1, 2), descriptors

    return Method(spec.name, features)


def _patch_describer(spec: RowSpec) -> Callable[[np.ndarray, list], np.ndarray]:
    """describe() on the patches extract_patches cuts at keypoints, with the row's region and weights.

    Shape: image (H, W) uint8, N keypoints -> (N, D) float32
    """
    import nhpatches
    from nhpatches.data.regions import extract_patches

    # an unknown pipeline or a bad export fails here, before any image is read
    dim = nhpatches.describe(np.zeros((1, 32, 32), np.uint8), pipeline=spec.pipeline, weights=spec.weights).shape[1]

    def describe_keypoints(image: np.ndarray, keypoints: list) -> np.ndarray:
        if not keypoints:
            return np.zeros((0, dim), np.float32)
        patches = extract_patches(image, keypoints, size=32, magnification=spec.magnification)
        return nhpatches.describe(patches, pipeline=spec.pipeline, weights=spec.weights)

    return describe_keypoints


def parse_denoisers(items: list[str] | None) -> dict[str, Path]:
    """``NAME=PATH`` arguments as a dict; ValueError naming a malformed or reserved one."""
    paths: dict[str, Path] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path or "+" in name or ":" in name:
            raise ValueError(f"--denoiser {item!r}: expected NAME=PATH (a name without '+' or ':')")
        if name in (NLM, NO_DENOISER):
            raise ValueError(f"--denoiser {item!r}: {name!r} is a built-in name; choose another")
        paths[name] = Path(path)
    return paths
