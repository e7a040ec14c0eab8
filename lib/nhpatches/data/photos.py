"""The real photographs of the embedded dataset: scikit-image's bundled photos, loaded and prepared.

Every photo is read as grayscale, downscaled (antialiased) so its longer side is at most
``MAX_SIDE`` px and contrast-stretched (0.5-99.5 percentiles to 0..255), so patch contrast is
closer to real HPatches and the noise levels mean about the same on both. Three nearly flat
photos (``FLAT_PHOTOS``) are left out. A viewpoint sequence starts from the photo mirrored and
scaled (:func:`viewpoint_reference`), so its patches differ from the illumination sequence's.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

#: Bundled scikit-image photos (file name, sequence stem), in build order.
PHOTOS: tuple[tuple[str, str], ...] = (
    ("camera.png", "camera"),
    ("astronaut.png", "astronaut"),
    ("coffee.png", "coffee"),
    ("brick.png", "brick"),
    ("chelsea.png", "chelsea"),
    ("coins.png", "coins"),
    ("grass.png", "grass"),
    ("gravel.png", "gravel"),
    ("motorcycle_left.png", "motorcycle"),
    ("rocket.jpg", "rocket"),
    ("page.png", "page"),
    ("text.png", "text"),
    ("clock_motion.png", "clockmotion"),
    ("hubble_deep_field.jpg", "hubble"),
    ("ihc.png", "ihc"),
)
#: Bundled photos left out: nearly flat at patch scale even after the contrast stretch (median
#: pixel std of their keypoint patches 5-8 grey levels, against ~41 on real HPatches), so their
#: noisy patches would be noise alone at every level.
FLAT_PHOTOS: tuple[str, ...] = ("moon.png", "cell.png", "retina.jpg")
#: File names of the bundled photos in build order (``images=DEFAULT_IMAGES[:k]`` = ``images=k``).
DEFAULT_IMAGES: tuple[str, ...] = tuple(file_name for file_name, _ in PHOTOS)
#: Photos are downscaled so their longer side is at most this many pixels.
MAX_SIDE = 640


def photo_path(file_name: str) -> Path:
    """Path of a photo bundled in scikit-image's data folder."""
    import skimage.data

    path = Path(skimage.data.__file__).resolve().parent / file_name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: bundled scikit-image photo not found (skimage data folder)")
    return path


def load_photo(file_name: str, max_side: int = MAX_SIDE) -> np.ndarray:
    """A bundled photo as grayscale float32 0..255, downscaled (antialiased) to max_side, contrast-stretched.

    Shape: -> (H, W) float32
    """
    with Image.open(photo_path(file_name)) as image:
        gray = image.convert("L")
        scale = max_side / max(gray.size)
        if scale < 1:
            size = (round(gray.size[0] * scale), round(gray.size[1] * scale))
            gray = gray.resize(size, Image.Resampling.LANCZOS)
        return stretch_contrast(np.asarray(gray, dtype=np.float32))


def stretch_contrast(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Map the [low, high] percentiles to [0, 255] (clipped), as a camera's auto-exposure would.

    Several bundled photos (microscopy, astronomy) span a few grey levels only; stretched,
    their patches get a pixel std closer to real HPatches patches (median ~41 at 32 px),
    so the noise levels mean the same thing on them as on HPatches.
    Shape: (H, W) -> (H, W) float32
    """
    lo, hi = np.percentile(image, [low, high])
    return np.clip((image - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.float32)


def viewpoint_reference(photo: np.ndarray) -> np.ndarray:
    """Reference image of a v_ sequence: the photo mirrored left-right and scaled by 0.8.

    Shape: (H, W) -> (~0.8 H, ~0.8 W) float32
    """
    mirrored = ndimage.gaussian_filter(photo[:, ::-1], 0.5 * np.sqrt(1 / 0.8**2 - 1))
    return ndimage.zoom(mirrored, 0.8, order=1, grid_mode=True, mode="nearest").astype(np.float32)


def resolve_images(images: int | SequenceABC[str] | None) -> list[tuple[str, str]]:
    """Photos to use: None = all, an int = the first k, or names (file, file stem or sequence stem)."""
    if images is None:
        return list(PHOTOS)
    if isinstance(images, (int, np.integer)):
        if not 2 <= images <= len(PHOTOS):
            raise ValueError(f"images={images}: expected between 2 and {len(PHOTOS)} bundled photos")
        return list(PHOTOS[:images])
    lookup = {key: photo for photo in PHOTOS for key in (photo[0], photo[0].rsplit(".", 1)[0], photo[1])}
    unknown = [name for name in images if name not in lookup]
    if unknown or len(set(images)) < 2:
        raise ValueError(
            f"images={list(images)}: need at least 2 distinct bundled photos; unknown "
            f"{unknown}; known {[stem for _, stem in PHOTOS]}"
        )
    return list(dict.fromkeys(lookup[name] for name in images))
