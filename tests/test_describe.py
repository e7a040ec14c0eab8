"""Classical baselines (raw, SIFT), nhpatches.describe with the shipped weights, exports and hpatches-describe."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nhpatches import data, pretrained
from nhpatches.cli.describe import main as describe_main
from nhpatches.cli.eval import main as eval_main
from nhpatches.core.config import IMAGE_TYPES
from nhpatches.nets import classical
from release_checks import assert_exported_epoch_is_the_best, assert_train_and_validation_photos_are_disjoint

FIXTURES = Path(__file__).parent / "fixtures"
WORMHOLE = FIXTURES / "hpatches-sample" / "v_wormhole"
EVAL_FIXTURE = FIXTURES / "hpatches_eval"


@pytest.fixture(scope="module")
def wormhole() -> np.ndarray:
    """The real v_wormhole sequence (release layout): (16, 150, 65, 65) uint8."""
    return data.read_strip_set([WORMHOLE / f"{image_type}.png" for image_type in IMAGE_TYPES], None)


def nn_accuracy(descriptors: np.ndarray) -> np.ndarray:
    """Fraction of ref patches whose nearest neighbour (L2) in each other image is the same point.

    Shape: (16, N, D) -> (15,)
    """
    ref = descriptors[0].astype(np.float64)
    scores = []
    for image in descriptors[1:].astype(np.float64):
        distances = ((ref[:, None] - image[None]) ** 2).sum(-1)
        scores.append(np.mean(distances.argmin(axis=1) == np.arange(len(ref))))
    return np.array(scores)


# ----------------------------------------------------------------------------- classical


def test_raw_known_answer_and_constant_patch() -> None:
    """(x - mean) / population std, flattened row-major; a constant patch gives zeros, not NaN."""
    patches = np.array([[[0, 2], [0, 2]], [[7, 7], [7, 7]], [[0, 0], [0, 4]]], np.uint8)
    rows = classical.describe_raw(patches)
    assert rows.dtype == np.float32 and rows.shape == (3, 4)
    np.testing.assert_array_equal(rows[0], [-1, 1, -1, 1])
    np.testing.assert_array_equal(rows[1], [0, 0, 0, 0])
    # mean 1, std sqrt(3): (-1, -1, -1, 3) / sqrt(3)
    np.testing.assert_allclose(rows[2], np.array([-1, -1, -1, 3]) / np.sqrt(3), rtol=1e-6)


def test_raw_and_sift_shapes_determinism_and_distinct_rows(wormhole: np.ndarray) -> None:
    """Both sizes: (N, P*P) / (N, 128) float32, same input -> identical rows, distinct patches -> distinct rows."""
    for patches in (wormhole[0], data.resize_patches(wormhole[0], 32)):
        size = patches.shape[-1]
        raw, sift = classical.describe_raw(patches), classical.describe_sift(patches)
        assert raw.shape == (150, size * size) and sift.shape == (150, 128)
        assert raw.dtype == sift.dtype == np.float32
        np.testing.assert_array_equal(classical.describe_raw(patches.copy()), raw)
        np.testing.assert_array_equal(classical.describe_sift(patches.copy()), sift)
        np.testing.assert_allclose(np.linalg.norm(sift, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(raw, axis=1), size, rtol=1e-5)
        for rows in (raw, sift):
            gaps = np.linalg.norm(rows[:, None] - rows[None], axis=-1) + np.eye(len(rows)) * 9
            assert gaps.min() > 1e-3  # no two of the 150 patches get the same descriptor
    constant = np.full((2, 32, 32), 128, np.uint8)
    np.testing.assert_array_equal(classical.describe_sift(constant), 0.0)
    np.testing.assert_array_equal(classical.describe_raw(constant), 0.0)


@pytest.mark.parametrize("size", [32, 65])
def test_sift_grid_covers_the_whole_patch(size: int) -> None:
    """A blob in a corner of the patch lands in that corner's cell of SIFT's 4x4 grid (size P / 6)."""
    assert classical.sift_keypoint_size(size) == pytest.approx(size / 6)
    for row, col, cell in ((2, 2, (0, 0)), (2, size - 3, (0, 3)), (size - 3, 2, (3, 0)), (size - 3, size - 3, (3, 3))):
        patch = np.full((1, size, size), 100, np.uint8)
        patch[0, row - 1 : row + 2, col - 1 : col + 2] = 200
        energy = classical.describe_sift(patch).reshape(4, 4, 8).sum(-1)
        assert np.unravel_index(energy.argmax(), energy.shape) == cell, energy.round(2)


def test_sift_matches_real_patches_better_on_easy_than_tough(wormhole: np.ndarray) -> None:
    """On the real v_wormhole patches SIFT finds most easy matches and fewer tough ones (e > h > t)."""
    accuracy = nn_accuracy(np.stack([classical.describe_sift(image) for image in wormhole]))
    easy, hard, tough = accuracy[:5].mean(), accuracy[5:10].mean(), accuracy[10:].mean()
    assert easy > 0.8 and easy > hard > tough, accuracy


def test_classical_registry_and_input_checks() -> None:
    """CLASSICAL names both baselines; a non-uint8 or non-square input is refused with what was expected."""
    assert dict(classical.CLASSICAL) == {"raw": classical.describe_raw, "sift": classical.describe_sift}
    with pytest.raises(TypeError, match="uint8"):
        classical.describe_sift(np.zeros((2, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"\(N, P, P\)"):
        classical.describe_raw(np.zeros((2, 32, 31), np.uint8))


# ----------------------------------------------------------------------------- describe


def test_describe_shipped_pipeline_on_32_and_65_px(wormhole: np.ndarray) -> None:
    """The shipped pipeline: float32 (N, 128), finite, unit norm; 65 px input = its 32 px resize."""
    native = wormhole[0, :12]
    resized = data.resize_patches(native, 32)
    from_65 = pretrained.describe(native)
    from_32 = pretrained.describe(resized)
    for rows in (from_65, from_32):
        assert rows.dtype == np.float32 and rows.shape == (12, 128) and np.isfinite(rows).all()
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(from_65, from_32)
    name = pretrained.shipped_pipeline_name()
    np.testing.assert_array_equal(pretrained.describe(resized, pipeline=name), from_32)
    assert pretrained.describe(resized[:0]).shape == (0, 128)


def test_shipped_pipeline_matches_real_patches(wormhole: np.ndarray) -> None:
    """Trained weights, not random ones: on the 150 real v_wormhole points the shipped pipeline finds
    >= 85% of easy, >= 80% of hard and >= 65% of tough matches (measured 93 / 90 / 77 %; a randomly
    initialised network of the same shape gets 65 / 31 / 11 %, OpenCV SIFT at 65 px 87 / 60 / 29 %)."""
    accuracy = nn_accuracy(pretrained.describe(wormhole.reshape(-1, 65, 65)).reshape(16, wormhole.shape[1], -1))
    assert accuracy[:5].mean() >= 0.85 and accuracy[5:10].mean() >= 0.8 and accuracy[10:].mean() >= 0.65, accuracy


def test_describe_classical_pipelines_and_sizes(wormhole: np.ndarray) -> None:
    """sift describes 65 px patches natively; raw resizes them to 32 px (1024-d)."""
    native = wormhole[1, :5]
    np.testing.assert_array_equal(pretrained.describe(native, pipeline="sift"), classical.describe_sift(native))
    raw = pretrained.describe(native, pipeline="raw")
    assert raw.shape == (5, 1024)
    np.testing.assert_array_equal(raw, classical.describe_raw(data.resize_patches(native, 32)))


@pytest.mark.parametrize(
    "patches, pipeline, error, message",
    [
        (np.zeros((3, 32, 32), np.float32), "default", TypeError, "expected uint8"),
        (np.zeros((3, 32, 32), np.float32), "sift", TypeError, "expected uint8"),
        (np.zeros((3, 48, 48), np.uint8), "default", ValueError, r"\(N, 32, 32\).*\(N, 65, 65\).*got \(3, 48, 48\)"),
        (np.zeros((3, 48, 48), np.uint8), "raw", ValueError, r"\(N, 32, 32\)"),
        (np.zeros((32, 32), np.uint8), "default", ValueError, r"\(N, P, P\)"),
        (np.zeros((3, 32, 32, 1), np.uint8), "sift", ValueError, r"\(N, P, P\)"),
        (np.zeros((3, 32, 32), np.uint8), "orb", ValueError, r"unknown pipeline 'orb'.*sift"),
    ],
)
def test_describe_rejects_bad_input(patches: np.ndarray, pipeline: str, error: type, message: str) -> None:
    """Wrong dtype, shape or pipeline name: an error naming what was expected."""
    with pytest.raises(error, match=message):
        pretrained.describe(patches, pipeline=pipeline)


def test_lazy_import_keeps_keras_out() -> None:
    """`import nhpatches` (and `nhpatches.describe` with a classical pipeline) does not import Keras."""
    code = (
        "import sys, numpy as np, nhpatches; assert 'keras' not in sys.modules; "
        "nhpatches.describe(np.zeros((1, 32, 32), np.uint8), pipeline='raw'); "
        "assert 'keras' not in sys.modules; print('ok')"
    )
    env = {**__import__("os").environ, "KERAS_BACKEND": "jax"}  # no TensorFlow start-up either
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# ----------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def random_export(tmp_path_factory: pytest.TempPathFactory):
    """A randomly initialised U-Net + HardNet pipeline exported to a temp folder: (folder, denoiser, descriptor)."""
    import keras

    from nhpatches.nets import specs
    from nhpatches.train import training

    keras.utils.set_random_seed(5)
    den_spec, desc_spec = specs.DENOISERS["unet_adam"], specs.DESCRIPTORS["hardnet_flip"]
    denoiser, descriptor = training.build_denoiser(den_spec), specs.build_descriptor_network(desc_spec)
    folder = tmp_path_factory.mktemp("export")
    pretrained.export_pipeline(folder, descriptor, desc_spec, denoiser, den_spec, info={"profile": "test"})
    return folder, denoiser, descriptor


def test_export_reproduces_the_original_models(random_export, wormhole: np.ndarray) -> None:
    """describe(weights=export) vs the un-exported float32 models on the same patches.

    Tolerances: with the same input, float16 kernels move the unit-norm descriptors by at most 2e-3
    per component. The denoiser's output moves by at most 1 grey level, where float16 carries a value
    across an integer before the truncation to uint8 (a few % of the pixels of this random U-Net);
    end to end the descriptors then stay within 0.02 per component and cosine 0.999.
    """
    from nhpatches.nets.inference import denoise_patches, describe_patches

    folder, denoiser, descriptor = random_export
    patches = data.resize_patches(wormhole[:, :8].reshape(-1, 65, 65), 32)
    check = pretrained.check_export(folder, patches, descriptor, denoiser)
    assert check["max_abs_diff"] <= 0.02 and check["min_cosine"] >= 0.999, check
    assert check["denoised_pixels_changed"] <= 0.1, check
    loaded = pretrained.load_pipeline(folder)
    original = denoise_patches(denoiser, patches, 256).astype(int)
    assert np.abs(denoise_patches(loaded.denoiser, patches, 256).astype(int) - original).max() <= 1
    # Same denoised input -> descriptor differences from float16 kernels only.
    exact_input = describe_patches(loaded.descriptor, original.astype(np.uint8)[None], 256)[0]
    reference = describe_patches(descriptor, original.astype(np.uint8)[None], 256)[0]
    assert np.abs(exact_input - reference).max() <= 2e-3
    rows = pretrained.describe(patches, weights=folder / pretrained.MANIFEST_NAME)
    np.testing.assert_array_equal(rows, pretrained.describe(patches, weights=folder / pretrained.WEIGHTS_NAME))
    manifest = json.loads((folder / pretrained.MANIFEST_NAME).read_text())
    assert manifest["name"] == "unet_adam+hardnet_flip" and manifest["profile"] == "test"
    assert manifest["denoiser"]["spec"]["optimizer"] == "adam" and manifest["descriptor"]["output_dim"] == 128
    with pytest.raises(ValueError, match="does not match the export"):
        pretrained.describe(patches, pipeline="unet+baseline", weights=folder)


def test_export_without_denoiser_and_non_normalised_descriptor(tmp_path: Path) -> None:
    """A 'none' pipeline with the report's L2-Net: byte-reproducible, rebuilt and equal to the original
    within float16 rounding."""
    import keras

    from nhpatches.nets import specs
    from nhpatches.nets.inference import describe_patches

    keras.utils.set_random_seed(6)
    spec = specs.DESCRIPTORS["baseline"]
    descriptor = specs.build_descriptor_network(spec)
    pretrained.export_pipeline(tmp_path, descriptor, spec)
    pretrained.export_pipeline(tmp_path / "again", descriptor, spec)
    shas = [
        json.loads((folder / pretrained.MANIFEST_NAME).read_text())["sha256"]
        for folder in (tmp_path, tmp_path / "again")
    ]
    assert shas[0] == shas[1]  # same weights, same bytes: the export is reproducible
    patches = np.random.default_rng(0).integers(0, 256, (6, 32, 32), dtype=np.uint8)
    rows = pretrained.describe(patches, weights=tmp_path)
    reference = describe_patches(descriptor, patches[None], 256)[0]
    assert pretrained.load_pipeline(tmp_path).denoiser is None
    np.testing.assert_allclose(rows, reference, rtol=5e-3, atol=5e-3 * np.abs(reference).max())


def test_checksum_mismatch_and_missing_files_are_explained(random_export, tmp_path: Path) -> None:
    """A tampered weights file, a missing one and a missing manifest: errors naming the path and the checksum."""
    folder = Path(shutil.copytree(random_export[0], tmp_path / "copy"))
    expected = json.loads((folder / pretrained.MANIFEST_NAME).read_text())["sha256"]
    weights = folder / pretrained.WEIGHTS_NAME
    patches = np.zeros((2, 32, 32), np.uint8)
    content = bytearray(weights.read_bytes())
    content[len(content) // 2] ^= 0xFF
    weights.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="checksum mismatch") as info:
        pretrained.describe(patches, weights=folder)
    assert str(weights.resolve()) in str(info.value) and expected in str(info.value)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="not found") as info:
        pretrained.describe(patches, weights=folder)
    assert str(weights.resolve()) in str(info.value) and expected in str(info.value)
    with pytest.raises(FileNotFoundError, match="manifest not found") as info:
        pretrained.describe(patches, weights=tmp_path / "nowhere")
    assert "nowhere" in str(info.value)


def _check_shipped_export(folder) -> dict:
    """One weights file of at most 5 MB whose sha256 is the manifest's, the run's record, the best epoch."""
    manifest = pretrained.read_manifest(folder / pretrained.MANIFEST_NAME)
    weights = pretrained.verified_weights_path(folder / pretrained.MANIFEST_NAME, manifest)
    assert weights.stat().st_size <= 5 * 1024 * 1024 and manifest["weights_bytes"] == weights.stat().st_size
    assert sorted(path.name for path in folder.iterdir()) == [pretrained.MANIFEST_NAME, pretrained.WEIGHTS_NAME]
    for key in ("training_data", "machine", "wall_seconds", "backend", "keras_version", "created", "export_check"):
        assert key in manifest, key
    assert_exported_epoch_is_the_best(manifest)
    assert_train_and_validation_photos_are_disjoint(manifest)
    check = manifest["export_check"]
    assert check["max_abs_diff"] <= 2e-3 and check["min_cosine"] >= 0.9999, check
    return manifest


def test_shipped_patch_descriptor_is_the_base_recipes() -> None:
    """describe()'s export: one full run of the ``base`` recipe (36 epochs, patch pairs only, HPatches' region),
    trained before the training stacks were merged (commit 756503d), so its recipe record predates the camera
    settings: every setting it does record is the base recipe's."""
    from nhpatches.pretrained import recipe

    manifest = _check_shipped_export(pretrained.pretrained_dir())
    base = recipe.recipe_json(recipe.RECIPES["base"])
    recorded = {key: value for key, value in manifest["recipe"].items() if key != "profile"}
    assert recorded and {key: base[key] for key in recorded} == recorded
    assert [row["epoch"] for row in manifest["validation_curve"]] == list(range(1, recipe.RECIPES["base"].epochs + 1))
    assert manifest["name"] == f"none+{recipe.RELEASE_DESCRIPTOR}"
    assert (
        pretrained.sha256_of(pretrained.pretrained_dir() / pretrained.WEIGHTS_NAME) == recipe.RECIPES["cpu"].init_sha256
    )
    spec = manifest["descriptor"]["spec"]  # corrected after export: what the run trained (issue 18)
    assert (spec["flip"], spec["train_on"], spec["distance"]) == ("d4", "augmented", "euclidean")


