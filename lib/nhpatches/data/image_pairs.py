"""Whole-image sequences with ground-truth homographies: the reader, and the development pairs.

Two layouts are read, both holding image 1 and images k = 2..K with a homography that maps
image-1 pixels (x, y) to image-k pixels (0-based, OpenCV's convention):

* HPatches (``hpatches-sequences-release``): ``1.ppm`` .. ``6.ppm`` (or ``.png``), ``H_1_2`` .. ``H_1_6``;
* Oxford / VGG affine sequences (Mikolajczyk et al. 2005): ``img1`` .. ``img6`` with any image
  extension (``.ppm``, ``.pgm``, ``.png``, ``.jpg``), ``H1to2p`` .. ``H1to6p``.

A homography file is three rows of three numbers. Images are read as 8-bit grayscale.

The development pairs (:func:`ensure_dev_pairs`) are HPatches-layout sequences made from the
embedded dataset's **test** photos only (split ``a`` of the seed-0 build that every profile and the
release recipe train on): for each photo a viewpoint sequence ``v_<photo>`` (random homographies of
increasing strength, a mild photometric change) and an illumination sequence ``i_<photo>`` (about
1 px of geometric change, strong photometric change), as :func:`nhpatches.data.extraction.make_targets`
makes them; image 1 is the photo's central crop and the targets are warped from the whole photo.
The training photos are never used. The folder is written in a temporary sibling, moved into place,
and its manifest ``pairs.json`` is written last, so a half-written folder is never taken as good.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nhpatches.core.cache import atomic_path
from nhpatches.core.config import data_root
from nhpatches.data import embedded
from nhpatches.data.extraction import photometric_change, random_homography, warp_image

LAYOUTS: dict[str, str] = {
    "hpatches": "images 1.ppm..6.ppm (or .png) and homographies H_1_2..H_1_6",
    "oxford": "images img1..img6 (any image extension) and homographies H1to2p..H1to6p",
}
#: Bumped whenever the development pairs' generator changes; part of the manifest match.
DEV_PAIRS_VERSION = "1"
#: The manifest of a finished development-pairs build (written last).
DEV_PAIRS_MANIFEST = "pairs.json"
#: Build seed of the embedded dataset whose split ``a`` decides which photos are test photos.
SPLIT_SEED = 0
#: Share of the photo's height and width cut off each side to make image 1 of a development sequence.
DEV_MARGIN = 0.1


@dataclass(frozen=True)
class ImageSequence:
    """One sequence: image 1 and images 2..K with homographies image 1 -> image k.

    Shape: images K x (H_k, W_k) uint8; homographies (K - 1) x (3, 3) float64, ``homographies[i]``
    maps ``images[0]`` pixels to ``images[i + 1]`` pixels.
    """

    name: str
    layout: str
    images: tuple[np.ndarray, ...]
    homographies: tuple[np.ndarray, ...]
    paths: tuple[Path, ...]

    @property
    def kind(self) -> str:
        """'viewpoint' for v_ sequences, 'illumination' for i_ ones (HPatches naming), else ''."""
        return {"v_": "viewpoint", "i_": "illumination"}.get(self.name[:2], "")


# --------------------------------------------------------------------------- reading


def read_gray_image(path: Path | str) -> np.ndarray:
    """An image file as 8-bit grayscale (colour converted by OpenCV's luma weights).

    Shape: -> (H, W) uint8. Raises FileNotFoundError or ValueError naming the path.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None or image.ndim != 2 or image.size == 0:
        raise ValueError(f"{path}: not a readable image (OpenCV could not decode it)")
    return image


def read_homography(path: Path | str) -> np.ndarray:
    """A 3x3 homography from a text file of three rows of three numbers (HPatches / Oxford format).

    Shape: -> (3, 3) float64. Raises FileNotFoundError or ValueError naming the path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: homography file not found")
    try:
        values = np.array(
            [[float(token) for token in line.split()] for line in path.read_text().splitlines() if line.strip()],
            dtype=np.float64,
        )
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: unreadable homography; expected 3 rows of 3 numbers ({error})") from None
    if values.shape != (3, 3):
        raise ValueError(f"{path}: expected a 3x3 homography (3 rows of 3 numbers), got shape {values.shape}")
    if not np.isfinite(values).all() or abs(np.linalg.det(values)) < 1e-12:
        raise ValueError(f"{path}: expected a finite, invertible 3x3 homography, got {values.tolist()}")
    return values


#: Per layout: (image-k file pattern, homography 1 -> k file pattern, homography file name of k).
_PATTERNS: dict[str, tuple[str, str, str]] = {
    "hpatches": (r"(\d+)\.(?:ppm|png)", r"H_1_(\d+)", "H_1_{}"),
    "oxford": (r"img(\d+)\.[A-Za-z0-9]+", r"H1to(\d+)p", "H1to{}p"),
}


def _layout_files(folder: Path, layout: str) -> tuple[list[Path], list[Path]]:
    """(images 1..K, homographies 1->2..1->K) of one layout; K is the highest image or homography number.

    A missing file keeps its expected path (the caller names it); two images for one k are an error.
    """
    image_pattern, homography_pattern, homography_name = _PATTERNS[layout]
    images: dict[int, list[Path]] = {}
    numbers = {1}
    for path in folder.iterdir():
        if match := re.fullmatch(image_pattern, path.name, flags=re.IGNORECASE):
            images.setdefault(int(match.group(1)), []).append(path)
            numbers.add(int(match.group(1)))
        elif match := re.fullmatch(homography_pattern, path.name):
            numbers.add(int(match.group(1)))
    image_paths = []
    for k in range(1, max(numbers) + 1):
        candidates = sorted(images.get(k, []))
        if len(candidates) > 1:
            raise ValueError(
                f"{folder}: {len(candidates)} files for image {k} ({', '.join(p.name for p in candidates)}); "
                "expected one"
            )
        default = folder / (f"{k}.ppm" if layout == "hpatches" else f"img{k}.<ext>")
        image_paths.append(candidates[0] if candidates else default)
    return image_paths, [folder / homography_name.format(k) for k in range(2, max(numbers) + 1)]


def detect_image_layout(folder: Path | str) -> str:
    """'hpatches' or 'oxford', from the homography files in folder; ValueError naming folder otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: expected an image-sequence folder, found no folder")
    names = {path.name for path in folder.iterdir()}
    found = [
        layout
        for layout, pattern in (("hpatches", r"H_1_\d+"), ("oxford", r"H1to\d+p"))
        if any(re.fullmatch(pattern, name) for name in names)
    ]
    if len(found) != 1:
        what = "both" if found else "neither"
        raise ValueError(
            f"{folder}: {what} of the image-sequence layouts found; expected one of: "
            + "; ".join(f"{name}: {text}" for name, text in LAYOUTS.items())
        )
    return found[0]


def read_image_sequence(folder: Path | str) -> ImageSequence:
    """Read one sequence folder in either layout, checking every file.

    Every image k that has a homography must exist and be readable, and every image k > 1 must
    have its homography. Shape: -> ImageSequence with K images (H, W) uint8 and K - 1 (3, 3) maps.
    """
    folder = Path(folder)
    layout = detect_image_layout(folder)
    image_paths, homography_paths = _layout_files(folder, layout)
    missing = [path for path in image_paths + homography_paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder}: missing {', '.join(path.name for path in missing)}; expected {LAYOUTS[layout]} "
            f"(image 1 and, for every image k, the homography 1 -> k)"
        )
    images = tuple(read_gray_image(path) for path in image_paths)
    homographies = tuple(read_homography(path) for path in homography_paths)
    return ImageSequence(folder.name, layout, images, homographies, tuple(image_paths))


