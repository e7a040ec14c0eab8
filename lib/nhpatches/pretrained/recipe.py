"""The release recipes: the configuration of the descriptors the package ships.

``nhpatches.describe()`` ships ``RECIPES["base"]``'s and ``nhpatches.detect_and_describe()``
``RECIPES["cpu"]``'s.

This is not a notebook profile. The notebooks' ``cpu`` profile is sized so that the teaching
series runs in minutes; the release recipe has a budget of its own (about an hour on 2 CPU cores)
and one goal: a descriptor that works on other people's patches and photographs, clean or noisy.

It trains with the library's own stack (:mod:`nhpatches.train`): the HardNet-style network
(:func:`nhpatches.nets.models.build_hardnet`, no denoiser in front), HardNet's in-batch
hardest-negative loss (anchor swap, margin 1) on batches of matching pairs
(:class:`~nhpatches.train.batches.TripletBatches` in "pair" mode, one of the 8 symmetries of the
square per pair), Adam with a linear warm-up and a cosine decay to zero
(:class:`~nhpatches.train.resumable.WarmupCosine`), and the resumable loop of
:mod:`nhpatches.train.resumable` (a checkpoint every epoch; a killed run resumes with the same
batches). Steps alternate between two sources of pairs:

* **patch pairs**: every 3-D point of the training photos of the embedded dataset (split ``a``,
  train side, 16 images per point), with Gaussian noise drawn per patch after the cut
  (:class:`~nhpatches.train.augment.NoiseAugment`: none for ``clean_fraction`` of them, else
  σ ~ U[0, ``sigma_max``]);
* **camera pairs** (``camera_steps``): the same training photos seen through random homographies,
  made noisy as whole images *before* the patches are cut at their SIFT keypoints by the image
  pipeline's own :func:`nhpatches.data.regions.extract_patches` (:mod:`nhpatches.data.camera`),
  at the region ``magnification`` that ``detect_and_describe`` cuts; in the ``cpu`` recipe half of
  the rounds then go through the pipeline's default "auto" denoiser (non-local means on a noisy
  view), since that is what the descriptor sees in ``detect_and_describe``'s default pipeline, and
  the keypoint jitter grows with a view's noise (``jitter_per_sigma``: x2 at σ 50), as a detector's
  error does (``scripts/keypoint_noise.py``).

Model selection uses the held-out test photos of split ``a`` only: after every epoch, the
HPatches matching mAP of their first ``validation_points`` patch points re-noised at each σ of
``validation_sigmas``, and of camera points cut from noisy views of them at the same σ; the epoch
with the best mean is exported. Real HPatches data are never looked at here.

    python scripts/train_pretrained.py --out runs/release-base --profile base   # describe()'s, from scratch
    python scripts/train_pretrained.py --out runs/release --init runs/release-base/export   # detect_and_describe()'s
    python scripts/train_pretrained.py --out runs/release --profile gpu
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nhpatches import data
from nhpatches.core import config
from nhpatches.data import camera, sweep
from nhpatches.pretrained.release_data import load_release_data, training_batches, validation_score

#: Name of the released descriptor (the export is "none+<name>": no denoiser in front).
RELEASE_DESCRIPTOR = "hardnet_release"


@dataclasses.dataclass(frozen=True)
class ReleaseRecipe:
    """Every setting of a release training run; a checkpoint only resumes under the same recipe."""

    profile: str = "cpu"
    # data: the embedded dataset (seed 0) at this many patches per sequence, split a
    data_patches: int = 1024
    split: str = "a"
    # optimisation
    batch_size: int = 512  # matching pairs per batch (distinct 3-D points)
    steps_per_epoch: int = 100  # patch steps + camera steps
    epochs: int = 36
    learning_rate: float = 1e-3
    warmup_epochs: int = 1
    margin: float = 1.0
    # augmentation of the patch pairs
    sigma_max: float = 60.0
    clean_fraction: float = 0.25
    symmetries: bool = True  # the 8 rotations/mirrors of the square, shared by a pair
    # camera pairs: every other step when on (steps_per_epoch must then be even)
    camera_steps: bool = True
    camera: camera.CameraSettings = dataclasses.field(default_factory=lambda: camera.CameraSettings(magnification=8.0))
    # fine-tuning: start from the weights of an export (``describe(weights=...)`` folder), checked by sha256
    init_weights: str | None = None
    init_sha256: str | None = None
    # model selection (held-out embedded test photos)
    validation_points: int = 64
    validation_sigmas: tuple[float, ...] = (0.0, 25.0, 50.0)
    seed: int = 0
    # accelerator settings
    mixed_precision: str | None = None
    jit_compile: bool | str = "auto"  # XLA measured 0.5-0.6x slower on the 2-core CPU (README, CPU speed)

    @property
    def total_steps(self) -> int:
        """Training steps of the whole run."""
        return self.steps_per_epoch * self.epochs

    @property
    def magnification(self) -> float:
        """Half-width of the region the descriptor was trained on, in units of a keypoint's σ = size / 2."""
        return self.camera.magnification


