"""Tests of nhpatches.data.embedded (the offline HPatches-format dataset), its photos and its realism."""

from __future__ import annotations

import json
import re
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nhpatches import data
from nhpatches.core.config import IMAGE_TYPES
from nhpatches.data import embedded, extraction, photos, realism

FIXTURES = Path(__file__).parent / "fixtures" / "hpatches-sample"
SMALL = {"seed": 0, "max_patches_per_sequence": 48, "images": 6}


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small build the smoke profile uses: 6 photos, at most 48 patches per sequence."""
    return embedded.build_embedded_dataset(tmp_path_factory.mktemp("embedded") / "small", **SMALL)


@pytest.fixture(scope="module")
def manifest(small_dataset: Path) -> dict:
    """The small build's manifest."""
    return json.loads((small_dataset / "dataset.json").read_text())


# --------------------------------------------------------------------------- layout and manifest


def test_small_build_has_the_nhpatches_layout(small_dataset: Path, manifest: dict) -> None:
    names = sorted(path.name for path in small_dataset.iterdir() if path.is_dir())
    assert len(names) == 12 and all(re.match(r"^[iv]_[a-z0-9]+$", name) for name in names)
    assert data.detect_layout(small_dataset) == "embedded"
    for name in names:
        files = sorted(path.name for path in (small_dataset / name).iterdir())
        assert files == sorted([f"{t}.png" for t in IMAGE_TYPES] + [f"{t}_noise.png" for t in IMAGE_TYPES])
        with Image.open(small_dataset / name / "t5_noise.png") as strip:
            assert strip.mode == "L" and strip.size == (32, 32 * manifest["sequences"][name]["num_patches"])


def test_small_build_loads_and_matches_its_manifest(small_dataset: Path, manifest: dict) -> None:
    loaded = data.load_dataset(small_dataset, split="full", subset="test")
    assert set(loaded) == set(manifest["sequences"])
    for name, sequence in loaded.items():
        assert sequence.clean.shape == (16, manifest["sequences"][name]["num_patches"], 32, 32)
        assert 2 <= sequence.num_patches <= 48
        expected = data.make_noisy(sequence.clean, data.sequence_noise_seed(0, name))
        assert np.array_equal(sequence.noisy, expected)
    assert manifest["num_patches"] == sum(s.num_patches for s in loaded.values())


def test_manifest_records_parameters_sources_and_noise(manifest: dict) -> None:
    parameters = manifest["parameters"]
    assert parameters["generator_version"] == embedded.GENERATOR_VERSION
    assert parameters["seed"] == 0 and parameters["max_patches_per_sequence"] == 48
    assert parameters["images"] == [file_name for file_name, _ in photos.PHOTOS[:6]]
    assert parameters["noise_std"] == dict(data.NOISE_STD)
    assert manifest["sequences"]["v_camera"]["source_image"] == "camera.png"


def test_splits_are_disjoint_by_source_photo(small_dataset: Path) -> None:
    splits = data.read_splits(small_dataset)
    stems = [stem for _, stem in photos.PHOTOS[:6]]
    for split in ("a", "b", "c"):
        test_stems = {name[2:] for name in splits[split]["test"]}
        train_stems = {name[2:] for name in splits[split]["train"]}
        assert not test_stems & train_stems and test_stems | train_stems == set(stems)
        assert len(test_stems) == 3 and set(splits[split]) == {"name", "test", "train"}
        assert all(f"i_{s}" in splits[split]["test"] and f"v_{s}" in splits[split]["test"] for s in test_stems)
    assert splits["a"]["test"] != splits["b"]["test"] or splits["a"]["test"] != splits["c"]["test"]
    assert splits["illum"]["test"] == [f"i_{s}" for s in stems]
    assert splits["view"]["test"] == [f"v_{s}" for s in stems]
    assert set(splits["full"]) == {"name", "test"} and len(splits["full"]["test"]) == 12


