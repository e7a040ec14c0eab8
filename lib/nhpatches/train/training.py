"""How a model of the study is trained, saved and loaded back.

Models are named by the specs of :mod:`nhpatches.nets.specs`. Training goes through
``keras.Model.fit`` with the losses of :mod:`nhpatches.nets.losses`; the result (``model.keras``,
``history.csv``, ``metrics.json``) is cached in a :class:`~nhpatches.core.cache.RunDir`. Joint
denoise-and-describe fine-tuning is in :mod:`.joint`; resumable long runs in :mod:`.resumable`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import keras
import pandas as pd

from nhpatches.core.cache import RunDir, atomic_path
from nhpatches.core.config import Profile
from nhpatches.nets import models
from nhpatches.nets.specs import (
    DenoiserSpec,
    DescriptorSpec,
    build_denoiser_network,
    build_descriptor_network,
    descriptor_loss,
    descriptor_mode,
    make_optimizer,
)
from nhpatches.train.accelerator import data_parallel, precision_policy, resolve_jit_compile
from nhpatches.train.batches import (
    DenoisingBatches,
    PatchBank,
    TripletBatches,
)
from nhpatches.train.device import (
    DeviceDenoisingSampler,
    DeviceSteps,
    DeviceTripletSampler,
    EpochPlan,
    SampledTrainer,
    StackedTargetLoss,
    TargetsAsInputs,
    stacked_metrics,
)

# TensorFlow's Python logger warns about tf.function retracing each time a new model is fitted in
# the same process (every notebook does this); the warning is harmless and clutters the output.
logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _denoiser_optimizer(spec: DenoiserSpec) -> keras.optimizers.Optimizer:
    """A fresh optimiser of a denoiser spec."""
    return make_optimizer(spec.optimizer, spec.learning_rate, spec.momentum, spec.nesterov)


def build_denoiser(spec: DenoiserSpec, jit_compile: bool | str = "auto") -> keras.Model:
    """The denoiser network of a spec, compiled with its loss and optimiser."""
    model = build_denoiser_network(spec)
    model.compile(optimizer=_denoiser_optimizer(spec), loss=spec.loss, metrics=["mae", "mse"], jit_compile=jit_compile)
    return model


def build_sampled_denoiser_trainer(
    spec: DenoiserSpec,
    train: PatchBank,
    batch_size: int,
    steps: int | None,
    seed: int,
    jit_compile: bool | str = "auto",
) -> tuple[keras.Model, SampledTrainer]:
    """(denoiser, trainer) for device sampling: the trainer draws (noisy, clean) batches of ``train`` on the device.

    ``steps`` None: one shuffled pass per epoch (see DeviceDenoisingSampler). Same loss and
    metrics ("mae", "mse") as build_denoiser.
    """
    if train.noisy is None:
        raise ValueError("denoiser training needs noisy patches; the bank has none")
    model = build_denoiser_network(spec)
    sampler = DeviceDenoisingSampler(train.noisy, train.clean, batch_size, steps, seed, name="sampler")
    trainer = SampledTrainer(model, sampler, "denoise", name=f"{spec.name}_trainer")
    trainer.compile(
        optimizer=_denoiser_optimizer(spec),
        loss=StackedTargetLoss(spec.loss),
        metrics=stacked_metrics(),
        jit_compile=jit_compile,
    )
    return model, trainer


def _fresh_descriptor(spec: DescriptorSpec, initial: keras.Model | None) -> keras.Model:
    """The spec's network, starting from a copy of ``initial``'s weights when fine-tuning."""
    descriptor = build_descriptor_network(spec)
    if initial is not None:
        descriptor.set_weights(initial.get_weights())
    return descriptor


def _compiled(
    trainer: keras.Model, spec: DescriptorSpec, jit_compile: bool | str, learning_rate: Any = None
) -> keras.Model:
    """Compile a descriptor trainer with the spec's loss and a fresh optimiser.

    ``learning_rate``: a schedule replacing the spec's constant rate.
    """
    trainer.compile(
        optimizer=make_optimizer(spec.optimizer, spec.learning_rate if learning_rate is None else learning_rate),
        loss=descriptor_loss(spec),
        jit_compile=jit_compile,
    )
    return trainer


def build_descriptor_trainer(
    spec: DescriptorSpec,
    initial: keras.Model | None = None,
    jit_compile: bool | str = "auto",
    learning_rate: Any = None,
) -> tuple[keras.Model, keras.Model]:
    """(descriptor, trainer): the trainer shares weights and outputs stacked descriptors for the loss.

    With ``initial`` the descriptor starts from a copy of its weights (fine-tuning); ``learning_rate``
    (e.g. a :class:`~nhpatches.train.resumable.WarmupCosine`) replaces the spec's constant rate.
    """
    descriptor = _fresh_descriptor(spec, initial)
    build = models.build_pair_trainer if descriptor_mode(spec) == "pair" else models.build_triplet_trainer
    return descriptor, _compiled(build(descriptor), spec, jit_compile, learning_rate)


def build_sampled_descriptor_trainer(
    spec: DescriptorSpec,
    patches,
    batch_size: int,
    seed: int,
    initial: keras.Model | None = None,
    jit_compile: bool | str = "auto",
) -> tuple[keras.Model, SampledTrainer]:
    """(descriptor, trainer) for device sampling: the trainer draws its batches from ``patches`` on the device.

    ``patches`` is one source of a bank, uint8 (points, 16, P, P); batches follow TripletBatches
    (see DeviceTripletSampler) with the spec's mode and flip. Same loss and optimiser as
    build_descriptor_trainer; validation takes host TripletBatches.
    """
    descriptor = _fresh_descriptor(spec, initial)
    mode = descriptor_mode(spec)
    sampler = DeviceTripletSampler(patches, batch_size, mode, spec.flip, seed, name="sampler")
    return descriptor, _compiled(SampledTrainer(descriptor, sampler, mode, name=f"{mode}_trainer"), spec, jit_compile)


def denoiser_epochs(spec: DenoiserSpec, profile: Profile) -> tuple[int, int]:
    """(epochs trained, epoch whose weights are kept) of a denoiser under a profile."""
    if spec.architecture == "dncnn":
        keep = profile.dncnn_keep_epoch or profile.epochs_dncnn
        if not 1 <= keep <= profile.epochs_dncnn:
            raise ValueError(f"dncnn_keep_epoch {keep} is outside 1..{profile.epochs_dncnn}")
        return profile.epochs_dncnn, keep
    return profile.epochs_unet, profile.epochs_unet


def descriptor_epochs(spec: DescriptorSpec, profile: Profile) -> int:
    """Epochs of a descriptor run: profile.epochs_retrain when fine-tuning, else epochs_descriptor."""
    return profile.epochs_retrain if spec.init_from else profile.epochs_descriptor


def train_denoiser(
    spec: DenoiserSpec, train: PatchBank, validation: PatchBank, profile: Profile, seed: int, run: RunDir
) -> dict:
    """Train a denoiser on (noisy, clean) pairs; keep the weights of its kept epoch; save in ``run``."""
    keras.utils.set_random_seed(seed)
    batch = profile.dncnn_batch_size if spec.architecture == "dncnn" else profile.denoiser_batch_size
    epochs, keep = denoiser_epochs(spec, profile)
    jit_compile = resolve_jit_compile(profile.jit_compile)
    val_data = DenoisingBatches(validation, batch, profile.validation_steps, seed + 1, frozen=True)
    with data_parallel(profile.devices, (batch,)):
        with precision_policy(profile.mixed_precision):
            if profile.device_sampling:
                model, trainer = build_sampled_denoiser_trainer(
                    spec, train, batch, profile.steps_per_epoch, seed, jit_compile
                )
            else:
                model = trainer = build_denoiser(spec, jit_compile)
        export = build_denoiser_network(spec) if profile.mixed_precision else None  # float32, for saving
        if profile.device_sampling:
            sampler = trainer.sampler
            return fit_and_save(
                model,
                trainer,
                DeviceSteps(sampler.steps, batch, profile.devices),
                TargetsAsInputs(val_data),
                epochs,
                patches_per_item=1,
                run=run,
                keep_epoch=keep,
                export=export,
                callbacks=[EpochPlan(sampler)],
            )
        train_data = DenoisingBatches(train, batch, profile.steps_per_epoch, seed)
        return fit_and_save(
            model, trainer, train_data, val_data, epochs, patches_per_item=1, run=run, keep_epoch=keep, export=export
        )


def train_descriptor(
    spec: DescriptorSpec,
    train: PatchBank,
    validation: PatchBank,
    profile: Profile,
    seed: int,
    run: RunDir,
    source: str = "clean",
    initial: keras.Model | None = None,
) -> dict:
    """Train a descriptor on triplets (or pairs) of ``source`` patches; save it in ``run``.

    ``source`` is "clean", "noisy" or "denoised" (the banks' attribute); ``initial`` is the trained
    model to fine-tune when ``spec.init_from`` is set.
    """
    if (initial is None) != (spec.init_from is None):
        raise ValueError(f"descriptor {spec.name!r}: init_from={spec.init_from!r} needs exactly that trained model")
    keras.utils.set_random_seed(seed)
    mode = descriptor_mode(spec)
    steps = profile.descriptor_steps_per_epoch
    jit_compile = resolve_jit_compile(profile.jit_compile)
    val_batch = min(profile.batch_size, validation.num_points)
    val_data = TripletBatches(
        validation, val_batch, profile.descriptor_validation_steps, seed + 1, mode, spec.flip, source, frozen=True
    )
    per_item = 3 if mode == "triplet" else 2
    with data_parallel(profile.devices, (profile.batch_size, val_batch)):
        with precision_policy(profile.mixed_precision):
            if profile.device_sampling:
                if source not in ("clean", "noisy", "denoised") or getattr(train, source) is None:
                    raise ValueError(
                        f"source must be 'clean', 'noisy' or 'denoised' and present in the bank, got {source!r}"
                    )
                descriptor, trainer = build_sampled_descriptor_trainer(
                    spec, getattr(train, source), profile.batch_size, seed, initial, jit_compile
                )
                train_data = DeviceSteps(steps, profile.batch_size, profile.devices)
            else:
                descriptor, trainer = build_descriptor_trainer(spec, initial, jit_compile)
                train_data = TripletBatches(train, profile.batch_size, steps, seed, mode, spec.flip, source)
        export = build_descriptor_network(spec) if profile.mixed_precision else None  # float32, for saving
        metrics = fit_and_save(
            descriptor, trainer, train_data, val_data, descriptor_epochs(spec, profile), per_item, run, export=export
        )
    metrics["source"] = source
    metrics["init_from"] = spec.init_from
    return metrics


class EpochLog(keras.callbacks.Callback):
    """One line per epoch: model, epoch, loss, validation loss and seconds (visible in JupyterLab)."""

    def __init__(self, label: str, epochs: int) -> None:
        super().__init__()
        self.label, self.epochs, self._start = label, epochs, 0.0

    def on_epoch_begin(self, epoch, logs=None) -> None:
        """Start the epoch's clock."""
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        """Print the epoch's line."""
        logs = logs or {}
        parts = [f"{key} {logs[key]:.4g}" for key in ("loss", "val_loss") if key in logs]
        print(
            f"[{self.label}] epoch {epoch + 1}/{self.epochs}  "
            + "  ".join(parts)
            + f"  {time.perf_counter() - self._start:.1f} s",
            flush=True,
        )


class KeepEpoch(keras.callbacks.Callback):
    """Remember the weights of one epoch (1-based), to restore after training (R §3.1: epoch 5 of 6)."""

    def __init__(self, model: keras.Model, epoch: int) -> None:
        super().__init__()
        self.target, self.epoch = model, epoch
        self.weights: list[Any] | None = None

    def on_epoch_end(self, epoch, logs=None) -> None:
        """Copy the weights at the end of the kept epoch."""
        if epoch + 1 == self.epoch:
            self.weights = [w.copy() for w in self.target.get_weights()]


def fit_and_save(
    model: keras.Model,
    trainer: keras.Model,
    train_data: keras.utils.PyDataset,
    val_data: keras.utils.PyDataset,
    epochs: int,
    patches_per_item: int,
    run: RunDir,
    keep_epoch: int | None = None,
    export: keras.Model | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> dict:
    """Fit ``trainer``, save ``model`` (its ``keep_epoch`` weights) and the history; return metrics.

    ``export``: a float32 copy of ``model``'s architecture that receives the kept weights and is
    saved instead (after mixed-precision training, so the saved model is the plain float32 network).
    """
    keep_epoch = keep_epoch or epochs
    keeper = KeepEpoch(model, keep_epoch)
    start = time.perf_counter()
    history = trainer.fit(
        train_data,
        validation_data=val_data,
        epochs=epochs,
        verbose=0,
        callbacks=[*(callbacks or []), EpochLog(model.name, epochs), keeper],
    )
    seconds = time.perf_counter() - start
    model.set_weights(keeper.weights)
    if export is not None:
        export.set_weights(keeper.weights)
        model = export
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    with atomic_path(run.file("history.csv")) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(run.file("model.keras")) as tmp:
        model.save(tmp)
    fed = epochs * len(train_data) * train_data.batch_size * patches_per_item
    final = frame.iloc[keep_epoch - 1].drop("epoch").to_dict()
    return {
        "epochs": int(epochs),
        "kept_epoch": int(keep_epoch),
        "train_seconds": seconds,
        "patches_fed": int(fed),
        "patches_per_second": fed / seconds,
        "final": {k: float(v) for k, v in final.items()},
        "parameters": int(model.count_params()),
        "backend": keras.backend.backend(),
    }


def load_model(run: RunDir) -> keras.Model:
    """The saved model of a finished run."""
    path = run.path / "model.keras"
    if not run.is_complete() or not path.is_file():
        raise FileNotFoundError(f"{run.path}: no finished training run (expected model.keras and metrics.json)")
    return keras.models.load_model(path, compile=False)


def load_history(run: RunDir) -> pd.DataFrame:
    """The per-epoch losses of a finished run."""
    return pd.read_csv(run.path / "history.csv")
