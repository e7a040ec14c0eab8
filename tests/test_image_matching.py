"""The image-matching benchmark: sequence reader (HPatches and Oxford layouts), development pairs, scores, runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from nhpatches.cli import match_bench, match_rows
from nhpatches.data import embedded
from nhpatches.data import image_pairs as ip
from nhpatches.data.extraction import warp_image
from nhpatches.evaluation import image_matching as im

HOMOGRAPHIES = (
    np.array([[1.0, 0.02, 3.0], [-0.01, 0.98, -2.0], [0.0, 0.0, 1.0]]),
    np.array([[0.9, 0.1, 8.0], [-0.1, 0.9, 12.0], [1e-4, 0.0, 1.0]]),
)


def synthetic_images(size: int = 160) -> tuple[list[np.ndarray], tuple[np.ndarray, ...]]:
    """A scikit-image photo (its central square, downscaled) and its warps by known homographies."""
    photo = cv2.resize(embedded.load_photo("astronaut.png")[:400, 56:456], (size, size), interpolation=cv2.INTER_AREA)
    images = [photo] + [warp_image(photo, homography) for homography in HOMOGRAPHIES]
    return [np.clip(np.round(image), 0, 255).astype(np.uint8) for image in images], HOMOGRAPHIES


def write_homography(path: Path, homography: np.ndarray) -> None:
    path.write_text("\n".join(" ".join(f"{v:.12g}" for v in row) for row in homography) + "\n")


@pytest.fixture(scope="module")
def synthetic() -> tuple[list[np.ndarray], tuple[np.ndarray, ...]]:
    return synthetic_images()


@pytest.fixture
def hpatches_dir(tmp_path: Path, synthetic) -> Path:
    """The synthetic sequence in the HPatches layout (1.png, 2.ppm in colour, 3.png; H_1_2, H_1_3)."""
    images, homographies = synthetic
    folder = tmp_path / "v_synthetic"
    folder.mkdir()
    for k, image in enumerate(images, start=1):
        cv2.imwrite(str(folder / f"{k}.{'ppm' if k == 2 else 'png'}"), np.dstack([image] * 3) if k == 2 else image)
    for k, homography in enumerate(homographies, start=2):
        write_homography(folder / f"H_1_{k}", homography)
    return folder


@pytest.fixture
def oxford_dir(tmp_path: Path, synthetic) -> Path:
    """The synthetic sequence in the Oxford layout (img1.pgm, img2.png, img3.ppm in colour)."""
    images, homographies = synthetic
    folder = tmp_path / "graf"
    folder.mkdir()
    for k, image in enumerate(images, start=1):
        cv2.imwrite(str(folder / f"img{k}.{('pgm', 'png', 'ppm')[k - 1]}"), np.dstack([image] * 3) if k == 3 else image)
    for k, homography in enumerate(homographies, start=2):
        write_homography(folder / f"H1to{k}p", homography)
    return folder


# --------------------------------------------------------------------------- reader


def test_both_layouts_read_the_same_sequence(hpatches_dir: Path, oxford_dir: Path, synthetic) -> None:
    images, homographies = synthetic
    for folder, layout in ((hpatches_dir, "hpatches"), (oxford_dir, "oxford")):
        sequence = ip.read_image_sequence(folder)
        assert sequence.layout == layout and len(sequence.images) == 3 and len(sequence.homographies) == 2
        for read, written in zip(sequence.images, images, strict=False):
            assert read.dtype == np.uint8 and np.array_equal(read, written)
        for read, written in zip(sequence.homographies, homographies, strict=False):
            np.testing.assert_allclose(read, written, rtol=1e-10)
    assert ip.read_image_sequence(hpatches_dir).kind == "viewpoint"
    assert ip.image_sequence_dirs(hpatches_dir.parent) == sorted([hpatches_dir, oxford_dir])
    assert ip.image_sequence_dirs(hpatches_dir) == [hpatches_dir]


def test_real_wormhole_fixture_reads(fixtures_dir: Path) -> None:
    sequence = ip.read_image_sequence(fixtures_dir / "hpatches-images" / "v_wormhole")
    assert len(sequence.images) == 6 and sequence.images[0].shape == (653, 986)
    np.testing.assert_allclose(sequence.homographies[0][0], [1.4733, -0.014435, 76.772])


def test_missing_image_names_the_file(hpatches_dir: Path) -> None:
    (hpatches_dir / "3.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"v_synthetic.*missing 3\.ppm"):
        ip.read_image_sequence(hpatches_dir)


def test_missing_homography_names_the_file(oxford_dir: Path) -> None:
    (oxford_dir / "H1to3p").unlink()
    with pytest.raises(FileNotFoundError, match=r"graf.*missing H1to3p"):
        ip.read_image_sequence(oxford_dir)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 2 3\n4 5 6\n", r"H_1_2: expected a 3x3 homography.*shape \(2, 3\)"),
        ("1 0 x\n0 1 0\n0 0 1\n", r"H_1_2: unreadable homography"),
        ("0 0 0\n0 0 0\n0 0 0\n", r"H_1_2: expected a finite, invertible"),
    ],
)
def test_bad_homography_names_the_file(hpatches_dir: Path, text: str, message: str) -> None:
    (hpatches_dir / "H_1_2").write_text(text)
    with pytest.raises(ValueError, match=message):
        ip.read_image_sequence(hpatches_dir)


def test_unreadable_image_and_bad_folders(hpatches_dir: Path, tmp_path: Path) -> None:
    (hpatches_dir / "2.ppm").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"2\.ppm: not a readable image"):
        ip.read_image_sequence(hpatches_dir)
    (hpatches_dir / "2.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"2 files for image 2"):
        ip.read_image_sequence(hpatches_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"empty: neither of the image-sequence layouts"):
        ip.read_image_sequence(empty)
    with pytest.raises(FileNotFoundError, match=r"empty: no image sequences found"):
        ip.image_sequence_dirs(empty)
    with pytest.raises(NotADirectoryError, match=r"nowhere"):
        ip.image_sequence_dirs(tmp_path / "nowhere")
    write_homography(empty / "H_1_2", np.eye(3))
    write_homography(empty / "H1to2p", np.eye(3))
    with pytest.raises(ValueError, match=r"empty: both of the image-sequence layouts"):
        ip.read_image_sequence(empty)


# --------------------------------------------------------------------------- development pairs


def test_dev_pairs_use_test_photos_only() -> None:
    stems = [stem for _, stem in embedded.PHOTOS]
    train = {name[2:] for name in embedded.make_splits(stems, 0)["a"]["train"]}
    chosen = {stem for _, stem in ip.dev_photos()}
    assert chosen and not chosen & train
    assert chosen == {name[2:] for name in embedded.make_splits(stems, 0)["a"]["test"]}


def test_dev_pairs_build_read_and_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ip, "dev_photos", lambda: [("coffee.png", "coffee")])
    out = ip.ensure_dev_pairs(tmp_path / "pairs", seed=3)
    assert ip.dev_pairs_complete(out, seed=3) and not ip.dev_pairs_complete(out, seed=4)
    assert json.loads((out / ip.DEV_PAIRS_MANIFEST).read_text())["sequences"] == ["v_coffee", "i_coffee"]
    for folder in ip.image_sequence_dirs(out):
        sequence = ip.read_image_sequence(folder)
        assert sequence.layout == "hpatches" and len(sequence.images) == 6
        height, width = sequence.images[0].shape
        for image, homography in zip(sequence.images[1:], sequence.homographies, strict=False):
            back = cv2.warpPerspective(image, np.linalg.inv(homography), (width, height)).astype(float)
            inside = cv2.warpPerspective(np.ones_like(image), np.linalg.inv(homography), (width, height)) > 0
            ncc = np.corrcoef(back[inside], sequence.images[0][inside].astype(float))[0, 1]
            assert ncc > 0.7, (folder.name, ncc)  # the homography maps image 1 onto image k
    (out / "v_coffee" / "6.png").unlink()
    assert not ip.dev_pairs_complete(out, seed=3)  # a folder with a file missing is rebuilt
    assert (ip.ensure_dev_pairs(out, seed=3) / "v_coffee" / "6.png").is_file()


# --------------------------------------------------------------------------- scores


def test_mma_of_hand_made_matches() -> None:
    homography = HOMOGRAPHIES[1]
    xy1 = np.array([[10.0, 20.0], [50.0, 40.0], [80.0, 90.0], [120.0, 30.0], [60.0, 140.0], [15.0, 100.0]])
    offsets = np.array([0.0, 0.5, 1.5, 2.5, 4.0, 12.0])
    xy2 = im.project(homography, xy1) + offsets[:, None] * np.array([0.6, 0.8])  # unit direction
    matches = np.array([[i, i] for i in range(6)])
    errors = im.reprojection_errors(xy1, xy2, matches, homography)
    np.testing.assert_allclose(errors, offsets, atol=1e-9)
    np.testing.assert_allclose(im.mma(errors), [2 / 6, 3 / 6, 4 / 6, 5 / 6, 5 / 6, 5 / 6, 5 / 6, 5 / 6, 5 / 6, 5 / 6])
    assert im.mma(np.zeros(0)).tolist() == [0.0] * 10


def test_corner_error_of_exact_and_shifted_homographies() -> None:
    homography, shape = HOMOGRAPHIES[1], (160, 200)
    assert im.corner_error(homography, homography, shape) == 0.0
    shifted = np.array([[1, 0, 3.0], [0, 1, 4.0], [0, 0, 1]]) @ homography
    assert im.corner_error(shifted, homography, shape) == pytest.approx(5.0)
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 160, (50, 2))
    estimate, inliers = im.estimate_homography(points, im.project(homography, points))
    assert inliers == 50 and im.corner_error(estimate, homography, shape) < 1e-3
    assert im.estimate_homography(points[:3], points[:3]) == (None, 0)
    with pytest.raises(ValueError, match="estimator 'lmeds'"):
        im.estimate_homography(points, points, "lmeds")


def test_noise_is_the_same_draw_for_every_method(synthetic) -> None:
    image = synthetic[0][0]
    first = im.add_image_noise(image, 20, im.noise_seed("v_x", 1, 20))
    assert np.array_equal(first, im.add_image_noise(image, 20, im.noise_seed("v_x", 1, 20)))
    assert not np.array_equal(first, im.add_image_noise(image, 20, im.noise_seed("v_x", 2, 20)))
    assert first.dtype == np.uint8 and 15 < np.std(first.astype(float) - image) < 25
    assert im.add_image_noise(image, 0, 0) is image
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        im.add_image_noise(image, -1, 0)


# --------------------------------------------------------------------------- runs


def sift_features(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keypoints, descriptors = cv2.SIFT_create(nfeatures=300).detectAndCompute(image, None)
    return np.array([k.pt for k in keypoints]).reshape(-1, 2), descriptors


def cross_check(d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    return np.array([[m.queryIdx, m.trainIdx] for m in cv2.BFMatcher(cv2.NORM_L2, crossCheck=True).match(d1, d2)])


def test_run_benchmark_on_the_synthetic_sequence(hpatches_dir: Path) -> None:
    methods = [
        im.Method("sift", sift_features),  # mutual nearest neighbours: nets.matching.match_descriptors
        im.Method("three", lambda image: (np.array([[1.0, 1], [5, 5], [9, 2]]), np.eye(3)), cross_check),
    ]
    records = im.run_benchmark([hpatches_dir], methods, sigmas=(0, 20))
    assert len(records) == 2 * 2 * 2 and set(records["pair"]) == {"1-2", "1-3"}
    summary = im.summarise(records)
    sift = summary.loc[("sift", 0.0)]
    assert sift["mma_3"] > 0.8 and sift["h_acc_3"] == 1.0 and sift["correct_3"] > 50
    assert summary.loc[("sift", 20.0), "mma_3"] < sift["mma_3"]  # noise hurts
    assert (summary.loc["three", "h_acc_5"] == 0).all()  # < 4 matches: a miss
    assert records.loc[records["method"] == "three", "corner_error"].isna().all()
    assert (summary["seconds_per_pair"] > 0).all()
    curves = im.mma_curves(records)
    assert len(curves) == 2 * 2 * 10 and curves["mma"].between(0, 1).all()
    table = im.headline(summary)
    assert list(table.columns) == ["MMA@3 σ0", "MMA@3 σ20", "H@3px σ0", "H@3px σ20"]


def test_a_second_estimator_is_scored_from_the_same_matches(hpatches_dir: Path) -> None:
    """``also=("magsac",)`` adds its own corner errors and accuracies; the primary estimator's columns are unchanged."""
    methods = [im.Method("sift", sift_features)]
    plain = im.run_benchmark([hpatches_dir], methods, sigmas=(0,), pairs=[2])
    both = im.run_benchmark([hpatches_dir], methods, sigmas=(0,), pairs=[2], also=("magsac",))
    np.testing.assert_array_equal(plain["corner_error"], both["corner_error"])
    assert both["corner_error_magsac"].between(0, 3).all() and "corner_error_magsac" not in plain
    summary = im.summarise(both)
    assert summary.loc[("sift", 0.0), "h_acc_3_magsac"] == 1.0 and "h_acc_1_magsac" in summary
    assert list(im.headline(summary).columns) == ["MMA@3 σ0", "H@3px σ0", "H@3px magsac σ0"]
    with pytest.raises(ValueError, match="each once"):
        im.run_benchmark([hpatches_dir], methods, sigmas=(0,), also=("ransac",))
    with pytest.raises(ValueError, match="estimator 'lmeds'"):
        im.run_benchmark([hpatches_dir], methods, sigmas=(0,), also=("lmeds",))


