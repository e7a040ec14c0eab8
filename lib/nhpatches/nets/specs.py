"""What each model of the study is: a spec per denoiser and descriptor, and the network it builds.

A spec names a model's architecture, loss, optimiser and training data; the registries
``DENOISERS`` and ``DESCRIPTORS`` hold the ones the notebooks use. The string settings are
``Literal`` types, checked once when a spec is made. This module builds networks and losses
only; training them is :mod:`nhpatches.train.training`'s job, and loading an export is
:mod:`nhpatches.pretrained`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, get_args

import keras

from nhpatches.nets import losses, models

Architecture = Literal["unet", "dncnn"]
DenoiserLoss = Literal["mae", "mse"]
OptimizerName = Literal["adam", "sgd"]
Family = Literal["report", "extension"]
Network = Literal["l2net", "hardnet"]
Variant = Literal["baseline", "updated", "deep"]
DescriptorLossName = Literal["triplet", "hard_triplet", "hardest_negative"]
Distance = Literal["mean_squared", "squared", "euclidean"]
#: Flip augmentations of the descriptor batches (see nhpatches.train.batches.flip_patches).
Flip = Literal["none", "random", "rot180", "d4"]
TrainOn = Literal["pipeline", "clean", "noisy", "joint", "augmented"]
FLIP_MODES: tuple[str, ...] = get_args(Flip)


def check_choice(value: object, allowed: object, what: str) -> None:
    """Raise ValueError unless ``value`` is one of the Literal type ``allowed``'s values."""
    choices = get_args(allowed)
    if value not in choices:
        raise ValueError(f"{what} must be one of {choices}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class DenoiserSpec:
    """A denoiser of the study: architecture, loss and optimiser."""

    name: str
    architecture: str  # "unet" or "dncnn"
    loss: str = "mae"  # "mae" (R Eq. 1) or "mse" (R Eq. 3)
    optimizer: str = "adam"  # "adam" or "sgd"
    learning_rate: float = 1e-3
    momentum: float = 0.0  # SGD only
    nesterov: bool = False  # SGD only
    family: str = "report"  # "report" (the study's rows) or "extension" (beyond the report)

    def __post_init__(self) -> None:
        check_choice(self.architecture, Architecture, f"denoiser {self.name!r} architecture")
        check_choice(self.loss, DenoiserLoss, f"denoiser {self.name!r} loss")
        check_choice(self.optimizer, OptimizerName, f"denoiser {self.name!r} optimizer")
        check_choice(self.family, Family, f"denoiser {self.name!r} family")


@dataclasses.dataclass(frozen=True)
class DescriptorSpec:
    """A descriptor of the study: network, loss, optimiser, training input and augmentation.

    ``train_on`` "pipeline" trains on what the pipeline's denoiser gives the descriptor
    (noisy -> denoiser -> clip and truncate to uint8; the noisy patches for the pseudo-denoiser
    "none" and the clean ones for "clean"), as the report; "clean" trains on clean patches and
    "noisy" on noisy ones whatever the pipeline. "joint" (extension) fine-tunes the pipeline's
    denoiser together with the descriptor, end to end on noisy pairs, with the loss
    descriptor loss + ``joint_weight`` x MAE(denoised, clean); the pipeline then uses that
    fine-tuned denoiser. "augmented" (the release recipe, :mod:`nhpatches.pretrained.recipe`) trains on
    clean patches with Gaussian noise drawn per patch in every batch, and on patches cut from whole
    photographs made noisy before the cut; the recipe records its noise and data. ``init_from`` names
    the descriptor whose trained weights (for the same
    pipeline) are fine-tuned for ``profile.epochs_retrain`` epochs instead of training from scratch.
    """

    name: str
    network: str = "l2net"  # "l2net" (the report's) or "hardnet" (extension)
    variant: str = "baseline"  # l2net: "baseline", "updated" or "deep"
    loss: str = "triplet"  # "triplet" (R Eq. 2), "hard_triplet" (R Eq. 4) or "hardest_negative" (HardNet)
    distance: str = "mean_squared"  # triplet losses: see nhpatches.nets.losses.DISTANCES
    anchor_swap: bool = True  # hardest_negative only
    flip: str = "none"  # see nhpatches.train.batches.FLIP_MODES
    margin: float = 1.0
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    train_on: str = "pipeline"  # "pipeline", "clean", "noisy" or "joint"
    init_from: str | None = None
    family: str = "report"  # "report" or "extension"
    joint_weight: float = 0.0  # train_on="joint" only: λ of the λ·MAE term on the denoiser's output

    def __post_init__(self) -> None:
        for value, allowed, field in (
            (self.network, Network, "network"),
            (self.variant, Variant, "variant"),
            (self.loss, DescriptorLossName, "loss"),
            (self.distance, Distance, "distance"),
            (self.flip, Flip, "flip"),
            (self.optimizer, OptimizerName, "optimizer"),
            (self.train_on, TrainOn, "train_on"),
            (self.family, Family, "family"),
        ):
            check_choice(value, allowed, f"descriptor {self.name!r} {field}")


_SGD_COURSEWORK: dict[str, Any] = {"optimizer": "sgd", "learning_rate": 1e-5, "momentum": 0.9, "nesterov": True}

DENOISERS: dict[str, DenoiserSpec] = {
    spec.name: spec
    for spec in (
        # R §2.1 and the coursework: SGD 1e-5, Nesterov momentum 0.9, MAE.
        DenoiserSpec("unet", "unet", **_SGD_COURSEWORK),
        # R §3.2, Fig. 7: "the baseline denoiser with MSE loss". The report does not give its optimiser;
        # at the coursework's SGD 1e-5 the MSE run diverges (NaN in its first epoch): MSE's gradient is
        # 2|error| times MAE's, tens of grey levels at the start. The learning rate is divided by 100.
        DenoiserSpec("unet_mse", "unet", loss="mse", **{**_SGD_COURSEWORK, "learning_rate": 1e-7}),
        # R §3.1: Adam 1e-3 vs SGD 1e-5 (momentum as the coursework's SGD).
        DenoiserSpec("dncnn_adam", "dncnn", optimizer="adam", learning_rate=1e-3),
        DenoiserSpec("dncnn_sgd", "dncnn", **_SGD_COURSEWORK),
        # Not in the report: DnCNN with MSE, the extra row of notebook 03.
        DenoiserSpec("dncnn_mse", "dncnn", loss="mse", optimizer="adam", learning_rate=1e-3),
        # Extension: the report's U-Net trained with Adam 1e-3.
        DenoiserSpec("unet_adam", "unet", optimizer="adam", learning_rate=1e-3, family="extension"),
    )
}

DESCRIPTORS: dict[str, DescriptorSpec] = {
    spec.name: spec
    for spec in (
        # The report's descriptors: coursework SGD 0.1, triplets of the pipeline's own output.
        DescriptorSpec("baseline"),
        DescriptorSpec("updated", variant="updated"),
        DescriptorSpec("deep", variant="deep"),
        DescriptorSpec("retrained", flip="rot180", init_from="baseline"),
        DescriptorSpec("hard", loss="hard_triplet"),
        DescriptorSpec("hard_retrained", loss="hard_triplet", flip="rot180", init_from="baseline"),
        # Extensions (notebook 08): the HardNet-style network and loss, clean training data, Adam.
        DescriptorSpec(
            "hardnet",
            network="hardnet",
            loss="hardest_negative",
            optimizer="adam",
            learning_rate=1e-3,
            train_on="clean",
            family="extension",
        ),
        DescriptorSpec(
            "hardnet_noswap",
            network="hardnet",
            loss="hardest_negative",
            anchor_swap=False,
            optimizer="adam",
            learning_rate=1e-3,
            train_on="clean",
            family="extension",
        ),
        DescriptorSpec(
            "hardnet_flip",
            network="hardnet",
            loss="hardest_negative",
            flip="random",
            optimizer="adam",
            learning_rate=1e-3,
            train_on="clean",
            family="extension",
        ),
        DescriptorSpec(
            "hardnet_triplet",
            network="hardnet",
            loss="triplet",
            distance="euclidean",
            optimizer="adam",
            learning_rate=1e-3,
            train_on="clean",
            family="extension",
        ),
        # Training-data ablation of hardnet_flip: the same descriptor trained on noisy, or on the
        # pipeline's denoised patches, instead of clean ones.
        *(
            DescriptorSpec(
                f"hardnet_flip_{data}",
                network="hardnet",
                loss="hardest_negative",
                flip="random",
                optimizer="adam",
                learning_rate=1e-3,
                train_on=train_on,
                family="extension",
            )
            for data, train_on in (("noisy", "noisy"), ("denoised", "pipeline"))
        ),
        # Joint denoise-and-describe (notebook 08): hardnet_flip and the pipeline's denoiser fine-tuned
        # end to end, and its two-stage control: the same fine-tuning steps with the denoiser frozen.
        DescriptorSpec(
            "hardnet_joint",
            network="hardnet",
            loss="hardest_negative",
            flip="random",
            optimizer="adam",
            learning_rate=1e-3,
            train_on="joint",
            init_from="hardnet_flip",
            joint_weight=0.01,
            family="extension",
        ),
        DescriptorSpec(
            "hardnet_two_stage",
            network="hardnet",
            loss="hardest_negative",
            flip="random",
            optimizer="adam",
            learning_rate=1e-3,
            train_on="pipeline",
            init_from="hardnet_flip",
            family="extension",
        ),
    )
}


def make_optimizer(
    name: str, learning_rate: Any, momentum: float = 0.0, nesterov: bool = False
) -> keras.optimizers.Optimizer:
    """Adam, or SGD (with the given momentum / Nesterov); no gradient clipping.

    ``learning_rate``: a float or a ``keras.optimizers.schedules.LearningRateSchedule``.
    """
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=nesterov)
    raise ValueError(f"unknown optimizer {name!r}; expected 'adam' or 'sgd'")