def test_shipped_photographs_descriptor_is_the_cpu_recipes() -> None:
    """detect_and_describe()'s export: one full run of the ``cpu`` recipe, fine-tuned from describe()'s export
    on patch and camera pairs; its spec says what was trained (issue 18); the image pipeline cuts at its region."""
    from nhpatches.pretrained import recipe
    from nhpatches.pretrained.images import trained_magnification

    manifest = _check_shipped_export(pretrained.photographs_dir())
    shipped = recipe.RECIPES["cpu"]
    assert manifest["name"] == f"none+{recipe.RELEASE_DESCRIPTOR}" and manifest["recipe"] == recipe.recipe_json(shipped)
    assert [row["epoch"] for row in manifest["validation_curve"]] == list(range(1, shipped.epochs + 1))
    assert any(line.startswith(f"epoch {shipped.epochs:3d}/{shipped.epochs}") for line in manifest["log"])
    spec = manifest["descriptor"]["spec"]
    assert (spec["flip"], spec["train_on"], spec["distance"]) == ("d4", "augmented", "euclidean")
    assert manifest["training_data"]["camera_points"] > 0
    assert trained_magnification() == manifest["recipe"]["magnification"] == shipped.camera.magnification == 8.0


# ----------------------------------------------------------------------------- hpatches-describe


