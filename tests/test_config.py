"""Profiles and HPatches constants."""

from __future__ import annotations

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
    """The gpu profile trains more than cpu, which trains more than smoke."""
    work = {
        name: p.descriptor_steps_per_epoch * p.epochs_descriptor * p.batch_size for name, p in config.PROFILES.items()
    }
    assert work["smoke"] < work["cpu"] < work["gpu"]


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
