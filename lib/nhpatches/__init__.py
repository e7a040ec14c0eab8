"""nhpatches: learned patch descriptors on noisy HPatches (N-HPatches).

Three layers, each importing only from the ones below it (``.importlinter`` checks this):

* product: ``nhpatches.pretrained`` (``describe``, load and export of trained pipelines, the
  release recipe, from photographs to matches: ``detect_and_describe``, ``match_images``) and
  ``nhpatches.cli`` (``hpatches-eval``, ``hpatches-describe``, ``hpatches-match``);
* study: ``nhpatches.study`` (the notebooks' ``Study``, reports, findings);
* library: ``nhpatches.train`` and ``nhpatches.evaluation``, on ``nhpatches.nets``, on
  ``nhpatches.data``, on ``nhpatches.core``.

``import nhpatches`` imports nothing heavy: ``nhpatches.describe`` loads its module (and Keras)
on first use, and so do the other public functions:

* ``describe(patches)``: descriptors of uint8 (N, 32, 32) or (N, 65, 65) patches;
* ``extract_patches(image, keypoints)``: the HPatches region of each keypoint, (N, 32, 32) uint8
  (``ImagePyramid(image).cut(keypoints)`` for several cuts from one image);
* ``match_descriptors(d1, d2)``: mutual nearest neighbours, in chunks;
* ``detect_and_describe(image)`` and ``match_images(image1, image2)``: keypoints, descriptors,
  matches and a homography from photographs;
* ``estimate_noise_sigma(image)``: the Gaussian noise std of a photograph.
"""

from __future__ import annotations

from nhpatches.core.version import package_version

__version__ = package_version()

#: Lazy public attributes: name -> the module that defines it (imported on first use).
_LAZY = {
    "describe": "nhpatches.pretrained",
    "detect_and_describe": "nhpatches.pretrained",
    "match_images": "nhpatches.pretrained",
    "extract_patches": "nhpatches.data.regions",
    "ImagePyramid": "nhpatches.data.regions",
    "match_descriptors": "nhpatches.nets.matching",
    "estimate_noise_sigma": "nhpatches.data.photographs",
}

__all__ = [
    "ImagePyramid",
    "__version__",
    "describe",
    "detect_and_describe",
    "estimate_noise_sigma",
    "extract_patches",
    "match_descriptors",
    "match_images",
]


def __getattr__(name: str):
    """Lazy attributes: ``nhpatches.describe`` and the others import their module (and Keras) on first use only."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nhpatches' has no attribute {name!r}")


def __dir__() -> list[str]:
    """Module attributes plus the lazy ones."""
    return sorted(set(globals()) | set(_LAZY))