def write_strip(path: Path, patches: np.ndarray) -> None:
    """Save (N, P, P) uint8 patches as a P px wide PNG strip."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(patches.reshape(-1, patches.shape[-1]), mode="L").save(path)


def textured_patches(count: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Smooth random textures (blurred noise, contrast stretched). Shape: -> (count, size, size) uint8."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(rng.normal(size=(count, size, size)), sigma=(0, 2, 2))
    noise -= noise.min(axis=(1, 2), keepdims=True)
    noise /= noise.max(axis=(1, 2), keepdims=True)
    return (noise * 200 + 25).astype(np.uint8)


@pytest.fixture(scope="module")
def nhpatches_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N-HPatches layout with the hpatches_eval fixture's sequences and patch counts: one texture per
    point, the 16 noisy images its copies plus Gaussian noise growing e < h < t."""
    root = tmp_path_factory.mktemp("nhp")
    counts = json.loads((EVAL_FIXTURE / "meta.json").read_text())["patches_per_sequence"]
    rng = np.random.default_rng(11)
    for name, count in counts.items():
        clean = textured_patches(count, rng)
        for image_type in IMAGE_TYPES:
            std = {"r": 5.0, "e": 20.0, "h": 45.0, "t": 90.0}[image_type[0]]
            noisy = np.clip(clean + rng.normal(0, std, clean.shape), 0, 255).astype(np.uint8)
            write_strip(root / name / f"{image_type}.png", clean)
            write_strip(root / name / f"{image_type}_noise.png", noisy)
    return root


