"""Joint denoise-and-describe fine-tuning (notebook 09): a denoiser and a descriptor trained end to end.

:func:`compile_joint_trainer` copies both networks and compiles the joint trainer of
:func:`nhpatches.nets.models.build_joint_trainer` (which only wires the two networks together)
with the descriptor loss plus a weighted MAE on the denoiser's output.
"""

from __future__ import annotations

import keras

from nhpatches.core.cache import RunDir, atomic_path
from nhpatches.core.config import Profile
from nhpatches.nets import losses, models
from nhpatches.nets.specs import DescriptorSpec, build_descriptor_network, make_optimizer
from nhpatches.train.batches import JointBatches, PatchBank
from nhpatches.train.training import descriptor_epochs, fit_and_save


def compile_joint_trainer(
    spec: DescriptorSpec, denoiser: keras.Model, descriptor: keras.Model
) -> tuple[keras.Model, keras.Model, keras.Model]:
    """(denoiser copy, descriptor copy, compiled joint trainer) for end-to-end fine-tuning.

    Loss: spec's hardest-negative loss on the descriptors + ``spec.joint_weight`` x MAE of the
    denoiser's output against the clean patches. With weight 0 the denoiser is still trained,
    through the descriptor loss alone.
    """
    if spec.train_on != "joint" or spec.loss != "hardest_negative":
        raise ValueError(
            f"descriptor {spec.name!r}: joint training needs train_on='joint' and the "
            f"'hardest_negative' loss, got train_on={spec.train_on!r}, loss={spec.loss!r}"
        )
    if not spec.joint_weight >= 0:
        raise ValueError(f"descriptor {spec.name!r}: joint_weight must be >= 0, got {spec.joint_weight!r}")
    denoiser_copy = keras.models.clone_model(denoiser)
    denoiser_copy.set_weights(denoiser.get_weights())
    descriptor_copy = build_descriptor_network(spec)
    descriptor_copy.set_weights(descriptor.get_weights())
    trainer = models.build_joint_trainer(denoiser_copy, descriptor_copy)
    trainer.compile(
        optimizer=make_optimizer(spec.optimizer, spec.learning_rate),
        loss={
            "descriptors": losses.hardest_negative_loss(spec.margin, anchor_swap=spec.anchor_swap),
            "denoised": losses.mean_absolute_error,
        },
        loss_weights={"descriptors": 1.0, "denoised": float(spec.joint_weight)},
    )
    return denoiser_copy, descriptor_copy, trainer


def train_joint(
    spec: DescriptorSpec,
    denoiser: keras.Model,
    descriptor: keras.Model,
    train: PatchBank,
    validation: PatchBank,
    profile: Profile,
    seed: int,
    run: RunDir,
) -> dict:
    """Fine-tune a denoiser and a descriptor end to end; save both in ``run``.

    See :func:`compile_joint_trainer`: ``profile.epochs_retrain`` epochs of
    ``descriptor_steps_per_epoch`` batches of noisy pairs; the descriptor is saved as
    ``model.keras`` and the denoiser as ``denoiser.keras``.
    """
    keras.utils.set_random_seed(seed)
    denoiser_copy, descriptor_copy, trainer = compile_joint_trainer(spec, denoiser, descriptor)
    train_data = JointBatches(train, profile.batch_size, profile.descriptor_steps_per_epoch, seed, spec.flip)
    val_data = JointBatches(
        validation,
        min(profile.batch_size, validation.num_points),
        profile.descriptor_validation_steps,
        seed + 1,
        spec.flip,
        frozen=True,
    )
    metrics = fit_and_save(descriptor_copy, trainer, train_data, val_data, descriptor_epochs(spec, profile), 2, run)
    with atomic_path(run.file("denoiser.keras")) as tmp:
        denoiser_copy.save(tmp)
    metrics.update(source="noisy", init_from=spec.init_from, joint_weight=float(spec.joint_weight))
    return metrics


def load_joint_denoiser(run: RunDir) -> keras.Model:
    """The fine-tuned denoiser of a finished joint run."""
    path = run.path / "denoiser.keras"
    if not run.is_complete() or not path.is_file():
        raise FileNotFoundError(
            f"{run.path}: no finished joint training run (expected denoiser.keras, model.keras and metrics.json)"
        )
    return keras.models.load_model(path, compile=False)