def is_image_sequence(folder: Path) -> bool:
    """Whether a folder holds homography files of either layout."""
    return folder.is_dir() and any(re.fullmatch(r"H_1_\d+|H1to\d+p", path.name) for path in folder.iterdir())


def image_sequence_dirs(root: Path | str) -> list[Path]:
    """The sequence folders under root, by name (root itself when it is a sequence folder)."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: expected a folder of image sequences (or one sequence), found no folder")
    if is_image_sequence(root):
        return [root]
    folders = sorted(path for path in root.iterdir() if is_image_sequence(path))
    if not folders:
        raise FileNotFoundError(
            f"{root}: no image sequences found; expected sub-folders with " + " or ".join(LAYOUTS.values())
        )
    return folders


# --------------------------------------------------------------------------- development pairs


def dev_photos() -> list[tuple[str, str]]:
    """(file, stem) of the embedded dataset's test photos: split ``a`` of the seed-0 build, test side."""
    stems = [stem for _, stem in embedded.PHOTOS]
    test_names = embedded.make_splits(stems, SPLIT_SEED)["a"]["test"]
    test_stems = {name[2:] for name in test_names}
    return [photo for photo in embedded.PHOTOS if photo[1] in test_stems]


def dev_pairs_parameters(seed: int = 0) -> dict:
    """What a development-pairs manifest must match for the folder to be reused."""
    return {
        "version": DEV_PAIRS_VERSION,
        "generator_version": embedded.GENERATOR_VERSION,
        "seed": int(seed),
        "split_seed": SPLIT_SEED,
        "photos": [file_name for file_name, _ in dev_photos()],
        "max_side": embedded.MAX_SIDE,
        "margin": DEV_MARGIN,
    }