def run_describe(*args: str) -> int:
    """hpatches-describe's main() on string arguments."""
    return describe_main([str(arg) for arg in args])


def test_describe_then_eval_on_nhpatches_layout(
    nhpatches_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """hpatches-describe writes the 16 noisy-patch CSVs per sequence; hpatches-eval reads them (with the
    hpatches_eval fixture's task files) and scores SIFT on these well-separated textures near 1."""
    out = tmp_path / "descr"
    assert run_describe(nhpatches_dataset, out, "--pipeline", "sift") == 0
    assert "6 sequences (nhpatches layout, noisy patches" in capsys.readouterr().out
    assert sorted(path.name for path in (out / "i_fog").iterdir()) == sorted(f"{t}.csv" for t in IMAGE_TYPES)
    noisy_h3 = data.read_strip(nhpatches_dataset / "i_fog" / "h3_noise.png")
    np.testing.assert_allclose(
        np.loadtxt(out / "i_fog" / "h3.csv", delimiter=","), classical.describe_sift(noisy_h3), atol=1e-7
    )
    assert (
        eval_main(
            [str(out), "--tasks", str(EVAL_FIXTURE / "tasks"), "--split", "fixture", "--json", str(tmp_path / "r.json")]
        )
        == 0
    )
    results = json.loads((tmp_path / "r.json").read_text())
    # Rows must be patch-indexed and files in place: misaligned rows would score near chance.
    assert results["matching"]["mAP"] > 0.9 and results["verification"]["mAP"] > 0.8, results["summary"]


def test_describe_embedded_layout_and_clean_option(nhpatches_dataset: Path, tmp_path: Path) -> None:
    """With a dataset.json the layout is 'embedded' (noisy strips described); --clean describes the clean ones."""
    embedded = Path(shutil.copytree(nhpatches_dataset, tmp_path / "emb"))
    (embedded / data.DATASET_MANIFEST_NAME).write_text("{}")
    assert data.detect_layout(embedded) == "embedded"
    assert run_describe(embedded, tmp_path / "noisy", "--pipeline", "raw", "--format", "npy") == 0
    assert run_describe(embedded, tmp_path / "clean", "--pipeline", "raw", "--clean") == 0
    noisy = np.load(tmp_path / "noisy" / "v_bees" / "t5.npy")
    assert noisy.shape == (41, 1024)
    np.testing.assert_array_equal(noisy, classical.describe_raw(data.read_strip(embedded / "v_bees" / "t5_noise.png")))
    clean = np.loadtxt(tmp_path / "clean" / "v_bees" / "t5.csv", delimiter=",")
    np.testing.assert_allclose(
        clean, classical.describe_raw(data.read_strip(embedded / "v_bees" / "t5.png")), atol=1e-6
    )


def test_describe_release_layout_native_and_learned(tmp_path: Path) -> None:
    """Release layout: the release's own 65 px patches; sift at 65 px, the default pipeline at 32 px, 128-d."""
    release = tmp_path / "release"
    shutil.copytree(WORMHOLE, release / "v_wormhole")
    assert run_describe(release, tmp_path / "sift", "--pipeline", "sift") == 0
    assert run_describe(release, tmp_path / "learned") == 0
    ref = data.read_strip(WORMHOLE / "ref.png")
    np.testing.assert_allclose(
        np.loadtxt(tmp_path / "sift" / "v_wormhole" / "ref.csv", delimiter=","), classical.describe_sift(ref), atol=1e-7
    )
    learned = np.loadtxt(tmp_path / "learned" / "v_wormhole" / "e4.csv", delimiter=",")
    assert learned.shape == (150, 128)
    np.testing.assert_allclose(learned, pretrained.describe(data.read_strip(WORMHOLE / "e4.png")), atol=1e-7)


def _narrow_strips(root: Path) -> None:
    """A sequence whose strips are 48 px wide."""
    for image_type in IMAGE_TYPES:
        write_strip(root / "i_wide" / f"{image_type}.png", np.zeros((2, 48, 48), np.uint8))


def _drop_noisy(root: Path) -> None:
    """An N-HPatches dataset whose second sequence lacks one noisy strip."""
    for name in ("i_aaa", "i_bbb"):
        for image_type in IMAGE_TYPES:
            write_strip(root / name / f"{image_type}_noise.png", np.zeros((2, 32, 32), np.uint8))
    (root / "i_bbb" / "h2_noise.png").unlink()


@pytest.mark.parametrize(
    "damage, args, expected",
    [
        (None, ("--pipeline", "sift"), ("missing", "data directory not found")),
        (_narrow_strips, ("--pipeline", "sift"), ("i_wide/ref.png", "32 or 65 px wide", "got 48 px")),
        (_drop_noisy, ("--pipeline", "sift"), ("i_bbb", "h2_noise.png")),
        (_drop_noisy, ("--pipeline", "orb"), ("unknown pipeline 'orb'", "sift")),
        (_drop_noisy, ("--pipeline", "sift", "--weights", "x"), ("weights= applies to learned pipelines only",)),
    ],
)
def test_describe_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], damage, args, expected) -> None:
    """Bad data or options: exit 2 and a message naming the path and what was expected, no traceback."""
    root = tmp_path / "missing"
    if damage is not None:
        root = tmp_path / "data"
        damage(root)
    assert run_describe(root, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpatches-describe: error:") and "Traceback" not in err
    for text in expected:
        assert text in err, err


def test_describe_cli_as_a_process(nhpatches_dataset: Path, tmp_path: Path) -> None:
    """`python -m nhpatches.cli.describe` runs with a quiet stderr (what the console script calls)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nhpatches.cli.describe",
            str(nhpatches_dataset),
            str(tmp_path / "out"),
            "--pipeline",
            "raw",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert (tmp_path / "out" / "v_strand" / "t5.csv").is_file()