def test_bad_methods_are_named(hpatches_dir: Path) -> None:
    bad = im.Method("bad", lambda image: (np.zeros((4, 3)), np.zeros((4, 8))))
    with pytest.raises(ValueError, match=r"method 'bad': expected finite keypoint coordinates"):
        im.run_benchmark([hpatches_dir], [bad], sigmas=(0,))
    short = im.Method("short", lambda image: (np.zeros((4, 2)), np.zeros((3, 8))))
    with pytest.raises(ValueError, match=r"method 'short': expected descriptors of shape \(4, D\)"):
        im.run_benchmark([hpatches_dir], [short], sigmas=(0,))
    with pytest.raises(ValueError, match="names must be unique"):
        im.run_benchmark([hpatches_dir], [bad, bad])
    with pytest.raises(ValueError, match="no pairs"):
        im.summarise(pd.DataFrame())


def test_default_matcher_is_mutual_nearest_neighbours() -> None:
    rng = np.random.default_rng(1)
    d1, d2 = rng.standard_normal((40, 8)).astype(np.float32), rng.standard_normal((50, 8)).astype(np.float32)
    expected = cross_check(d1, d2)
    got = im.Method("m", sift_features).match(d1, d2)
    assert sorted(map(tuple, got)) == sorted(map(tuple, expected))


