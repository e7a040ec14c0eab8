"""nhpatches: learned patch descriptors on noisy HPatches (N-HPatches).

Three layers, each importing only from the ones below it (``.importlinter`` checks this):

* product: ``nhpatches.pretrained`` (``describe``, load and export of trained pipelines, the
  release recipe) and ``nhpatches.cli`` (``hpatches-eval``, ``hpatches-describe``);
* study: ``nhpatches.study`` (the notebooks' ``Study``, reports, findings);
* library: ``nhpatches.train`` and ``nhpatches.evaluation``, on ``nhpatches.nets``, on
  ``nhpatches.data``, on ``nhpatches.core``.

``import nhpatches`` imports nothing heavy: ``nhpatches.describe`` loads its module (and Keras)
on first use.
"""

from __future__ import annotations

from nhpatches.core.version import package_version

__version__ = package_version()

__all__ = ["__version__", "describe"]


def __getattr__(name: str):
    """Lazy attributes: ``nhpatches.describe`` imports its module (and Keras) on first use only."""
    if name == "describe":
        from nhpatches.pretrained import describe

        return describe
    raise AttributeError(f"module 'nhpatches' has no attribute {name!r}")


def __dir__() -> list[str]:
    """Module attributes plus the lazy ones."""
    return sorted(set(globals()) | {"describe"})
