"""What each model of the study is, and how one is trained, saved and loaded back.

A model is named by a spec (architecture, loss, optimiser, augmentation); the
registries ``DENOISERS`` and ``DESCRIPTORS`` hold the ones the notebooks use.
Training goes through ``keras.Model.fit`` with the losses of :mod:`nhpatches.losses`;
the result (``model.keras``, ``history.csv``, ``metrics.json``) is cached in a
:class:`~nhpatches.cache.RunDir`.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import pandas as pd

from nhpatches import losses, models
from nhpatches.batches import DenoisingBatches, PatchBank, TripletBatches
from nhpatches.cache import RunDir, atomic_path
from nhpatches.config import Profile


@dataclasses.dataclass(frozen=True)
class DenoiserSpec:
    """A denoiser of the study: architecture, loss and optimiser."""

    name: str
    architecture: str  # "unet" or "dncnn"
    loss: str = "mae"  # "mae" or "mse"
    optimizer: str = "adam"  # "adam" or "sgd"
    learning_rate: float = 1e-3


@dataclasses.dataclass(frozen=True)
class DescriptorSpec:
    """A descriptor of the study: network variant, loss and augmentation."""

    name: str
    variant: str = "baseline"  # "baseline", "updated" or "deep"
    loss: str = "triplet"  # "triplet" (Eq. 2) or "hard_triplet" (Eq. 4)
    anchor_swap: bool = True  # hard triplet loss only
    flip: bool = False
    margin: float = 1.0
    optimizer: str = "adam"
    learning_rate: float = 1e-3


DENOISERS: dict[str, DenoiserSpec] = {
    spec.name: spec for spec in (
        DenoiserSpec("unet", "unet"),
        DenoiserSpec("dncnn_adam", "dncnn"),
        DenoiserSpec("dncnn_sgd", "dncnn", optimizer="sgd", learning_rate=1e-2),
        DenoiserSpec("dncnn_mse", "dncnn", loss="mse"),
    )
}

DESCRIPTORS: dict[str, DescriptorSpec] = {
    spec.name: spec for spec in (
        DescriptorSpec("baseline"),
        DescriptorSpec("updated", variant="updated"),
        DescriptorSpec("deep", variant="deep"),
        DescriptorSpec("flip", flip=True),
        DescriptorSpec("hard", loss="hard_triplet"),
        DescriptorSpec("hard_noswap", loss="hard_triplet", anchor_swap=False),
        DescriptorSpec("retrained", loss="hard_triplet", flip=True),
    )
}


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """Adam, or SGD with Nesterov momentum 0.9 and gradient clipping (DnCNN's setting)."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, clipnorm=1.0)
    raise ValueError(f"unknown optimizer {name!r}; expected 'adam' or 'sgd'")


def build_denoiser(spec: DenoiserSpec) -> keras.Model:
    """The denoiser network of a spec, compiled with its loss and optimiser."""
    builders = {"unet": models.build_unet, "dncnn": models.build_dncnn}
    if spec.architecture not in builders:
        raise ValueError(f"unknown denoiser architecture {spec.architecture!r}; expected {sorted(builders)}")
    if spec.loss not in ("mae", "mse"):
        raise ValueError(f"unknown denoiser loss {spec.loss!r}; expected 'mae' or 'mse'")
    model = builders[spec.architecture]()
    model.compile(optimizer=make_optimizer(spec.optimizer, spec.learning_rate), loss=spec.loss,
                  metrics=["mae", "mse"])
    return model


def build_descriptor_trainer(spec: DescriptorSpec) -> tuple[keras.Model, keras.Model]:
    """(descriptor, trainer): the trainer shares weights and outputs stacked descriptors for the loss."""
    descriptor = models.build_l2net(spec.variant)
    if spec.loss == "triplet":
        trainer, loss = models.build_triplet_trainer(descriptor), losses.triplet_loss(spec.margin)
    elif spec.loss == "hard_triplet":
        trainer = models.build_pair_trainer(descriptor)
        loss = losses.hard_triplet_loss(spec.margin, anchor_swap=spec.anchor_swap)
    else:
        raise ValueError(f"unknown descriptor loss {spec.loss!r}; expected 'triplet' or 'hard_triplet'")
    trainer.compile(optimizer=make_optimizer(spec.optimizer, spec.learning_rate), loss=loss)
    return descriptor, trainer


def train_denoiser(spec: DenoiserSpec, train: PatchBank, validation: PatchBank, profile: Profile,
                   seed: int, run: RunDir) -> dict:
    """Train a denoiser on (noisy, clean) pairs; save it in ``run``; return its metrics."""
    keras.utils.set_random_seed(seed)
    model = build_denoiser(spec)
    batch = profile.dncnn_batch_size if spec.architecture == "dncnn" else profile.denoiser_batch_size
    epochs = profile.epochs_dncnn if spec.architecture == "dncnn" else profile.epochs_unet
    train_data = DenoisingBatches(train, batch, profile.steps_per_epoch, seed)
    val_data = DenoisingBatches(validation, batch, profile.validation_steps, seed + 1, frozen=True)
    return _fit_and_save(model, model, train_data, val_data, epochs, patches_per_item=1, run=run)


def train_descriptor(spec: DescriptorSpec, train: PatchBank, validation: PatchBank, profile: Profile,
                     seed: int, run: RunDir) -> dict:
    """Train a descriptor on clean triplets (or pairs); save it in ``run``; return its metrics."""
    keras.utils.set_random_seed(seed)
    descriptor, trainer = build_descriptor_trainer(spec)
    mode = "triplet" if spec.loss == "triplet" else "pair"
    train_data = TripletBatches(train, profile.batch_size, profile.steps_per_epoch, seed, mode, spec.flip)
    val_batch = min(profile.batch_size, validation.num_points)
    val_data = TripletBatches(validation, val_batch, profile.validation_steps, seed + 1, mode, frozen=True)
    per_item = 3 if mode == "triplet" else 2
    return _fit_and_save(descriptor, trainer, train_data, val_data, profile.epochs_descriptor, per_item, run)


def _fit_and_save(model: keras.Model, trainer: keras.Model, train_data: keras.utils.PyDataset,
                  val_data: keras.utils.PyDataset, epochs: int, patches_per_item: int, run: RunDir) -> dict:
    """Fit ``trainer``, save ``model`` and the history atomically; return timing and final losses."""
    start = time.perf_counter()
    history = trainer.fit(train_data, validation_data=val_data, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    with atomic_path(run.file("history.csv")) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(run.file("model.keras")) as tmp:
        model.save(tmp)
    fed = epochs * len(train_data) * train_data.batch_size * patches_per_item
    final = frame.iloc[-1].drop("epoch").to_dict()
    return {"epochs": int(epochs), "train_seconds": seconds, "patches_fed": int(fed),
            "patches_per_second": fed / seconds, "final": {k: float(v) for k, v in final.items()},
            "parameters": int(model.count_params()), "backend": keras.backend.backend()}


def load_model(run: RunDir) -> keras.Model:
    """The saved model of a finished run."""
    path = run.path / "model.keras"
    if not run.is_complete() or not path.is_file():
        raise FileNotFoundError(f"{run.path}: no finished training run (expected model.keras and metrics.json)")
    return keras.models.load_model(path, compile=False)


def load_history(run: RunDir) -> pd.DataFrame:
    """The per-epoch losses of a finished run."""
    return pd.read_csv(run.path / "history.csv")
