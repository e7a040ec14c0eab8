"""The rows of ``hpatches-match-bench``: parameterised specs turned into benchmark methods.

A row is written ``[DENOISER+]DESCRIPTOR[:key=value,...]``, e.g. ``sift``, ``rootsift``, ``describe``,
``nlm+describe``, ``unet+describe``, ``describe:magnification=8`` or ``describe:weights=runs/release``:

* DENOISER, run on the whole (noisy) image before detection and description, with the product's
  meaning (:func:`nhpatches.detect_and_describe`'s ``denoise``): ``nlm`` (OpenCV non-local means with
  h = NLM_STRENGTH x the image's estimated noise sigma, :mod:`nhpatches.data.photographs`), ``auto``
  (the same only when that sigma is above AUTO_DENOISE_MIN_SIGMA), or the name of a Keras denoiser
  given as ``--denoiser NAME=PATH`` (a study U-Net or DnCNN ``model.keras``; fully convolutional, so it
  runs on the whole image at once); no DENOISER: none;
* DESCRIPTOR, on the same OpenCV SIFT keypoints (the ``max_keypoints`` strongest, every orientation,
  :func:`nhpatches.pretrained.images.sift_contrast_threshold`: lower on a denoised image):
  ``sift`` (OpenCV's own descriptor), ``rootsift`` (Arandjelovic & Zisserman 2012: L1-normalised,
  square-rooted SIFT) or ``describe``
  (:func:`nhpatches.detect_and_describe`: the region of half-width ``magnification`` x sigma cut by
  :func:`nhpatches.extract_patches`, described by :func:`nhpatches.describe`);
* keys of ``describe``: ``magnification`` (default: the region the descriptor was trained at, see
  :func:`nhpatches.pretrained.images.trained_magnification`), ``weights``
  (your export, as ``describe(weights=...)``), ``pipeline`` (describe's pipeline name, default "default").

Matching is mutual nearest neighbours (L2) for every row.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import cv2
import numpy as np

from nhpatches.data.photographs import denoise_if_noisy, estimate_noise_sigma
from nhpatches.evaluation.image_matching import Features, Method
from nhpatches.pretrained.images import (
    AUTO_DENOISE_MIN_SIGMA,
    NLM_STRENGTH,
    SIFT_EDGE_THRESHOLD,
    sift_contrast_threshold,
)

#: The rows the command runs by default (plus ``NAME+describe`` for every ``--denoiser NAME=PATH``).
DEFAULT_ROWS: tuple[str, ...] = ("sift", "rootsift", "describe", "nlm+sift", "nlm+describe")
#: Descriptors a row may name.
DESCRIPTORS: tuple[str, ...] = ("sift", "rootsift", "describe")
#: The built-in image denoisers (the product's names) and the absence of one.
NLM, AUTO, NO_DENOISER = "nlm", "auto", "none"
#: The U-Net pools and upsamples by 2; images are padded (reflected) to a multiple of this side.
PAD_MULTIPLE = 8

ImageFilter = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class RowSpec:
    """One benchmark row: an optional whole-image denoiser, SIFT keypoints and a descriptor."""

    name: str
    descriptor: str = "describe"
    denoiser: str = NO_DENOISER
    magnification: float | None = None  # None: the region the descriptor was trained at
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
        values: dict[str, float | str] = {}
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
        if "magnification" in values and float(values["magnification"]) <= 0:
            raise ValueError(f"row {text!r}: magnification must be > 0 (half-width in keypoint sigmas)")
        return cls(name=text.strip(), descriptor=descriptor, denoiser=denoiser or NO_DENOISER, **values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- denoisers


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


def nlm_filter(auto: bool, strength: float = NLM_STRENGTH) -> ImageFilter:
    """The product's ``denoise="nlm"`` (or ``"auto"``) as a function, for the rows that are not detect_and_describe.

    ``strength``: h in units of the estimated noise sigma (the product's NLM_STRENGTH; the tuning
    script tries others). Shape: (H, W) uint8 -> (H, W) uint8
    """

    def denoise(image: np.ndarray) -> np.ndarray:
        min_sigma = AUTO_DENOISE_MIN_SIGMA if auto else None
        return denoise_if_noisy(image, estimate_noise_sigma(image), strength, min_sigma)[0]

    return denoise


def check_denoiser(name: str, denoisers: Mapping[str, ImageFilter]) -> None:
    """ValueError unless a row's denoiser is built in or given with --denoiser."""
    if name not in (NO_DENOISER, NLM, AUTO) and name not in denoisers:
        raise ValueError(
            f"denoiser {name!r}: expected {NLM!r}, {AUTO!r} or a name given with --denoiser NAME=PATH "
            f"(given: {sorted(denoisers) or 'none'})"
        )