def default_dev_pairs_dir(seed: int = 0) -> Path:
    """Where the development pairs are built: <data root>/image_pairs_s<seed>."""
    return data_root() / f"image_pairs_s{seed}"


def _write_png(path: Path, image: np.ndarray) -> None:
    """Write an 8-bit grayscale PNG atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image, mode="L").save(tmp, format="PNG", compress_level=1)


def _write_homography(path: Path, homography: np.ndarray) -> None:
    """Write a 3x3 homography as three rows of three numbers (HPatches' H_1_k format)."""
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(" ".join(f"{value:.10g}" for value in row) for row in homography) + "\n")


def make_dev_targets(
    photo: np.ndarray, kind: str, rng: np.random.Generator, margin: float = DEV_MARGIN
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Image 1 (the photo's central crop) and images 2..6 with their homographies image 1 -> image k.

    As :func:`nhpatches.data.extraction.make_targets` (same random homographies, warp and photometric
    change, same strengths), except that a target is warped from the whole photo and then cropped, so
    the parts of it that image 1 does not show are real photo, not OpenCV-style smeared borders.
    Shape: photo (H, W) float32 0..255 -> (h, w), 5 x (h, w) float32, 5 x (3, 3) with h = H - 2 round(margin H).
    """
    height, width = photo.shape
    y0, x0 = round(margin * height), round(margin * width)
    crop = (slice(y0, height - y0), slice(x0, width - x0))
    reference = photo[crop]
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    strength = 1.0 if kind == "illumination" else 0.3  # make_targets' photometric strengths
    targets, homographies = [], []
    for k in range(1, 6):
        homography = random_homography(reference.shape, k / 5, kind, rng)
        warped = warp_image(photo, shift @ homography @ np.linalg.inv(shift))[crop]
        targets.append(photometric_change(warped, strength, rng))
        homographies.append(homography / homography[2, 2])
    return reference, targets, homographies


def build_dev_sequence(folder: Path, photo: np.ndarray, name: str, seed: int) -> None:
    """Write one HPatches-layout sequence (1.png..6.png, H_1_2..H_1_6) made from a photo.

    Shape: photo (H, W) float32 0..255 -> six (h, w) uint8 images on disk (see :func:`make_dev_targets`).
    """
    rng = np.random.default_rng([seed, zlib.crc32(f"image-pairs/{name}".encode())])
    kind = "illumination" if name.startswith("i_") else "viewpoint"
    reference, targets, homographies = make_dev_targets(np.round(photo).astype(np.float32), kind, rng)
    folder.mkdir(parents=True, exist_ok=True)
    for k, image in enumerate([reference, *targets], start=1):
        _write_png(folder / f"{k}.png", np.clip(np.round(image), 0, 255).astype(np.uint8))
    for k, homography in enumerate(homographies, start=2):
        _write_homography(folder / f"H_1_{k}", homography)


def build_dev_pairs(out_dir: Path | str, seed: int = 0) -> Path:
    """Build the development pairs into out_dir (replacing it): v_ and i_ for every test photo."""
    out_dir = Path(out_dir)
    parameters = dev_pairs_parameters(seed)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        names = []
        for file_name, stem in dev_photos():
            photo = embedded.load_photo(file_name, parameters["max_side"])
            for name in (f"v_{stem}", f"i_{stem}"):
                build_dev_sequence(folder / name, photo, name, seed)
                names.append(name)
        manifest = {"generator": "nhpatches.image_pairs", "parameters": parameters, "sequences": names}
        (folder / DEV_PAIRS_MANIFEST).write_text(json.dumps(manifest, indent=1))
        embedded._replace_folder(folder, out_dir)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out_dir


def dev_pairs_complete(out_dir: Path | str, seed: int = 0) -> bool:
    """True if out_dir holds a finished build with these parameters (manifest last, all files there)."""
    out_dir = Path(out_dir)
    try:
        manifest = json.loads((out_dir / DEV_PAIRS_MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if not isinstance(manifest, dict) or manifest.get("parameters") != dev_pairs_parameters(seed):
        return False
    return all(
        (out_dir / name / "6.png").is_file() and (out_dir / name / "H_1_6").is_file()
        for name in manifest.get("sequences", [])
    )


def ensure_dev_pairs(out_dir: Path | str | None = None, seed: int = 0) -> Path:
    """The development pairs' folder, built once (reused when its manifest matches)."""
    out_dir = default_dev_pairs_dir(seed) if out_dir is None else Path(out_dir)
    if not dev_pairs_complete(out_dir, seed):
        build_dev_pairs(out_dir, seed)
    return out_dir