#: The recipes of ``scripts/train_pretrained.py --profile``. ``base`` trains from scratch on patch
#: pairs only: ``describe()``'s shipped descriptor (``resources/pretrained``). ``cpu`` fine-tunes
#: that export on patch and camera pairs at the image pipeline's region: the descriptor
#: ``detect_and_describe()`` ships (``resources/photographs``). ``gpu`` is the photographs recipe in
#: one run from scratch, with HardNet's batch of 1024 pairs, about 10x the pairs seen, and bf16.
RECIPES: dict[str, ReleaseRecipe] = {
    "smoke": ReleaseRecipe(
        profile="smoke",
        data_patches=40,
        batch_size=16,
        steps_per_epoch=4,
        epochs=2,
        warmup_epochs=0,
        camera=camera.CameraSettings(views=4, rounds=1, points=40, magnification=8.0),
        validation_points=8,
        validation_sigmas=(0.0, 30.0),
    ),
    "base": ReleaseRecipe(profile="base", camera_steps=False, camera=camera.CameraSettings(magnification=5.0)),
    # starts from describe()'s export (resources/pretrained; copy it to runs/release-base/export, or --init)
    "cpu": ReleaseRecipe(
        epochs=6,
        learning_rate=5e-4,
        camera=camera.CameraSettings(magnification=8.0, rounds=4, denoise_fraction=0.5, jitter_per_sigma=0.02),
        init_weights="runs/release-base/export",
        init_sha256="f07eec752b59c968008e72a58db8a84914805e79e6b2316c2ea3fccba31ee424",
    ),
    "gpu": ReleaseRecipe(
        profile="gpu",
        batch_size=1024,
        steps_per_epoch=300,
        epochs=60,
        camera=camera.CameraSettings(rounds=12, magnification=8.0, denoise_fraction=0.5, jitter_per_sigma=0.02),
        mixed_precision="bf16",
        jit_compile=True,
    ),
}


def recipe_for(profile: str, **overrides: Any) -> ReleaseRecipe:
    """The named recipe with fields replaced (e.g. ``epochs=2``)."""
    if profile not in RECIPES:
        raise ValueError(f"unknown release profile {profile!r}; expected one of {sorted(RECIPES)}")
    return dataclasses.replace(RECIPES[profile], **overrides)


def recipe_json(recipe: ReleaseRecipe) -> dict[str, Any]:
    """The recipe as JSON-ready data (tuples as lists), with the region it trains at."""
    return {**json.loads(json.dumps(dataclasses.asdict(recipe))), "magnification": recipe.magnification}


def release_spec(recipe: ReleaseRecipe):
    """The DescriptorSpec of the release: what is trained, exactly (the export's manifest records it)."""
    from nhpatches.nets import specs

    return specs.DescriptorSpec(
        RELEASE_DESCRIPTOR,
        network="hardnet",
        loss="hardest_negative",
        distance="euclidean",
        anchor_swap=True,
        margin=recipe.margin,
        flip="d4" if recipe.symmetries else "none",
        optimizer="adam",
        learning_rate=recipe.learning_rate,
        train_on="augmented",
        family="extension",
    )


# --------------------------------------------------------------------------- the run


def _build(recipe: ReleaseRecipe):
    """(descriptor, trainer, schedule) of the recipe, through the library's trainer builder."""
    from nhpatches.train import resumable, training

    schedule = resumable.WarmupCosine(
        recipe.learning_rate, recipe.warmup_epochs * recipe.steps_per_epoch, recipe.total_steps
    )
    descriptor, trainer = training.build_descriptor_trainer(
        release_spec(recipe), jit_compile=training.resolve_jit_compile(recipe.jit_compile), learning_rate=schedule
    )
    if recipe.init_weights is not None:
        descriptor.set_weights(initial_weights(recipe).descriptor.get_weights())
    return descriptor, trainer, schedule


def initial_weights(recipe: ReleaseRecipe):
    """The export a fine-tuning recipe starts from, checked against the recipe's sha256 of its weights."""
    from nhpatches import pretrained
    from nhpatches.pretrained.load import manifest_path_of

    folder = Path(recipe.init_weights or "")
    manifest_path = manifest_path_of(folder if folder.is_absolute() else config.project_root() / folder)
    manifest = pretrained.read_manifest(manifest_path)
    if recipe.init_sha256 is not None and manifest.get("sha256") != recipe.init_sha256:
        raise ValueError(
            f"{manifest_path}: initial weights have sha256 {manifest.get('sha256')}, "
            f"the recipe expects {recipe.init_sha256}"
        )
    loaded = pretrained.load_pipeline(manifest_path.parent)
    if loaded.denoiser is not None:
        raise ValueError(f"{manifest_path}: initial weights must be a descriptor without a denoiser (none+...)")
    return loaded