# --------------------------------------------------------------------------- the command and its rows


def test_row_specs_parse_and_reject() -> None:
    spec = match_rows.RowSpec.parse("unet+describe:magnification=8,weights=runs/x")
    assert (spec.denoiser, spec.descriptor, spec.magnification, spec.weights) == ("unet", "describe", 8.0, "runs/x")
    assert match_rows.RowSpec.parse("rootsift") == match_rows.RowSpec("rootsift", "rootsift")
    for text, message in (
        ("surf", "unknown descriptor 'surf'"),
        ("describe:size=3", "bad option 'size=3'"),
        ("sift:magnification=8", "applies to the describe descriptor only"),
        ("describe:magnification=big", "is not a number"),
        ("describe:magnification=0", "magnification must be > 0"),
    ):
        with pytest.raises(ValueError, match=message):
            match_rows.RowSpec.parse(text)
    with pytest.raises(ValueError, match="denoiser 'unet': expected 'nlm', 'auto' or a name given with --denoiser"):
        match_rows.build_method(match_rows.RowSpec.parse("unet+sift"), 100, {})


def test_nlm_rows_denoise_as_the_product(synthetic) -> None:
    photo = synthetic[0][0]
    noisy = im.add_image_noise(photo, 35, 0)
    auto, nlm = match_rows.nlm_filter(auto=True), match_rows.nlm_filter(auto=False)
    assert auto(photo) is photo  # a clean photo: sigma below AUTO_DENOISE_MIN_SIGMA, left as it is
    assert not np.array_equal(nlm(photo), photo)
    for denoised in (auto(noisy), nlm(noisy)):
        assert denoised.dtype == np.uint8 and denoised.shape == photo.shape
        assert np.abs(denoised.astype(float) - photo).mean() < 0.6 * np.abs(noisy.astype(float) - photo).mean()


