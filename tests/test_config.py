"""Profiles and HPatches constants."""

from __future__ import annotations

from pathlib import Path

import pytest

from nhpatches.core import config


def test_image_types_order() -> None:
    """16 images: ref, then e1..e5, h1..h5, t1..t5."""
    assert config.IMAGE_TYPES[:2] == ("ref", "e1") and config.IMAGE_TYPES[-1] == "t5"
    assert len(config.IMAGE_TYPES) == 16 and config.image_index("h1") == 6
    with pytest.raises(ValueError, match="x9"):
        config.image_index("x9")


def test_level_images_cover_every_image_once() -> None:
    """Each image belongs to exactly one noise level, with ref at the easy level."""
    images = sorted(i for group in config.LEVEL_IMAGES.values() for i in group)
    assert images == list(range(16)) and 0 in config.LEVEL_IMAGES["easy"]


def test_get_profile_overrides_and_errors() -> None:
    """Overrides replace fields; unknown names and fields are rejected with their name."""
    profile = config.get_profile("smoke", epochs_unet=7)
    assert profile.epochs_unet == 7 and profile.name == "smoke"
    with pytest.raises(ValueError, match="huge"):
        config.get_profile("huge")
    with pytest.raises(ValueError, match="not_a_field"):
        config.get_profile("cpu", not_a_field=1)


def test_profiles_grow_from_smoke_to_gpu() -> None:
    """The host training loop a profile sets up draws more triplets per descriptor run from smoke to cpu to
    gpu: counted from the batches TripletBatches builds with the profile's settings, times the epochs
    training.descriptor_epochs gives a descriptor trained from scratch."""
    from types import SimpleNamespace

    import numpy as np

    from nhpatches.nets import specs
    from nhpatches.train import training
    from nhpatches.train.batches import TripletBatches, bank_from_sequences

    clean = np.zeros((16, 64, 4, 4), np.uint8)
    bank = bank_from_sequences({"i_a": SimpleNamespace(clean=clean, noisy=clean)})
    spec = specs.DESCRIPTORS["baseline"]
    drawn = {}
    for name, profile in config.PROFILES.items():
        batches = TripletBatches(bank, profile.batch_size, profile.descriptor_steps_per_epoch, seed=0)
        triplets = sum(len(batches[index][0][0]) for index in range(len(batches)))
        drawn[name] = triplets * training.descriptor_epochs(spec, profile)
    assert drawn["smoke"] < drawn["cpu"] < drawn["gpu"]
    assert drawn["gpu"] == 40 * 100_000  # the report's 40 epochs of 100,000 triplets


def test_gpu_profile_is_the_reports_schedule() -> None:
    """R Table 1 and the coursework: U-Net 40, DnCNN 6 keeping epoch 5, descriptors 40 x 100,000 triplets
    of batch 50 (10,000 for validation), retrained +13; the denoisers make one pass per epoch."""
    gpu = config.get_profile("gpu")
    assert (gpu.epochs_unet, gpu.epochs_dncnn, gpu.dncnn_keep_epoch) == (40, 6, 5)
    assert (gpu.epochs_descriptor, gpu.epochs_retrain) == (40, 13)
    assert gpu.batch_size == gpu.denoiser_batch_size == 50
    assert gpu.descriptor_steps_per_epoch * gpu.batch_size == 100_000
    assert gpu.descriptor_validation_steps * gpu.batch_size == 10_000
    assert gpu.steps_per_epoch is None and gpu.train_patches is None and gpu.test_patches is None
    for profile in config.PROFILES.values():  # the kept DnCNN epoch exists in every profile
        assert profile.dncnn_keep_epoch is None or 1 <= profile.dncnn_keep_epoch <= profile.epochs_dncnn


def test_display_path_is_relative_inside_the_project(tmp_path, monkeypatch) -> None:
    """Inside the project root a path is shown relative to it; outside, or relative, it is shown as given."""
    root = tmp_path / "project"
    (root / "data" / "set").mkdir(parents=True)
    monkeypatch.setenv("NHPATCHES_ROOT", str(root))
    assert config.display_path(root / "data" / "set") == Path("data/set")
    assert config.display_path(str(root / "data" / ".." / "data" / "set")) == Path("data/set")
    assert config.display_path(root) == Path(".")
    outside = tmp_path / "elsewhere" / "set"
    assert config.display_path(outside) == outside
    assert config.display_path(root.parent / "project-other" / "set") == root.parent / "project-other" / "set"
    assert config.display_path("data/set") == Path("data/set")