def train_release(
    out_dir: str | os.PathLike[str],
    recipe: ReleaseRecipe,
    data_root: Path | None = None,
    print_fn: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) the release descriptor into ``out_dir``; return the final state (with ``best_weights``).

    ``stop_after`` ends the call after that many epochs of this call (tests use it to simulate a killed run).
    """
    import keras

    from nhpatches.train import resumable
    from nhpatches.train.accelerator import precision_policy

    keras.utils.set_random_seed(recipe.seed)
    release_data = load_release_data(recipe, data_root)
    info = {
        "data": {
            "dataset": release_data.data_dir.name,
            "fingerprint": release_data.fingerprint,
            "split": recipe.split,
            "train_sequences": list(release_data.train_sequences),
            "train_points": len(release_data.train),
            "camera_points": 0 if release_data.camera is None else len(release_data.camera),
            "validation_sequences": list(release_data.validation_sequences),
            "validation_points_per_sequence": recipe.validation_points,
        }
    }
    with precision_policy(recipe.mixed_precision):
        descriptor, trainer, schedule = _build(recipe)
    run = resumable.ResumableRun(
        out_dir,
        descriptor,
        trainer,
        {"recipe": recipe_json(recipe)},
        recipe.epochs,
        lambda model: validation_score(model, release_data.validation, recipe.validation_sigmas, recipe.seed),
        schedule,
        info,
        print_fn,
    )
    if run.state["data"]["fingerprint"] != release_data.fingerprint:
        raise ValueError(
            f"{run.out / resumable.STATE_NAME}: checkpoint trained on dataset "
            f"{run.state['data']['fingerprint']}, but {release_data.data_dir} is {release_data.fingerprint}"
        )
    if not run.resumed:
        run.emit(f"release recipe {recipe_json(recipe)}")
        run.emit(
            f"data {release_data.data_dir.name}: {len(release_data.train)} patch points in "
            f"{len(release_data.train_sequences)} sequences, {info['data']['camera_points']} camera points; "
            f"validation: {len(release_data.validation_sequences)} held-out sequences "
            f"x {recipe.validation_points} points"
        )
    state = run.fit(training_batches(recipe, release_data), items_per_batch=2, stop_after=stop_after)
    return {**state, "best_weights": run.best}


def export_release(
    out_dir: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    recipe: ReleaseRecipe,
    extra: Mapping[str, Any] | None = None,
    data_root: Path | None = None,
) -> Path:
    """Export the best epoch of a finished run as a ``describe(weights=...)`` export; return its manifest.

    The manifest gets the recipe (and the region it trains at), the training data, the machine, the
    wall time, the validation curve, the run's log, and ``export_check``: the exported pipeline
    against the trained network on held-out patches re-noised at σ 25 (float16 storage moves a
    descriptor by ~1e-3).
    """
    from nhpatches import pretrained
    from nhpatches.train import resumable

    run = Path(run_dir)
    descriptor, trainer, _ = _build(recipe)
    trainer.optimizer.build(trainer.trainable_variables)
    state, best = resumable.load_checkpoint(run, {"recipe": recipe_json(recipe)}, descriptor, trainer)
    if state is None or state["epochs_done"] < recipe.epochs:
        done = 0 if state is None else state["epochs_done"]
        raise ValueError(f"{run}: the run has finished {done} of {recipe.epochs} epochs; train it to the end first")
    if best is not None:
        descriptor.set_weights(best)
    log_path = run / resumable.LOG_NAME
    info = {
        "recipe": recipe_json(recipe),
        "training_data": state["data"],
        "machine": state["machine"],
        "wall_seconds": round(state["train_seconds"], 1),
        "best_epoch": state["best_epoch"],
        "validation_curve": state["history"],
        "log": log_path.read_text().splitlines() if log_path.is_file() else [],
        **(extra or {}),
    }
    manifest_path = pretrained.export_pipeline(out_dir, descriptor, release_spec(recipe), info=info)
    validation = load_release_data(dataclasses.replace(recipe, camera_steps=False), data_root).validation
    patches = np.concatenate(
        [
            sweep.renoise(clean, 25.0, data.sequence_noise_seed(recipe.seed, name)).reshape(-1, *clean.shape[-2:])
            for name, clean in validation.items()
        ]
    )
    patches = patches[np.random.default_rng(0).permutation(len(patches))[:2048]]
    manifest = pretrained.read_manifest(manifest_path)
    manifest["export_check"] = {
        **pretrained.check_export(manifest_path, patches, descriptor),
        "input": "held-out validation patches re-noised at σ 25 (fixed seed 0)",
    }
    pretrained.write_manifest(manifest_path, manifest)
    return manifest_path