def test_default_photos_are_real_and_named_legally() -> None:
    stems = [stem for _, stem in photos.PHOTOS]
    assert len(set(stems)) == len(stems) == 15
    assert all(re.match(r"^[a-z0-9]+$", stem) for stem in stems)
    assert not {"color", "phantom", "logo", "horse", "chessboard", "moon", "cell", "retina"} & set(stems)
    assert photos.resolve_images(["clock_motion.png", "hubble"]) == [
        ("clock_motion.png", "clockmotion"),
        ("hubble_deep_field.jpg", "hubble"),
    ]
    with pytest.raises(ValueError, match="unknown"):
        photos.resolve_images(["camera", "phantom"])
    with pytest.raises(ValueError, match="between 2"):
        photos.resolve_images(1)


def test_contrast_stretch_maps_percentiles_to_full_range() -> None:
    """A photo spanning a few grey levels is stretched to 0..255 (outliers clipped)."""
    image = np.linspace(100, 110, 10_000, dtype=np.float32).reshape(100, 100)
    out = photos.stretch_contrast(image)
    assert out.min() == 0 and out.max() == 255 and out.dtype == np.float32
    assert np.all(np.diff(out.ravel()) >= 0)
    assert photos.stretch_contrast(np.full((4, 4), 7.0)).max() == 0  # flat stays flat, no division by 0


def test_left_out_photos_are_flat_at_patch_scale() -> None:
    """The photos left out really are nearly flat in 24 px windows, unlike the kept ones."""

    def window_std(file_name: str) -> float:
        image = photos.load_photo(file_name)
        rng = np.random.default_rng(0)
        ys, xs = rng.integers(0, image.shape[0] - 24, 300), rng.integers(0, image.shape[1] - 24, 300)
        return float(np.median([image[y : y + 24, x : x + 24].std() for y, x in zip(ys, xs, strict=True)]))

    assert all(window_std(name) < 8 for name in photos.FLAT_PHOTOS)
    assert window_std("camera.png") > 10


# --------------------------------------------------------------------------- atomic builds and reuse


