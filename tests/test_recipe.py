"""The release recipe: augmentation, batches, the resumable training loop and its export."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from nhpatches import pretrained
from nhpatches.nets.inference import describe_patches
from nhpatches.pretrained import recipe


@pytest.fixture(scope="module")
def smoke_recipe() -> recipe.ReleaseRecipe:
    return recipe.recipe_for("smoke")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_square_symmetry_is_the_group_of_eight() -> None:
    """Codes 0..7 give the 4 rotations and their mirrors: 8 different patches, the identity for code 0."""
    patch = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    images = [recipe.square_symmetry(patch, np.array([code]))[0] for code in range(8)]
    assert np.array_equal(images[0], patch[0])
    assert len({image.tobytes() for image in images}) == 8
    assert np.array_equal(images[2], patch[0, ::-1, ::-1])  # two quarter turns = 180°
    batch = np.repeat(patch, 3, axis=0)
    mixed = recipe.square_symmetry(batch, np.array([1, 4, 7]))
    assert all(np.array_equal(mixed[i], images[code]) for i, code in enumerate((1, 4, 7)))


def test_noise_sigmas_mix_clean_and_uniform() -> None:
    sigmas = recipe.noise_sigmas(np.random.default_rng(0), 20_000, 60.0, 0.25)
    clean = np.mean(sigmas == 0)
    assert 0.23 < clean < 0.27 and sigmas.max() <= 60.0
    noisy = sigmas[sigmas > 0]
    assert abs(noisy.mean() - 30.0) < 1.0  # uniform on [0, 60]


def test_draw_pairs_distinct_points_shared_symmetry_and_deterministic(smoke_recipe) -> None:
    rng = np.random.default_rng(1)
    points = rng.integers(0, 256, (40, 16, 8, 8), dtype=np.uint8)
    settings = recipe.recipe_for("smoke", sigma_max=0.0, batch_size=12)  # no noise: pairs are exact copies
    identical = np.repeat(points[:, :1], 16, axis=1)  # every image of a point the same patch
    anchors, positives = recipe.draw_pairs(identical, settings, epoch=0, step=0)
    assert anchors.shape == positives.shape == (12, 8, 8, 1) and anchors.dtype == np.float32
    np.testing.assert_array_equal(anchors, positives)  # one symmetry for both patches of a pair
    flat = anchors.reshape(12, -1)
    assert len({row.tobytes() for row in flat}) == 12  # distinct points
    again = recipe.draw_pairs(identical, settings, epoch=0, step=0)
    np.testing.assert_array_equal(again[0], anchors)
    assert not np.array_equal(recipe.draw_pairs(identical, settings, epoch=1, step=0)[0], anchors)
    with pytest.raises(ValueError, match="exceeds the 40 training points"):
        recipe.draw_pairs(points, recipe.recipe_for("smoke", batch_size=41), 0, 0)


def test_learning_rate_warms_up_then_decays_to_zero() -> None:
    settings = recipe.recipe_for("cpu", epochs=4, steps_per_epoch=10, warmup_epochs=1)
    rates = [recipe.learning_rate_at(settings, step) for step in range(settings.total_steps)]
    assert rates[0] == pytest.approx(settings.learning_rate / 10)
    assert max(rates) == pytest.approx(settings.learning_rate)
    assert rates[9] == pytest.approx(settings.learning_rate) and rates[-1] < 0.01 * settings.learning_rate
    assert all(a >= b for a, b in itertools.pairwise(rates[9:]))


def test_recipe_resumes_where_it_stopped_and_exports(smoke_recipe, data_root, tmp_path) -> None:
    """Killed after one epoch, the same call goes on from its checkpoint: same steps, no repeated epoch,
    the same weights as an uninterrupted run; the export is what describe(weights=...) reads."""
    lines: list[str] = []
    first = recipe.train_release(tmp_path / "run", smoke_recipe, data_root, print_fn=lines.append, stop_after=1)
    assert first["epochs_done"] == 1 and not first["finished"]
    assert first["steps_done"] == smoke_recipe.steps_per_epoch
    resumed = recipe.train_release(tmp_path / "run", smoke_recipe, data_root, print_fn=lines.append)
    assert resumed["finished"] and resumed["steps_done"] == smoke_recipe.total_steps
    assert [row["epoch"] for row in resumed["history"]] == [1, 2]
    assert any(line.startswith("resuming after epoch 1/2") for line in lines)
    assert sum(line.startswith("epoch ") for line in lines) == 2
    assert all("eta" in line and "val score" in line for line in lines if line.startswith("epoch "))
    straight = recipe.train_release(tmp_path / "straight", smoke_recipe, data_root, print_fn=lambda _: None)
    for a, b in zip(resumed["best_weights"], straight["best_weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # another recipe never resumes this checkpoint
    with pytest.raises(ValueError, match="checkpoint of another recipe"):
        recipe.train_release(tmp_path / "run", recipe.recipe_for("smoke", epochs=3), data_root)
    # the export: a manifest with the recipe, data, machine, wall time, curve and log; describe() reads it
    manifest_path = recipe.export_release(tmp_path / "export", tmp_path / "run", smoke_recipe, data_root=data_root)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["name"] == "none+hardnet_release" and manifest["recipe"] == recipe.recipe_json(smoke_recipe)
    assert manifest["training_data"]["train_points"] > 0 and manifest["machine"]["cores"] >= 1
    assert manifest["wall_seconds"] > 0 and len(manifest["validation_curve"]) == 2 and manifest["log"]
    check = manifest["export_check"]
    assert check["max_abs_diff"] <= 2e-3 and check["min_cosine"] >= 0.9999 and check["patches"] > 0, check
    patches = np.random.default_rng(0).integers(0, 256, (20, 32, 32), dtype=np.uint8)
    exported = pretrained.describe(patches, weights=tmp_path / "export")
    descriptor, _ = recipe.build_release_trainer(smoke_recipe)
    descriptor.set_weights(resumed["best_weights"])
    reference = describe_patches(descriptor, patches)
    assert np.abs(exported - reference).max() <= 2e-3  # float16 kernels
    assert exported.shape == (20, 128) and np.allclose(np.linalg.norm(exported, axis=1), 1, atol=1e-5)


def test_export_needs_a_finished_run(smoke_recipe, data_root, tmp_path) -> None:
    recipe.train_release(tmp_path / "run", smoke_recipe, data_root, print_fn=lambda _: None, stop_after=1)
    with pytest.raises(ValueError, match="finished 1 of 2 epochs"):
        recipe.export_release(tmp_path / "export", tmp_path / "run", smoke_recipe, data_root=data_root)
    with pytest.raises(ValueError, match="finished 0 of 2 epochs"):
        recipe.export_release(tmp_path / "export", tmp_path / "nothing", smoke_recipe, data_root=data_root)


def test_corrupt_checkpoint_state_is_named(smoke_recipe, data_root, tmp_path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / recipe.STATE_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=r"state.json: unreadable checkpoint state"):
        recipe.train_release(tmp_path / "run", smoke_recipe, data_root)


def test_prefetched_yields_every_step_in_order() -> None:
    assert list(recipe.prefetched(lambda step: step * 10, 5)) == [0, 10, 20, 30, 40]
    assert list(recipe.prefetched(lambda step: step, 0)) == []