# --------------------------------------------------------------------------- methods


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT: L1-normalise, then square-root (Hellinger kernel as L2). Shape: (N, 128) -> (N, 128)."""
    descriptors = np.maximum(descriptors.astype(np.float32), 0)
    return np.sqrt(descriptors / (descriptors.sum(axis=1, keepdims=True) + 1e-7))


def build_method(spec: RowSpec, max_keypoints: int, denoisers: Mapping[str, ImageFilter]) -> Method:
    """The benchmark method of a row: image (H, W) uint8 -> (xy (N, 2), descriptors (N, D))."""
    if max_keypoints < 1:
        raise ValueError(f"max_keypoints must be a positive integer, got {max_keypoints}")
    check_denoiser(spec.denoiser, denoisers)
    if spec.descriptor == "describe":
        return Method(spec.name, _product_features(spec, max_keypoints, denoisers.get(spec.denoiser)))
    denoise = denoisers.get(spec.denoiser) or (
        None if spec.denoiser == NO_DENOISER else nlm_filter(auto=spec.denoiser == AUTO)
    )
    sift = {  # the product's detector: a lower contrast threshold on a denoised image
        denoised: cv2.SIFT_create(  # type: ignore[attr-defined]
            nfeatures=max_keypoints,
            contrastThreshold=sift_contrast_threshold(denoised),
            edgeThreshold=SIFT_EDGE_THRESHOLD,
        )
        for denoised in (False, True)
    }

    def features(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen = image if denoise is None else denoise(image)
        keypoints, descriptors = sift[seen is not image].detectAndCompute(seen, None)
        if descriptors is None:
            return np.zeros((0, 2)), np.zeros((0, 128), np.float32)
        # the strongest max_keypoints, as detect_sift keeps them for the describe rows
        order = np.argsort([-point.response for point in keypoints], kind="stable")[:max_keypoints]
        descriptors = descriptors[order]
        xy = np.array([keypoints[index].pt for index in order], np.float64).reshape(-1, 2)
        return xy, root_sift(descriptors) if spec.descriptor == "rootsift" else descriptors

    return Method(spec.name, features)


def _product_features(spec: RowSpec, max_keypoints: int, image_filter: ImageFilter | None) -> Features:
    """detect_and_describe with the row's denoiser, region and weights: the product's own path.

    Shape: image (H, W) uint8 -> (xy (N, 2), descriptors (N, D) float32)
    """
    import nhpatches

    denoise = image_filter if image_filter is not None else spec.denoiser
    settings = {"pipeline": spec.pipeline, "weights": spec.weights, "magnification": spec.magnification}
    # an unknown pipeline or a bad export fails here, before any image is read
    nhpatches.describe(np.zeros((1, 32, 32), np.uint8), pipeline=spec.pipeline, weights=spec.weights)

    def features(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = nhpatches.detect_and_describe(image, max_keypoints, denoise=denoise, **settings)
        return found.xy, found.descriptors

    return features


def parse_denoisers(items: list[str] | None) -> dict[str, Path]:
    """``NAME=PATH`` arguments as a dict; ValueError naming a malformed or reserved one."""
    paths: dict[str, Path] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path or "+" in name or ":" in name:
            raise ValueError(f"--denoiser {item!r}: expected NAME=PATH (a name without '+' or ':')")
        if name in (NLM, AUTO, NO_DENOISER):
            raise ValueError(f"--denoiser {item!r}: {name!r} is a built-in name; choose another")
        paths[name] = Path(path)
    return paths
