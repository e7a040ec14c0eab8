"""The release recipe on the library's one training stack: augmentation, batches, camera points,
the resumable loop, the export and what its manifest records."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from nhpatches import pretrained
from nhpatches.data import camera, embedded, extraction
from nhpatches.nets.inference import describe_patches
from nhpatches.pretrained import recipe
from nhpatches.train import augment, batches, resumable
from release_checks import assert_exported_epoch_is_the_best, assert_train_and_validation_photos_are_disjoint


@pytest.fixture(scope="module")
def smoke_recipe() -> recipe.ReleaseRecipe:
    return recipe.recipe_for("smoke")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


# --------------------------------------------------------------------------- augmentation and batches


def test_square_symmetry_is_the_group_of_eight() -> None:
    """Codes 0..7 give the 4 rotations and their mirrors: 8 different patches, the identity for code 0."""
    patch = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    images = [augment.square_symmetry(patch, np.array([code]))[0] for code in range(8)]
    assert np.array_equal(images[0], patch[0])
    assert len({image.tobytes() for image in images}) == 8
    assert np.array_equal(images[2], patch[0, ::-1, ::-1])  # two quarter turns = 180°
    assert np.array_equal(images[1], np.rot90(patch[0]))  # one counter-clockwise quarter turn
    assert np.array_equal(images[4], patch[0, :, ::-1])  # the mirror alone
    mixed = augment.square_symmetry(np.repeat(patch, 3, axis=0), np.array([1, 4, 7]))
    assert all(np.array_equal(mixed[i], images[code]) for i, code in enumerate((1, 4, 7)))


def test_noise_sigmas_mix_clean_and_uniform() -> None:
    sigmas = augment.NoiseAugment(60.0, 0.25).sigmas(np.random.default_rng(0), 20_000)
    assert 0.23 < np.mean(sigmas == 0) < 0.27 and sigmas.max() <= 60.0
    assert abs(sigmas[sigmas > 0].mean() - 30.0) < 1.0  # uniform on [0, 60]
    with pytest.raises(ValueError, match="clean_fraction"):
        augment.NoiseAugment(60.0, 1.5)


def _bank(points: np.ndarray) -> batches.PatchBank:
    return batches.PatchBank(points, None, np.zeros(len(points), np.int32), ("train",))


def test_pair_batches_share_a_symmetry_and_depend_only_on_epoch_and_step() -> None:
    rng = np.random.default_rng(1)
    points = rng.integers(0, 256, (40, 16, 8, 8), dtype=np.uint8)
    identical = np.repeat(points[:, :1], 16, axis=1)  # every image of a point the same patch
    data = batches.TripletBatches(_bank(identical), 12, 3, seed=0, mode="pair", flip="d4")
    (anchors, positives), _targets = data.at(0, 0)
    assert anchors.shape == positives.shape == (12, 8, 8, 1) and anchors.dtype == np.float32
    np.testing.assert_array_equal(anchors, positives)  # one symmetry for both patches of a pair
    assert len({row.tobytes() for row in anchors.reshape(12, -1)}) == 12  # distinct points
    # the 8 symmetries are all drawn, and each anchor is its point's patch under one of them
    plan = data._batch_plan(0)
    assert set(np.unique(data._plan["flip"])) == set(range(8))
    expected = augment.square_symmetry(identical[plan["point"], 0], plan["flip"])
    np.testing.assert_array_equal(anchors[..., 0], expected)
    # a batch is a function of (epoch, step): asking again, after other epochs, gives the same data
    data.at(3, 1)
    np.testing.assert_array_equal(data.at(0, 0)[0][0], anchors)
    assert not np.array_equal(data.at(1, 0)[0][0], anchors)
    # with noise the two patches of a pair differ, by the drawn σ, and the same draw comes back
    noisy = batches.TripletBatches(_bank(identical), 12, 3, mode="pair", flip="d4", noise=augment.NoiseAugment(40, 0))
    (a, p), _ = noisy.at(2, 1)
    assert 5 < np.std(a - p) < 60
    np.testing.assert_array_equal(noisy.at(2, 1)[0][0], a)


def test_interleaved_batches_alternate_sources() -> None:
    ones = np.ones((30, 4, 8, 8), np.uint8)
    twos = np.full((30, 4, 8, 8), 2, np.uint8)
    data = batches.InterleavedBatches(
        [batches.TripletBatches(_bank(part), 10, 3, mode="pair") for part in (ones, twos)]
    )
    assert len(data) == 6 and data.batch_size == 10
    assert [float(data.at(0, step)[0][0].mean()) for step in range(6)] == [1, 2, 1, 2, 1, 2]
    with pytest.raises(ValueError, match="same steps and batch size"):
        batches.InterleavedBatches(
            [batches.TripletBatches(_bank(ones), 10, 3, mode="pair"), batches.TripletBatches(_bank(twos), 10, 2)]
        )


def test_warmup_cosine_schedule() -> None:
    schedule = resumable.WarmupCosine(1e-3, 10, 40)
    rates = [schedule.value(step) for step in range(40)]
    np.testing.assert_allclose(rates[:10], 1e-3 * np.arange(1, 11) / 10)  # linear warm-up
    assert rates[10] == pytest.approx(1e-3) and all(a >= b for a, b in itertools.pairwise(rates[10:]))
    assert rates[-1] < 1e-5 and rates[25] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 15 / 30)))
    import keras

    graph = [float(keras.ops.convert_to_numpy(schedule(step))) for step in (0, 9, 10, 25, 39)]
    np.testing.assert_allclose(graph, [rates[s] for s in (0, 9, 10, 25, 39)], rtol=1e-5)


# --------------------------------------------------------------------------- camera points


def test_map_keypoints_follows_a_similarity() -> None:
    """A zoom by 2 and a quarter turn (y down): positions mapped, size doubled, angle turned by 90°."""
    turn = np.array([[0.0, -2.0, 100.0], [2.0, 0.0, 10.0], [0.0, 0.0, 1.0]])
    keypoints = np.array([[10.0, 20.0, 4.0, 30.0], [50.0, 5.0, 6.0, -1.0]])
    mapped = camera.map_keypoints(keypoints, turn)
    np.testing.assert_allclose(mapped[:, :2], extraction.apply_homography(turn, keypoints[:, :2]))
    np.testing.assert_allclose(mapped[:, 2], [8.0, 12.0])
    np.testing.assert_allclose(mapped[:, 3], [120.0, -1.0])  # "no orientation" stays -1


def test_camera_points_match_across_views() -> None:
    """The same keypoint cut from two clean views correlates far more than two different keypoints."""
    photo = embedded.load_photo("astronaut.png", max_side=320)
    settings = camera.CameraSettings(views=3, points=80, sigma_max=0.0, magnification=8.0)
    points = camera.camera_round(photo, settings, np.random.default_rng(0))
    assert points.dtype == np.uint8 and points.shape[1:] == (3, 32, 32) and 40 <= len(points) <= 80
    flat = points.reshape(len(points), 3, -1).astype(float)
    flat = (flat - flat.mean(-1, keepdims=True)) / (flat.std(-1, keepdims=True) + 1e-6)
    same = np.median((flat[:, 0] * flat[:, 1]).mean(-1))
    other = np.median((flat[:, 0] * np.roll(flat[:, 1], 7, axis=0)).mean(-1))
    assert same > 0.6 and same > other + 0.3, (same, other)
    noisy = camera.camera_round(photo, settings, np.random.default_rng(0), sigmas=np.full(3, 50.0))
    assert np.abs(noisy.astype(float) - points.astype(float)).mean() > 10  # the noise is in the views


def test_denoised_camera_views_are_what_the_default_pipeline_sees() -> None:
    """Denoised rounds apply detect_and_describe's "auto" rule: non-local means at h = the estimated σ above 10,
    a clean view left alone; the patches end closer to the clean ones, and a round without the setting draws
    exactly what it drew before the setting existed."""
    from nhpatches.data.photographs import denoise_nlm, estimate_noise_sigma
    from nhpatches.pretrained import images

    settings = camera.CameraSettings()
    assert (settings.denoise_min_sigma, settings.nlm_strength) == (images.AUTO_DENOISE_MIN_SIGMA, images.NLM_STRENGTH)
    assert recipe.RECIPES["cpu"].camera.denoise_fraction == recipe.RECIPES["gpu"].camera.denoise_fraction == 0.5
    photo = embedded.load_photo("astronaut.png", max_side=320)
    clean = np.round(photo).astype(np.uint8)
    np.testing.assert_array_equal(camera.auto_denoised(clean, settings), clean)
    noisy = camera.noisy_view(photo, 40.0, np.random.default_rng(1))
    np.testing.assert_array_equal(
        camera.auto_denoised(noisy, settings), denoise_nlm(noisy, settings.nlm_strength * estimate_noise_sigma(noisy))
    )

    small = camera.CameraSettings(views=3, points=60, magnification=8.0)
    sigmas = np.full(3, 40.0)
    reference = camera.camera_round(photo, small, np.random.default_rng(0), sigmas=np.zeros(3))
    plain = camera.camera_round(photo, small, np.random.default_rng(0), sigmas=sigmas)
    np.testing.assert_array_equal(plain, camera.camera_round(photo, small, np.random.default_rng(0), sigmas, False))
    denoised = camera.camera_round(photo, small, np.random.default_rng(0), sigmas=sigmas, denoise=True)
    assert denoised.shape == plain.shape

    def distance(cut: np.ndarray) -> float:
        return float(np.abs(cut.astype(float) - reference.astype(float)).mean())

    assert distance(denoised) < 0.95 * distance(plain), (distance(denoised), distance(plain))
    with pytest.raises(ValueError, match="denoise_fraction"):
        camera.CameraSettings(denoise_fraction=1.5)


def test_keypoint_jitter_grows_with_the_views_noise() -> None:
    """jitter_per_sigma widens the shift, scale and angle jitter by 1 + k σ (the same draws); 0 keeps it as it was."""
    keypoints = np.tile([[100.0, 80.0, 6.0, 45.0]], (500, 1))
    plain = camera.CameraSettings()
    growing = camera.CameraSettings(jitter_per_sigma=0.02)
    base = camera.jitter_keypoints(keypoints, plain, np.random.default_rng(0), sigma=50.0)
    np.testing.assert_array_equal(
        base, camera.jitter_keypoints(keypoints, growing, np.random.default_rng(0), sigma=0.0)
    )
    wide = camera.jitter_keypoints(keypoints, growing, np.random.default_rng(0), sigma=50.0)
    np.testing.assert_allclose(wide[:, :2] - keypoints[:, :2], 2 * (base[:, :2] - keypoints[:, :2]))
    np.testing.assert_allclose(np.log(wide[:, 2] / 6.0), 2 * np.log(base[:, 2] / 6.0))
    radius = plain.magnification * 3.0
    assert np.abs(base[:, :2] - keypoints[:, :2]).max() <= plain.jitter_shift * radius
    assert np.abs(wide[:, :2] - keypoints[:, :2]).max() > 1.5 * plain.jitter_shift * radius
    assert recipe.RECIPES["cpu"].camera.jitter_per_sigma == recipe.RECIPES["gpu"].camera.jitter_per_sigma == 0.02
    with pytest.raises(ValueError, match="jitter_per_sigma"):
        camera.CameraSettings(jitter_per_sigma=-0.1)


# --------------------------------------------------------------------------- the run


def test_recipe_resumes_exactly_and_exports_what_it_trained(smoke_recipe, data_root, tmp_path, monkeypatch) -> None:
    drawn: list[tuple[int, int, float]] = []
    original = batches.TripletBatches.at

    def recording(self, epoch, index):
        batch = original(self, epoch, index)
        drawn.append((epoch, index, self.noise is None))
        return batch

    monkeypatch.setattr(batches.TripletBatches, "at", recording)
    lines: list[str] = []
    first = recipe.train_release(tmp_path / "run", smoke_recipe, data_root, print_fn=lines.append, stop_after=1)
    assert first["epochs_done"] == 1 and not first["finished"]
    assert first["steps_done"] == smoke_recipe.steps_per_epoch
    resumed = recipe.train_release(tmp_path / "run", smoke_recipe, data_root, print_fn=lines.append)
    assert resumed["finished"] and resumed["steps_done"] == smoke_recipe.total_steps
    assert [row["epoch"] for row in resumed["history"]] == [1, 2]
    assert any(line.startswith("resuming after epoch 1/2") for line in lines)
    assert sum(line.startswith("epoch ") for line in lines) == 2
    # the batches drawn: every step once, patch steps (noise added) and camera steps (noise in the photo) in turn
    steps = smoke_recipe.steps_per_epoch // 2
    assert sorted((e, i, cam) for e, i, cam in drawn) == sorted(
        (e, i, cam) for e in range(2) for i in range(steps) for cam in (False, True)
    )
    drawn.clear()
    straight = recipe.train_release(tmp_path / "straight", smoke_recipe, data_root, print_fn=lambda _: None)
    for a, b in zip(resumed["best_weights"], straight["best_weights"], strict=False):
        np.testing.assert_array_equal(a, b)  # a resumed run is the uninterrupted one
    with pytest.raises(ValueError, match="checkpoint of another run"):
        recipe.train_release(tmp_path / "run", recipe.recipe_for("smoke", epochs=3), data_root)

    manifest = json.loads(
        recipe.export_release(tmp_path / "export", tmp_path / "run", smoke_recipe, data_root=data_root).read_text()
    )
    assert manifest["name"] == "none+hardnet_release" and manifest["recipe"] == recipe.recipe_json(smoke_recipe)
    spec = manifest["descriptor"]["spec"]
    # the spec says what was trained: symmetries, noise-augmented and camera data, Euclidean hardest negatives
    assert (spec["flip"], spec["train_on"], spec["loss"], spec["distance"]) == (
        "d4",
        "augmented",
        "hardest_negative",
        "euclidean",
    )
    assert manifest["recipe"]["magnification"] == smoke_recipe.camera.magnification
    # the exported epoch is the validation curve's best, and validation photos are never trained on
    assert_exported_epoch_is_the_best(manifest)
    assert_train_and_validation_photos_are_disjoint(manifest)
    assert manifest["training_data"]["camera_points"] > 0 and manifest["wall_seconds"] > 0 and manifest["log"]
    check = manifest["export_check"]
    assert check["max_abs_diff"] <= 2e-3 and check["min_cosine"] >= 0.9999 and check["patches"] > 0, check
    patches = np.random.default_rng(0).integers(0, 256, (20, 32, 32), dtype=np.uint8)
    exported = pretrained.describe(patches, weights=tmp_path / "export")
    descriptor, _, _ = recipe._build(smoke_recipe)
    descriptor.set_weights(resumed["best_weights"])
    assert np.abs(exported - describe_patches(descriptor, patches)).max() <= 2e-3  # float16 kernels


def test_fine_tuning_starts_from_the_checked_export(smoke_recipe, tmp_path) -> None:
    shipped = pretrained.pretrained_dir()
    good = recipe.recipe_for(
        "smoke",
        init_weights=str(shipped),
        init_sha256=pretrained.read_manifest(shipped / pretrained.MANIFEST_NAME)["sha256"],
    )
    descriptor, _, _ = recipe._build(good)
    loaded = pretrained.load_pipeline(shipped).descriptor
    for a, b in zip(descriptor.get_weights(), loaded.get_weights(), strict=False):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="the recipe expects 00"):
        recipe._build(recipe.recipe_for("smoke", init_weights=str(shipped), init_sha256="00"))


def test_export_needs_a_finished_run(smoke_recipe, data_root, tmp_path) -> None:
    recipe.train_release(tmp_path / "run", smoke_recipe, data_root, print_fn=lambda _: None, stop_after=1)
    with pytest.raises(ValueError, match="finished 1 of 2 epochs"):
        recipe.export_release(tmp_path / "export", tmp_path / "run", smoke_recipe, data_root=data_root)
    with pytest.raises(ValueError, match="finished 0 of 2 epochs"):
        recipe.export_release(tmp_path / "export", tmp_path / "nothing", smoke_recipe, data_root=data_root)


def test_corrupt_or_missing_checkpoints_are_named(smoke_recipe, data_root, tmp_path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / resumable.STATE_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=r"state.json: unreadable checkpoint state"):
        recipe.train_release(tmp_path / "run", smoke_recipe, data_root)
    recipe.train_release(tmp_path / "two", smoke_recipe, data_root, print_fn=lambda _: None, stop_after=1)
    for old in (tmp_path / "two").glob("checkpoint-*.npz"):
        old.unlink()
    with pytest.raises(FileNotFoundError, match=r"checkpoint-epoch001\.npz: checkpoint weights named by"):
        recipe.train_release(tmp_path / "two", smoke_recipe, data_root)


def test_prefetched_yields_every_step_in_order() -> None:
    assert list(resumable.prefetched(lambda step: step * 10, 5)) == [0, 10, 20, 30, 40]
    assert list(resumable.prefetched(lambda step: step, 0)) == []
