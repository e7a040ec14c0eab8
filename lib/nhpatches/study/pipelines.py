"""Pipelines: how the study names a denoiser followed by a descriptor, and the ones each notebook runs.

A :class:`Pipeline` is the one way to name a pipeline: ``Pipeline(denoiser, descriptor)``, always
in that order (the order the data flows). Every ``Study`` method about a pipeline takes one, or
the two names in that order. The pseudo-denoisers ``"none"`` (the noisy patches as they are) and
``"clean"`` (the clean patches, an upper bound) stand where no denoiser runs.
"""

from __future__ import annotations

from typing import NamedTuple

from nhpatches.nets import specs


class Pipeline(NamedTuple):
    """A denoiser (or "none" / "clean") followed by a descriptor (a name of specs.DESCRIPTORS, "raw" or "sift")."""

    denoiser: str
    descriptor: str

    @classmethod
    def of(cls, pipeline: Pipeline | tuple[str, str] | str, descriptor: str | None = None) -> Pipeline:
        """A Pipeline from a Pipeline, a (denoiser, descriptor) pair, or the two names in that order."""
        if descriptor is not None:
            return cls(pipeline, descriptor)  # type: ignore[arg-type]
        if isinstance(pipeline, str) or len(pipeline) != 2:
            raise TypeError(f"expected a Pipeline(denoiser, descriptor) or the two names, got {pipeline!r}")
        return cls(*pipeline)

    @property
    def label(self) -> str:
        """'denoiser + descriptor'."""
        return f"{self.denoiser} + {self.descriptor}"


#: Pseudo-denoisers: the noisy patches as they are, and the clean patches (an upper bound).
INPUT_ONLY: tuple[str, ...] = ("none", "clean")
#: Descriptors with no training (nhpatches.nets.classical): raw pixels and OpenCV's SIFT.
CLASSICAL_DESCRIPTORS: tuple[str, ...] = ("raw", "sift")
#: Bumped when a classical descriptor's computation changes (part of the evaluation cache key).
CLASSICAL_VERSION = 1


def _pipelines(*pairs: tuple[str, str]) -> tuple[Pipeline, ...]:
    return tuple(Pipeline(*pair) for pair in pairs)


#: Table 2 of the study, in the report's row order.
TABLE2_PIPELINES = _pipelines(
    ("unet", "baseline"),
    ("dncnn_adam", "baseline"),
    ("dncnn_adam", "updated"),
    ("dncnn_adam", "deep"),
    ("unet", "retrained"),
    ("dncnn_adam", "retrained"),
)
#: Beyond the report (notebook 08): the HardNet-style extensions beside the report's baseline rows.
EXTENSION_PIPELINES = _pipelines(
    ("none", "hardnet"),
    ("unet", "hardnet"),
    ("unet_adam", "hardnet"),
    ("unet_adam", "hardnet_noswap"),
    ("unet_adam", "hardnet_flip"),
    ("clean", "hardnet"),
)
#: Notebook 08's table: classical baselines, the extensions, the joint pipeline and the report's rows.
BEYOND_PIPELINES = (
    *_pipelines(("none", "raw"), ("none", "sift"), ("unet_adam", "sift"), ("none", "hardnet_flip")),
    *(pipeline for pipeline in EXTENSION_PIPELINES if pipeline != ("none", "hardnet")),
    *_pipelines(("unet_adam", "hardnet_joint"), ("unet", "baseline"), ("clean", "baseline")),
)
#: Training-data ablation (notebook 08): one descriptor trained on clean, noisy or denoised patches,
#: each tested on the denoiser's output.
ABLATION_PIPELINES = _pipelines(
    ("unet_adam", "hardnet_flip"), ("unet_adam", "hardnet_flip_noisy"), ("unet_adam", "hardnet_flip_denoised")
)
#: Joint denoise-and-describe against two-stage training with the same number of steps (notebook 08).
JOINT_PIPELINES = _pipelines(
    ("unet_adam", "hardnet_flip"), ("unet_adam", "hardnet_two_stage"), ("unet_adam", "hardnet_joint")
)
#: The noise sweep's pipelines (notebook 08).
SWEEP_PIPELINES = _pipelines(
    ("none", "raw"),
    ("none", "sift"),
    ("unet", "baseline"),
    ("none", "hardnet_flip"),
    ("unet_adam", "hardnet_flip"),
    ("unet_adam", "hardnet_joint"),
)


def extension_pipelines(pipelines: tuple[Pipeline, ...]) -> tuple[Pipeline, ...]:
    """The pipelines whose descriptor is a named extension (not the report's, not classical)."""
    return tuple(
        p
        for p in map(Pipeline.of, pipelines)
        if p.descriptor in specs.DESCRIPTORS and specs.DESCRIPTORS[p.descriptor].family == "extension"
    )


def lookup(registry: dict, name: str, kind: str):
    """A registry entry, or a ValueError listing the known names."""
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; expected one of {sorted(registry)}")
    return registry[name]
