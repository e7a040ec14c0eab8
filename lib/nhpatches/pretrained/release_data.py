"""The release recipe's data: training points, camera points, held-out validation, and the score of an epoch.

See :mod:`nhpatches.pretrained.recipe` for the recipe these serve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nhpatches import data, evaluation
from nhpatches.core import config
from nhpatches.data import camera, embedded, sweep
from nhpatches.nets.inference import describe_patches

if TYPE_CHECKING:
    from nhpatches.pretrained.recipe import ReleaseRecipe


@dataclasses.dataclass(frozen=True)
class ReleaseData:
    """Training points and held-out validation points, uint8 (points, views, 32, 32)."""

    train: np.ndarray  # patch points, 16 views
    camera: np.ndarray | None  # camera points of the training photos
    validation: dict[str, np.ndarray]  # name -> (16, N, 32, 32): "<seq>" clean patches, "camera<σ>/<photo>" noisy
    data_dir: Path
    train_sequences: tuple[str, ...]
    validation_sequences: tuple[str, ...]
    fingerprint: str


def _photos(stems: list[str]) -> dict[str, np.ndarray]:
    """The bundled photos of sequence stems, as the embedded build loads them."""
    files = {stem: file_name for file_name, stem in embedded.PHOTOS}
    return {stem: embedded.load_photo(files[stem]) for stem in stems}


def load_release_data(recipe: ReleaseRecipe, data_root: Path | None = None) -> ReleaseData:
    """Build (once) and load the embedded dataset of the recipe; cut the camera points of its photos."""
    images = 6 if recipe.profile == "smoke" else None
    tag = f"embedded_p{recipe.data_patches}_i{'all' if images is None else images}_s0"
    data_dir = embedded.ensure_embedded_dataset(
        (data_root or config.data_root()) / tag, seed=0, max_patches_per_sequence=recipe.data_patches, images=images
    )
    train = data.load_dataset(data_dir, recipe.split, "train")
    test = data.load_dataset(data_dir, recipe.split, "test", max_patches=recipe.validation_points)
    if any(seq.clean is None for seq in [*train.values(), *test.values()]):
        raise ValueError(f"{data_dir}: the release recipe needs clean patches in every sequence")
    points = np.concatenate([np.swapaxes(np.asarray(seq.clean), 0, 1) for seq in train.values()])
    validation = {name: np.asarray(seq.clean) for name, seq in test.items()}
    camera_points = None
    if recipe.camera_steps:
        stems = sorted({name.split("_", 1)[1] for name in train})
        camera_points = camera.camera_points(_photos(stems), recipe.camera, seed=recipe.seed)
        held_out = _photos(sorted({name.split("_", 1)[1] for name in test}))
        views = dataclasses.replace(recipe.camera, views=16, points=recipe.validation_points)
        denoised = recipe.camera.denoise_fraction > 0  # then validate the default ("auto") pipeline's views
        for sigma in recipe.validation_sigmas:
            for index, (stem, photo) in enumerate(held_out.items()):
                rng = np.random.default_rng([recipe.seed, 1000 + index, int(sigma)])
                cut = camera.camera_round(photo, views, rng, sigmas=np.full(16, sigma), denoise=denoised)
                validation[f"camera{sigma:g}/{stem}"] = np.swapaxes(cut, 0, 1)
    return ReleaseData(
        points, camera_points, validation, data_dir, tuple(train), tuple(test), data.dataset_fingerprint(data_dir)
    )


def training_batches(recipe: ReleaseRecipe, release_data: ReleaseData):
    """The recipe's training batches: patch pairs, interleaved with camera pairs (``.at(epoch, step)``)."""
    from nhpatches.train import augment, batches

    flip = "d4" if recipe.symmetries else "none"
    noise = augment.NoiseAugment(recipe.sigma_max, recipe.clean_fraction)
    sources: list[tuple[np.ndarray, augment.NoiseAugment | None]] = [(release_data.train, noise)]
    if release_data.camera is not None:
        if recipe.steps_per_epoch % 2:
            raise ValueError(f"steps_per_epoch {recipe.steps_per_epoch} must be even to alternate two sources")
        sources.append((release_data.camera, None))  # the camera points carry their noise already
    steps = recipe.steps_per_epoch // len(sources)
    parts = [
        batches.TripletBatches(
            batches.PatchBank(points, None, np.zeros(len(points), np.int32), ("train",)),
            recipe.batch_size,
            steps,
            seed=recipe.seed + 7919 * index,
            mode="pair",
            flip=flip,
            noise=part_noise,
        )
        for index, (points, part_noise) in enumerate(sources)
    ]
    return batches.InterleavedBatches(parts)


def validation_score(
    descriptor, sequences: Mapping[str, np.ndarray], sigmas: tuple[float, ...], seed: int = 0
) -> dict[str, float]:
    """HPatches matching mAP of the held-out points at each σ, and their mean ``val_score``.

    Patch points are re-noised at σ after the cut; camera points were cut from views made noisy at σ.
    """
    scores = {}
    patch_names = [name for name in sequences if not name.startswith("camera")]
    for sigma in sigmas:
        described = {
            name: describe_patches(
                descriptor, sweep.renoise(sequences[name], sigma, data.sequence_noise_seed(seed, name))
            )
            for name in patch_names
        }
        scores[f"val_matching_sigma{sigma:g}"] = evaluation.evaluate_matching(described, tuple(described))["mAP"]
        cut = {
            name: describe_patches(descriptor, sequences[name])
            for name in sequences
            if name.startswith(f"camera{sigma:g}/")
        }
        if cut:
            scores[f"val_camera_sigma{sigma:g}"] = evaluation.evaluate_matching(cut, tuple(cut))["mAP"]
    scores["val_score"] = float(np.mean(list(scores.values())))
    return scores