def test_keras_denoiser_runs_on_whole_images(tmp_path: Path) -> None:
    from nhpatches.nets.models import build_unet

    model = build_unet(32)
    model.save(tmp_path / "model.keras")
    denoise = match_rows.load_image_denoiser(tmp_path / "model.keras")
    image = np.random.default_rng(0).integers(0, 256, (37, 50), dtype=np.uint8)
    out = denoise(image)
    assert out.shape == (37, 50) and out.dtype == np.uint8
    patch = image[:32, :32].astype(np.float32)[None, :, :, None]
    expected = np.clip(model.predict_on_batch(patch)[0, :, :, 0], 0, 255).astype(np.uint8)
    whole = denoise(image[:32, :32].copy())
    assert np.abs(whole.astype(int) - expected).max() <= 1  # same weights as the 32 px model
    (tmp_path / "bad.keras").write_text("not a model")
    with pytest.raises(ValueError, match=r"bad\.keras: not a loadable Keras model"):
        match_rows.load_image_denoiser(tmp_path / "bad.keras")


def test_command_writes_tables_and_figures(hpatches_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench"
    rows = ["sift", "rootsift", "nlm+sift", "describe:magnification=6", "auto+describe"]
    argv = [
        "--data",
        str(hpatches_dir.parent),
        "--sequences",
        "v_synthetic",
        "--sigmas",
        "0",
        "20",
        "--max-keypoints",
        "200",
        "--out",
        str(out),
        "--rows",
        *rows,
    ]
    assert match_bench.main(argv) == 0
    assert "H@3px σ20" in capsys.readouterr().out
    for name in (
        "pairs.csv",
        "summary.md",
        "headline.md",
        "run.json",
        "fig_mma_vs_threshold.png",
        "fig_mma3_vs_sigma.png",
        "fig_homography_vs_sigma.png",
        "summary_by_kind.csv",
    ):
        assert (out / name).is_file(), name
    summary = pd.read_csv(out / "summary.csv").set_index(["method", "sigma"])
    assert list(summary.index.get_level_values(0).unique()) == rows
    assert (summary.xs(0.0, level="sigma")["mma_3"] > 0.6).all()
    assert json.loads((out / "run.json").read_text())["pairs"] == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rows", "sift", "sift"], "each row once"),
        (["--rows", "surf"], "unknown descriptor"),
        (["--sequences", "v_nothing"], r"unknown \['v_nothing'\]"),
        (["--max-keypoints", "0"], "--max-keypoints must be a positive integer"),
        (["--pairs", "1"], "--pairs: image numbers k >= 2"),
        (["--denoiser", "unet"], "expected NAME=PATH"),
        (["--denoiser", "unet=missing.keras"], r"missing\.keras: denoiser model not found"),
    ],
)
def test_command_bad_input_is_one_line(hpatches_dir: Path, tmp_path: Path, capsys, extra, message) -> None:
    argv = ["--data", str(hpatches_dir.parent), "--rows", "sift", "--out", str(tmp_path / "o"), *extra]
    if "--rows" in extra:
        argv = argv[:2] + argv[4:]
    assert match_bench.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpatches-match-bench: error:") and err.count("\n") == 1
    assert re.search(message, err), err
    assert match_bench.main(["--data", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