def test_ensure_reuses_a_matching_build(small_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> Path:
        raise AssertionError("rebuilt a complete dataset")

    monkeypatch.setattr(embedded, "build_embedded_dataset", fail)
    assert embedded.ensure_embedded_dataset(small_dataset, **SMALL) == small_dataset
    assert not embedded.is_complete(small_dataset, embedded.build_parameters(1, 48, 6))


def _record_builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the builder with a recorder; return the list of requested folders."""
    calls: list[Path] = []
    monkeypatch.setattr(embedded, "build_embedded_dataset", lambda out_dir, *args, **kwargs: calls.append(out_dir))
    return calls


def test_folder_without_manifest_is_rebuilt(
    small_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    (copy / "dataset.json").unlink()
    calls = _record_builds(monkeypatch)
    embedded.ensure_embedded_dataset(copy, **SMALL)
    assert calls == [copy]


def test_leftover_temp_folder_is_not_a_finished_dataset(
    small_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(small_dataset, tmp_path / ".data.tmp-abc123")
    calls = _record_builds(monkeypatch)
    embedded.ensure_embedded_dataset(tmp_path / "data", **SMALL)
    assert calls == [tmp_path / "data"]


def test_failed_build_leaves_old_dataset_and_no_temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = tmp_path / "data"
    old.mkdir()
    (old / "marker.txt").write_text("old")

    def crash(folder: Path, *args: object) -> dict:
        (folder / "i_half").mkdir()
        raise RuntimeError("interrupted")

    monkeypatch.setattr(embedded, "build_photo_sequences", crash)
    with pytest.raises(RuntimeError, match="interrupted"):
        embedded.build_embedded_dataset(old, max_patches_per_sequence=8, images=2, workers=1)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]
    assert (old / "marker.txt").read_text() == "old"


def test_build_is_deterministic_and_thread_independent(tmp_path: Path) -> None:
    params = {"seed": 3, "max_patches_per_sequence": 12, "images": ["coins", "page"]}
    one = embedded.build_embedded_dataset(tmp_path / "one", workers=1, **params)
    two = embedded.build_embedded_dataset(tmp_path / "two", workers=2, **params)
    for path in sorted(one.glob("*/*.png")):
        assert path.read_bytes() == (two / path.relative_to(one)).read_bytes(), path
    assert (one / "splits.json").read_text() == (two / "splits.json").read_text()
    assert (tmp_path / "one" / "i_coins" / "ref.png").is_file()


# --------------------------------------------------------------------------- geometry


def test_jitter_reproduces_the_calibrated_median_overlaps() -> None:
    grid = np.stack(np.meshgrid(np.linspace(-2.6, 2.6, 81), np.linspace(-2.6, 2.6, 81)), -1).reshape(-1, 2)
    in_disk = (grid**2).sum(1) <= 1
    medians = {}
    for level in "eht":
        linear, shift = extraction.draw_jitter(300, level, np.random.default_rng(0))
        local = np.einsum("nij,npj->npi", np.linalg.inv(linear), grid[None] - shift[:, None])
        in_ellipse = (local**2).sum(-1) <= 1
        medians[level] = np.median((in_ellipse & in_disk).sum(1) / (in_ellipse | in_disk).sum(1))
    assert medians["e"] == pytest.approx(0.85, abs=0.03)
    assert medians["h"] == pytest.approx(0.72, abs=0.03)
    assert medians["t"] == pytest.approx(0.60, abs=0.03)


def test_homography_maps_the_four_points() -> None:
    source = np.array([[0, 0], [100, 0], [100, 80], [0, 80]], float)
    target = np.array([[5, 3], [90, -4], [110, 95], [-7, 70]], float)
    homography = extraction.homography_from_points(source, target)
    assert np.allclose(extraction.apply_homography(homography, source), target)


def test_warped_target_patches_match_the_reference_through_the_homography() -> None:
    photo = photos.load_photo("camera.png")
    homography = extraction.random_homography(photo.shape, 1.0, "viewpoint", np.random.default_rng(2))
    target = extraction.warp_image(photo, homography)
    frames = extraction.Frames(np.array([[200.0, 180.0], [300.0, 260.0]]), np.array([20.0, 30.0]), np.zeros(2))
    matrices, steps = extraction.frame_matrices(frames), np.ones(2)
    reference = extraction.sample_frames([photo], matrices, steps, size=17)
    warped = extraction.sample_frames([target], homography @ matrices, steps, size=17)
    for ref_patch, target_patch in zip(reference, warped, strict=True):
        assert np.corrcoef(ref_patch.ravel(), target_patch.ravel())[0, 1] > 0.9


def test_keypoints_have_sigma_at_least_two_and_thinning_removes_overlaps() -> None:
    frames = extraction.detect_keypoints(photos.load_photo("coins.png"), max_keypoints=100)
    assert 0 < len(frames.radii) <= 100 and frames.radii.min() >= extraction.MAGNIFICATION * 2.0
    thinned = extraction.thin_overlapping(frames, np.random.default_rng(0))
    iou = extraction.circle_iou(thinned.centers, thinned.radii)
    np.fill_diagonal(iou, 0)
    assert iou.max() <= 0.5 and len(thinned.radii) <= len(frames.radii)
    same = extraction.circle_iou(np.array([[0.0, 0.0], [0.0, 0.0], [50.0, 0.0]]), np.array([10.0, 10.0, 10.0]))
    assert same[0, 1] == pytest.approx(1.0) and same[0, 2] == 0.0


# --------------------------------------------------------------------------- realism


def _assert_realistic_ordering(table: object) -> None:
    """Matching MRR e > h > t and mean positive distance e < h < t, with margins."""
    mrr, positive = table["matching_mrr"], table["positive_distance"]
    assert mrr["e"] > mrr["h"] + 0.1 > mrr["t"] + 0.2
    assert positive["e"] + 0.1 < positive["h"] < positive["t"] - 0.05
    assert (table["negative_distance"] > positive).all()


def _plane_patches(angles: np.ndarray, size: int = 8) -> np.ndarray:
    """Patches 128 + 50 (cos θ u + sin θ v) of two orthogonal zero-mean +-1 patterns u (top / bottom
    halves) and v (left / right halves). Standardised and L2-normalised, each is the unit vector at angle
    θ in the plane of u and v, so two of them lie 2 sin(Δθ / 2) apart. Shape: (K,) -> (K, size, size)."""
    half = size // 2
    u, v = np.ones((size, size)), np.ones((size, size))
    u[half:], v[:, half:] = -1.0, -1.0
    theta = np.radians(angles)[:, None, None]
    return 128.0 + 50.0 * (np.cos(theta) * u + np.sin(theta) * v)


def test_realism_statistics_of_a_constructed_sequence() -> None:
    """Four reference patches at 0, 90, 180, 270 degrees; every target image of a level turns them by
    δ = 10 (easy), 60 (hard) or 120 degrees (tough). By hand: the positive lies 2 sin(δ / 2) away; among
    the four targets, the positive is nearest at 10 degrees (rank 1), second at 60 (the target turned from
    -90 is 30 degrees away: rank 2) and third at 120 (targets 30 and 60 degrees away: rank 3); the
    negatives lie 2 |sin((90 k + δ) / 2)| away, k = 1, 2, 3."""
    reference = np.arange(4) * 90.0
    offsets = {"e": 10.0, "h": 60.0, "t": 120.0}
    clean = np.stack(
        [
            _plane_patches(reference + offsets.get(name[0], 0.0)) if name != "ref" else _plane_patches(reference)
            for name in IMAGE_TYPES
        ]
    )
    sequence = types.SimpleNamespace(clean=clean, noisy=None, num_patches=4)
    table = realism.measure_realism({"i_constructed": sequence})
    for level, delta in offsets.items():
        negatives = [2 * abs(np.sin(np.radians(90 * k + delta) / 2)) for k in (1, 2, 3)]
        assert table.loc[level, "positive_distance"] == pytest.approx(2 * np.sin(np.radians(delta) / 2), abs=1e-9)
        assert table.loc[level, "negative_distance"] == pytest.approx(np.mean(negatives), abs=1e-9)
    assert list(table["matching_mrr"]) == pytest.approx([1.0, 1 / 2, 1 / 3], abs=1e-12)
    assert list(table["nn_accuracy"]) == [1.0, 0.0, 0.0]


def test_real_sample_realism_equals_a_direct_computation() -> None:
    """On all 150 real points the table equals a separate computation from numpy's Pearson correlation
    (the pixel descriptor's distance is sqrt(2 - 2 r)); easy > hard > tough, with the figures the embedded
    module's docstring quotes (e 0.739, h 0.427, t 0.182)."""
    sequence = data.load_sequence(FIXTURES / "v_wormhole")
    table = realism.measure_realism({sequence.name: sequence})
    _assert_realistic_ordering(table)
    flat = sequence.clean.reshape(16, sequence.num_patches, -1).astype(float)
    count = sequence.num_patches
    for level in ("e", "h", "t"):
        reciprocal_ranks, positives = [], []
        for k in range(1, 6):
            correlation = np.corrcoef(flat[0], flat[IMAGE_TYPES.index(f"{level}{k}")])[:count, count:]
            own = np.diag(correlation)
            reciprocal_ranks.append(1.0 / (1 + (correlation > own[:, None]).sum(axis=1)))
            positives.append(np.sqrt(2 - 2 * own))
        assert table.loc[level, "matching_mrr"] == pytest.approx(np.mean(reciprocal_ranks), abs=1e-9)
        assert table.loc[level, "positive_distance"] == pytest.approx(np.mean(positives), abs=1e-6)
    assert list(table["matching_mrr"].round(3)) == [0.739, 0.427, 0.182]


def test_embedded_orders_easy_hard_tough_like_the_real_sample(small_dataset: Path) -> None:
    loaded = data.load_dataset(small_dataset, split="full", subset="test", max_patches=40)
    table = realism.measure_realism(loaded)
    _assert_realistic_ordering(table)
    real = realism.measure_realism(
        {"v_wormhole": data.load_sequence(FIXTURES / "v_wormhole", max_patches=40)}
    )  # same N
    assert np.allclose(table["matching_mrr"], real["matching_mrr"], atol=0.15)
    assert np.allclose(table["positive_distance"], real["positive_distance"], atol=0.15)
    for kind in "iv":
        _assert_realistic_ordering(realism.measure_realism({k: v for k, v in loaded.items() if k[0] == kind}))
