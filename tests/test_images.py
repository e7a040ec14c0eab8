"""From photographs to matches: noise estimation, detect_and_describe, match_images and hpatches-match."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import nhpatches
from nhpatches.cli.match import main as match_main
from nhpatches.data import add_noise, embedded, extraction
from nhpatches.data.photographs import denoise_if_noisy, denoise_nlm, detect_sift, estimate_noise_sigma
from nhpatches.pretrained import images

LIB = Path(__file__).resolve().parents[1] / "lib"


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo, 512 x 512 grayscale uint8 (contrast-stretched)."""
    return np.round(embedded.load_photo("astronaut.png")).astype(np.uint8)


@pytest.fixture(scope="module")
def warped_pair(astronaut: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The photo, a copy warped by a random viewpoint homography, and that homography (photo -> copy)."""
    homography = extraction.random_homography(astronaut.shape, 0.8, "viewpoint", np.random.default_rng(0))
    warped = np.round(extraction.warp_image(astronaut.astype(np.float32), homography)).astype(np.uint8)
    return astronaut, warped, homography


def correct_share(result: images.ImageMatches, homography: np.ndarray, pixels: float = 3.0) -> float:
    """Share of matches whose image-1 point lands within ``pixels`` of its image-2 point through the homography."""
    errors = np.linalg.norm(extraction.apply_homography(homography, result.xy1) - result.xy2, axis=1)
    return float(np.mean(errors <= pixels))


# --------------------------------------------------------------------------- noise


@pytest.mark.parametrize("photo", ["camera.png", "astronaut.png"])
def test_noise_sigma_is_estimated_on_a_real_photo(photo: str) -> None:
    """Gaussian noise sigma 0/10/20/35/50 on a real photo: within 2.5 grey levels or 12 %; clipping lowers sigma 50."""
    clean = np.round(embedded.load_photo(photo)).astype(np.uint8)
    estimates = []
    for sigma in (0, 10, 20, 35, 50):
        noisy = add_noise(clean, sigma, np.random.default_rng(sigma))
        estimates.append(estimate_noise_sigma(noisy))
        assert abs(estimates[-1] - sigma) <= max(2.5, 0.12 * sigma), (sigma, estimates)
    assert estimates == sorted(estimates)
    colour = np.stack([noisy] * 3, axis=-1)
    assert estimate_noise_sigma(colour) == pytest.approx(estimates[-1])


def test_noise_estimation_and_nlm_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="image: expected uint8"):
        estimate_noise_sigma(np.zeros((32, 32)))
    with pytest.raises(ValueError, match="h: expected a non-negative"):
        denoise_nlm(np.zeros((32, 32), np.uint8), -1)


def test_nlm_lowers_the_noise(astronaut: np.ndarray) -> None:
    noisy = add_noise(astronaut, 25, np.random.default_rng(0))
    cleaned = denoise_nlm(noisy, 25)
    error = np.abs(cleaned.astype(float) - astronaut).mean()
    assert cleaned.dtype == np.uint8 and error < 0.6 * np.abs(noisy.astype(float) - astronaut).mean()
    np.testing.assert_array_equal(denoise_nlm(noisy, 0), noisy)


def test_the_auto_and_nlm_rule_is_one_function(astronaut: np.ndarray) -> None:
    """denoise_if_noisy is "auto" with a threshold and "nlm" without; the pipeline, rows and camera views share it."""
    from nhpatches.cli.match_rows import nlm_filter
    from nhpatches.data import camera

    noisy = add_noise(astronaut, 25, np.random.default_rng(0))
    sigma = estimate_noise_sigma(noisy)
    expected = denoise_nlm(noisy, images.NLM_STRENGTH * sigma)
    seen, denoised = denoise_if_noisy(noisy, sigma, images.NLM_STRENGTH, images.AUTO_DENOISE_MIN_SIGMA)
    assert denoised and np.array_equal(seen, expected)
    assert denoise_if_noisy(noisy, sigma, 1.0, min_sigma=sigma) == (noisy, False)  # at the threshold: left alone
    assert denoise_if_noisy(astronaut, 0.0, 1.0)[1]  # "nlm" always denoises (h = 0 leaves it unchanged)
    for denoise in (
        nlm_filter(auto=True),
        nlm_filter(auto=False),
        lambda view: camera.auto_denoised(view, camera.CameraSettings()),
    ):
        np.testing.assert_array_equal(denoise(noisy), expected)
    np.testing.assert_array_equal(nlm_filter(auto=True)(astronaut), astronaut)


# --------------------------------------------------------------------------- detect_and_describe


def test_detect_sift_keeps_every_orientation_strongest_first(astronaut: np.ndarray) -> None:
    rows = detect_sift(astronaut, 300)
    assert rows.shape == (300, 4)
    _, counts = np.unique(rows[:, :3], axis=0, return_counts=True)
    assert counts.max() >= 2  # points with several orientations keep each of them
    everything = detect_sift(astronaut, None)
    assert len(everything) > 300 and detect_sift(np.full((64, 64), 9, np.uint8), 10).shape == (0, 4)


def test_detect_and_describe_shapes_and_settings(astronaut: np.ndarray) -> None:
    features = nhpatches.detect_and_describe(astronaut, max_keypoints=150, pipeline="sift", denoise="none")
    assert len(features) == 150 and features.keypoints.shape == (150, 4)
    assert features.descriptors.shape == (150, 128) and features.descriptors.dtype == np.float32
    np.testing.assert_array_equal(features.xy, features.keypoints[:, :2])
    assert features.noise_sigma < 3 and not features.denoised
    automatic = nhpatches.detect_and_describe(astronaut, max_keypoints=150, pipeline="sift")
    assert not automatic.denoised  # "auto" leaves a clean photo alone
    noisy = add_noise(astronaut, 35, np.random.default_rng(0))
    assert nhpatches.detect_and_describe(noisy, max_keypoints=50, pipeline="raw").denoised
    flipped = nhpatches.detect_and_describe(astronaut, 50, pipeline="raw", denoise=lambda gray: gray[:, ::-1].copy())
    assert flipped.denoised and flipped.descriptors.shape == (50, 1024)
    colour = np.stack([astronaut] * 3, axis=-1)
    np.testing.assert_array_equal(
        nhpatches.detect_and_describe(colour, 40, pipeline="sift", denoise="none").descriptors,
        nhpatches.detect_and_describe(astronaut, 40, pipeline="sift", denoise="none").descriptors,
    )


def test_the_region_widens_only_on_a_very_noisy_image_left_noisy(astronaut: np.ndarray) -> None:
    trained = images.trained_magnification()
    assert images.default_region(images.NOISY_REGION_MIN_SIGMA, denoised=False) == trained
    assert images.default_region(images.NOISY_REGION_MIN_SIGMA + 1, denoised=False) == pytest.approx(
        trained * images.NOISY_REGION_SCALE
    )
    assert images.default_region(50.0, denoised=True) == trained
    assert (
        images.default_region(50.0, False, pipeline="sift") == images.DEFAULT_MAGNIFICATION * images.NOISY_REGION_SCALE
    )
    noisy = add_noise(astronaut, 40, np.random.default_rng(0))
    left = nhpatches.detect_and_describe(noisy, max_keypoints=60, denoise="none", pipeline="raw")
    assert left.noise_sigma > images.NOISY_REGION_MIN_SIGMA and left.magnification == pytest.approx(
        images.DEFAULT_MAGNIFICATION * images.NOISY_REGION_SCALE
    )
    wider = nhpatches.extract_patches(noisy, left.keypoints, magnification=left.magnification)
    np.testing.assert_allclose(
        left.descriptors, nhpatches.describe(wider, pipeline="raw"), atol=1e-6
    )  # the patches described are those cut at the recorded region
    assert nhpatches.detect_and_describe(noisy, 60, pipeline="raw").magnification == images.DEFAULT_MAGNIFICATION
    chosen = nhpatches.detect_and_describe(noisy, 60, denoise="none", pipeline="raw", magnification=6.0)
    assert chosen.magnification == 6.0


def test_a_denoised_image_is_detected_with_the_lower_contrast_threshold(astronaut: np.ndarray) -> None:
    noisy = add_noise(astronaut, 35, np.random.default_rng(0))
    found = nhpatches.detect_and_describe(noisy, max_keypoints=5000, pipeline="raw", denoise="nlm")
    seen = denoise_nlm(noisy, images.NLM_STRENGTH * estimate_noise_sigma(noisy))
    np.testing.assert_array_equal(found.keypoints, detect_sift(seen, 5000, images.DENOISED_CONTRAST_THRESHOLD))
    assert images.DENOISED_CONTRAST_THRESHOLD < images.SIFT_CONTRAST_THRESHOLD
    assert len(found) > len(detect_sift(seen, 5000, images.SIFT_CONTRAST_THRESHOLD))
    plain = nhpatches.detect_and_describe(noisy, max_keypoints=5000, pipeline="raw", denoise="none")
    np.testing.assert_array_equal(plain.keypoints, detect_sift(noisy, 5000, images.SIFT_CONTRAST_THRESHOLD))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"detector": "orb"}, "detector: expected 'sift'"),
        ({"denoise": "bilateral"}, "denoise: expected one of"),
        ({"denoise": lambda gray: gray[:10]}, "denoise: your function must return uint8"),
        ({"max_keypoints": 0}, "max_keypoints: expected a positive integer"),
        ({"magnification": 0}, "magnification"),
        ({"pipeline": "nonesuch"}, "unknown pipeline"),
    ],
)
def test_detect_and_describe_rejects_bad_settings(astronaut: np.ndarray, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nhpatches.detect_and_describe(astronaut[:200, :200], **options)


def test_detect_and_describe_rejects_bad_images() -> None:
    with pytest.raises(ValueError, match="image: expected uint8"):
        nhpatches.detect_and_describe(np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match=r"image: expected a grayscale \(H, W\) or colour \(H, W, 3\)"):
        nhpatches.detect_and_describe(np.zeros((64, 64, 2), np.uint8))


# --------------------------------------------------------------------------- match_images


def test_shipped_descriptor_matches_a_warped_photo_well_above_chance(warped_pair: tuple) -> None:
    """describe() with the shipped weights on SIFT keypoints: most matches are correct and the homography is found."""
    photo, warped, homography = warped_pair
    result = nhpatches.match_images(photo, warped, max_keypoints=400, denoise="none")
    assert result.matches.shape[1] == 2 and len(result.matches) >= 100
    assert result.features1.descriptors.shape == (len(result.features1), 128)
    # a random pair lands within 3 px with probability about 28 / (512 * 512): chance is ~0
    assert correct_share(result, homography) > 0.6
    assert result.inliers.dtype == bool and result.inliers.shape == (len(result.matches),)
    corners = np.array([[0, 0], [511, 0], [511, 511], [0, 511]], float)
    moved = extraction.apply_homography(result.homography, corners)
    assert np.linalg.norm(moved - extraction.apply_homography(homography, corners), axis=1).mean() < 3


def test_noisy_pair_matches_with_the_automatic_denoiser(warped_pair: tuple) -> None:
    photo, warped, homography = warped_pair
    noisy = [add_noise(image, 35, np.random.default_rng(seed)) for seed, image in enumerate((photo, warped))]
    result = nhpatches.match_images(*noisy, max_keypoints=400, pipeline="sift", method="ransac")
    assert result.features1.denoised and result.features2.denoised
    assert correct_share(result, homography) > 0.4 and result.inliers.sum() >= 30


def test_match_images_errors_name_the_problem(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError, match="image1: no keypoints detected"):
        nhpatches.match_images(np.full((80, 80), 7, np.uint8), astronaut, pipeline="sift")
    with pytest.raises(ValueError, match="too few matches for a homography: 3"):
        nhpatches.match_images(astronaut, astronaut, max_keypoints=3, pipeline="sift")
    with pytest.raises(ValueError, match="method: expected one of"):
        images.find_homography(np.zeros((5, 2)), np.zeros((5, 2)), method="lmeds")


# --------------------------------------------------------------------------- hpatches-match


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory, warped_pair: tuple) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    photo, warped, _ = warped_pair
    files = {"photo": folder / "photo.png", "warped": folder / "warped.jpg", "garbage": folder / "garbage.png"}
    cv2.imwrite(str(files["photo"]), cv2.cvtColor(photo, cv2.COLOR_GRAY2BGR))
    cv2.imwrite(str(files["warped"]), warped)
    files["garbage"].write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    files["truncated"] = folder / "truncated.png"
    files["truncated"].write_bytes(files["photo"].read_bytes()[:2000])
    files["deep"] = folder / "deep.png"
    cv2.imwrite(str(files["deep"]), (np.arange(4096).reshape(64, 64) * 16).astype(np.uint16))
    files["flat"] = folder / "flat.png"
    cv2.imwrite(str(files["flat"]), np.full((100, 100), 128, np.uint8))
    files["tiny"] = folder / "tiny.png"
    cv2.imwrite(str(files["tiny"]), np.full((8, 8), 128, np.uint8))
    return files


def test_command_draws_the_inliers_and_prints_the_counts(
    image_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "matches.png"
    argv = [str(image_files["photo"]), str(image_files["warped"]), "--out", str(out), "--pipeline", "sift"]
    assert match_main([*argv, "--max-keypoints", "300", "--noise", "10", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "keypoints 300 / 300, matches" in printed and "inliers" in printed and str(out) in printed
    drawing = cv2.imread(str(out))
    assert drawing.shape == (512, 1024, 3) and (drawing[..., 1] > drawing[..., 0] + 100).any()  # green lines


@pytest.mark.parametrize(
    ("first", "extra", "message"),
    [
        ("missing", [], "missing.png: image file not found"),
        ("garbage", [], "garbage.png: cannot read an image from this file"),
        ("truncated", [], "truncated.png: cannot read an image from this file"),
        ("deep", [], "deep.png: expected an 8-bit image, got uint16"),
        ("tiny", [], "tiny.png: expected a grayscale or colour image of at least 16 x 16 pixels"),
        ("flat", [], "flat.png: no keypoints detected"),
        ("photo", ["--max-keypoints", "3"], "too few matches for a homography: "),
        ("photo", ["--noise", "-2"], "--noise must be a non-negative"),
        ("photo", ["--out", "/nonexistent-folder/m.png"], "/nonexistent-folder: folder of --out does not exist"),
        ("photo", ["--pipeline", "nonesuch"], "unknown pipeline 'nonesuch'"),
    ],
)
def test_command_bad_input_is_one_line(
    image_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    first: str,
    extra: list[str],
    message: str,
) -> None:
    path = image_files.get(first, tmp_path / "missing.png")
    pipeline = [] if "--pipeline" in extra else ["--pipeline", "sift"]
    assert match_main([str(path), str(image_files["warped"]), "--out", str(tmp_path / "m.png"), *pipeline, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpatches-match: error: ") and message in err and err.count("\n") == 1, err


def test_command_in_a_subprocess_prints_one_line_and_no_traceback(image_files: dict[str, Path], tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nhpatches.cli.match",
            str(image_files["truncated"]),
            str(image_files["photo"]),
            "--out",
            str(tmp_path / "m.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(LIB), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "truncated.png: cannot read an image" in done.stderr, done.stderr