def build_denoiser_network(spec: DenoiserSpec) -> keras.Model:
    """The (untrained, uncompiled) denoiser network of a spec."""
    builders: dict[str, Callable[..., keras.Model]] = {"unet": models.build_unet, "dncnn": models.build_dncnn}
    if spec.architecture not in builders:
        raise ValueError(f"unknown denoiser architecture {spec.architecture!r}; expected {sorted(builders)}")
    if spec.loss not in ("mae", "mse"):
        raise ValueError(f"unknown denoiser loss {spec.loss!r}; expected 'mae' or 'mse'")
    return builders[spec.architecture](name=spec.name)


def build_descriptor_network(spec: DescriptorSpec) -> keras.Model:
    """The (untrained) descriptor network of a spec."""
    if spec.network == "l2net":
        return models.build_l2net(spec.variant, name=spec.name)
    if spec.network == "hardnet":
        return models.build_hardnet(name=spec.name)
    raise ValueError(f"unknown descriptor network {spec.network!r}; expected 'l2net' or 'hardnet'")


def descriptor_mode(spec: DescriptorSpec) -> str:
    """'triplet' for the triplet losses (R Eq. 2, 4), 'pair' for HardNet's in-batch loss."""
    return "pair" if spec.loss == "hardest_negative" else "triplet"


def descriptor_loss(spec: DescriptorSpec) -> keras.losses.Loss:
    """The loss of a descriptor spec, for a (B, 3, D) triplet or (B, 2, D) pair trainer output."""
    if spec.loss == "triplet":
        return losses.triplet_loss(spec.margin, spec.distance)
    if spec.loss == "hard_triplet":
        return losses.hard_triplet_loss(spec.margin, spec.distance)
    if spec.loss == "hardest_negative":
        return losses.hardest_negative_loss(spec.margin, anchor_swap=spec.anchor_swap)
    raise ValueError(f"unknown descriptor loss {spec.loss!r}; expected 'triplet', 'hard_triplet' or 'hardest_negative'")
