"""Patches cut at keypoints (data.regions: extract_patches, the dataset's cutter) and descriptor matching."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
from scipy import ndimage

from nhpatches.data import embedded, extraction, regions
from nhpatches.data.regions import ImagePyramid, extract_patches
from nhpatches.nets.matching import match_descriptors


@pytest.fixture(scope="module")
def camera() -> np.ndarray:
    """scikit-image's camera photo, 512 x 512 uint8 (the embedded dataset's loader, contrast-stretched)."""
    return np.round(embedded.load_photo("camera.png")).astype(np.uint8)


def sift_keypoints(image: np.ndarray, count: int) -> np.ndarray:
    """OpenCV SIFT keypoints as (N, 4) rows (x, y, size, angle)."""
    return regions.keypoint_array(cv2.SIFT_create(nfeatures=count).detect(image, None))


def mean_abs_diff(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per-patch mean absolute difference. Shape: (N, P, P) x 2 -> (N,)"""
    return np.abs(first.astype(float) - second.astype(float)).mean(axis=(1, 2))


# --------------------------------------------------------------------------- the embedded dataset's cutter


def test_extract_sequence_output_is_unchanged() -> None:
    """The dataset's extraction gives the bytes it gave before the cutter moved to data.regions (commit 4a8897f)."""
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.uniform(0, 255, (160, 200)), 3.0)
    reference = np.round((image - image.min()) / (image.max() - image.min()) * 255).astype(np.float32)
    targets, homographies = extraction.make_targets(reference, "viewpoint", np.random.default_rng(1))
    strips = extraction.extract_sequence(reference, targets, homographies, 12, np.random.default_rng(2))
    assert strips.shape == (16, 12, 32, 32) and strips.dtype == np.uint8
    digest = hashlib.sha256(strips.tobytes()).hexdigest()
    assert digest == "8e45f2ab16eee4d8d118b1936540956ceb66689eb8c5013f3f3c6e80e790598f"


def test_fast_cutter_is_within_one_grey_level_of_the_datasets(camera: np.ndarray) -> None:
    """extract_patches (cv2.remap, cv2 pyramid) against the dataset's exact interpolation on the same frames."""
    keypoints = sift_keypoints(camera, 400)
    fast = extract_patches(camera, keypoints)
    exact = ImagePyramid(camera, levels=regions.PYRAMID_LEVELS, exact=True).cut(keypoints)
    difference = np.abs(fast.astype(int) - exact)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01
    assert len(np.unique(regions.pyramid_levels(keypoints[:, 2] * 2.5 / 32, 5))) >= 3  # several levels were used


def test_sampled_patch_is_the_magnified_oriented_square() -> None:
    """A 65 px patch of a linear ramp: centre at (x, y), half-width magnification * size / 2, x axis along the angle."""
    ys, xs = np.mgrid[0:200, 0:200]
    ramp = (xs + 0.0 * ys).astype(np.uint8)  # grey level = x
    cut = extract_patches(
        ramp, np.array([[100.0, 90.0, 8.0, -1.0], [100.0, 90.0, 8.0, 90.0]]), size=65, magnification=3
    )
    # half-width 3 * 4 = 12 px: upright, x runs 88..112 along the patch's columns
    np.testing.assert_array_equal(cut[0][32], np.round(np.linspace(88, 112, 65)).astype(np.uint8))
    assert (cut[0] == cut[0][:1]).all()  # constant down the columns
    # angle 90 deg: the patch's x axis points down the image (+y), so the ramp runs down the patch's rows
    np.testing.assert_array_equal(cut[1][:, 32], np.round(np.linspace(112, 88, 65)).astype(np.uint8))


def test_keypoint_list_array_pyramid_and_colour_agree(camera: np.ndarray) -> None:
    points = cv2.SIFT_create(nfeatures=50).detect(camera, None)
    as_array = regions.keypoint_array(points)
    patches = extract_patches(camera, points)
    assert patches.shape == (len(points), 32, 32) and patches.dtype == np.uint8
    np.testing.assert_array_equal(extract_patches(camera, as_array), patches)
    np.testing.assert_array_equal(ImagePyramid(camera).cut(as_array), patches)
    np.testing.assert_array_equal(extract_patches(ImagePyramid(camera), points), patches)
    sampled = extract_patches(camera, points, size=65)
    np.testing.assert_array_equal(regions.resize_patches(sampled, 32), patches)
    frames = regions.keypoint_frames(points)
    np.testing.assert_array_equal(
        ImagePyramid(camera).sample(regions.frame_matrices(frames), frames.radii / 32), sampled
    )
    upright = as_array.copy()
    upright[:, 3] = -1
    np.testing.assert_array_equal(extract_patches(camera, upright), extract_patches(camera, upright * [1, 1, 1, 0]))
    rgb = np.stack([camera, np.roll(camera, 3, axis=1), camera // 2], axis=-1)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(extract_patches(rgb, points), extract_patches(gray, points))
    assert extract_patches(camera, np.zeros((0, 4))).shape == (0, 32, 32)


@pytest.mark.parametrize(
    ("image", "keypoints", "message"),
    [
        (np.zeros((64, 64), np.float32), np.array([[5.0, 5, 4, 0]]), "image: expected uint8"),
        (np.zeros((64, 64, 4), np.uint8), np.array([[5.0, 5, 4, 0]]), "image: expected a grayscale"),
        (np.zeros(64, np.uint8), np.array([[5.0, 5, 4, 0]]), "got shape (64,)"),
        (np.zeros((64, 64), np.uint8), np.array([[5.0, 5, 4]]), "keypoints: expected an (N, 4) array"),
        (np.zeros((64, 64), np.uint8), np.array([[5.0, 5, 0, 0]]), "sizes > 0"),
        (np.zeros((64, 64), np.uint8), np.array([[np.nan, 5, 4, 0]]), "finite"),
        (np.zeros((64, 64), np.uint8), "points", "keypoints: expected a list of cv2.KeyPoint"),
    ],
)
def test_bad_input_names_what_was_expected(image: np.ndarray, keypoints: object, message: str) -> None:
    with pytest.raises(ValueError) as error:
        extract_patches(image, keypoints)
    assert message in str(error.value)


def test_bad_size_and_magnification_are_named() -> None:
    image, keypoints = np.zeros((64, 64), np.uint8), np.array([[5.0, 5, 4, 0]])
    with pytest.raises(ValueError, match="size"):
        extract_patches(image, keypoints, size=0)
    with pytest.raises(ValueError, match="magnification"):
        extract_patches(image, keypoints, magnification=-1)


# --------------------------------------------------------------------------- geometry


def test_opencv_sift_angles_are_applied_with_the_right_sign(camera: np.ndarray) -> None:
    """SIFT on the photo and on np.rot90 of it: the twin keypoints' patches agree; with the angle negated they do not.

    np.rot90 maps (x, y) to (y, W - 1 - x) and turns directions by -90 degrees in image coordinates. (OpenCV's
    SIFT positions carry a bias of about +0.24 px on both axes, from its 2x upsampled first octave, so twins
    are 0.5 px apart after the rotation.)
    """
    rotated = np.ascontiguousarray(np.rot90(camera))
    first, second = sift_keypoints(camera, 600), sift_keypoints(rotated, 600)
    mapped = np.stack([first[:, 1], camera.shape[1] - 1 - first[:, 0]], axis=1)
    gaps = np.linalg.norm(mapped[:, None] - second[None, :, :2], axis=-1)
    same_place = (gaps < 0.75) & (np.abs(np.log(second[None, :, 2] / first[:, None, 2])) < 0.02)
    unique = (same_place.sum(1) == 1) & (same_place.sum(0)[same_place.argmax(1)] == 1)  # one orientation each
    twins = same_place.argmax(1)[unique]
    first, second = first[unique], second[twins]
    assert len(first) >= 50
    turn = (second[:, 3] - first[:, 3]) % 360  # what OpenCV reports for the twin
    assert np.median(np.abs(turn - 270)) < 3  # -90 degrees: OpenCV's angle is in image coordinates
    second[:, :2] = mapped[unique]  # the twin's own size and angle, at the exact position
    agree = mean_abs_diff(extract_patches(camera, first), extract_patches(rotated, second))
    flipped = [1, 1, 1, -1]  # the other sign convention
    disagree = mean_abs_diff(extract_patches(camera, first * flipped), extract_patches(rotated, second * flipped))
    assert np.median(agree) < 1 and np.median(disagree) > 10  # 0 and about 60 grey levels on this photo


def twin_keypoints(keypoints: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Keypoints mapped through a homography: position, size by sqrt(|det J|), angle by J, J the local Jacobian.

    Shape: (N, 4) -> (N, 4)
    """
    xy = extraction.apply_homography(homography, keypoints[:, :2])
    step = 1e-3
    dx = (extraction.apply_homography(homography, keypoints[:, :2] + [step, 0]) - xy) / step
    dy = (extraction.apply_homography(homography, keypoints[:, :2] + [0, step]) - xy) / step
    jacobian = np.stack([dx, dy], axis=-1)  # (N, 2, 2): columns are the images of the x and y axes
    angles = np.deg2rad(keypoints[:, 3])
    turned = np.einsum("nij,nj->ni", jacobian, np.stack([np.cos(angles), np.sin(angles)], axis=1))
    size = keypoints[:, 2] * np.sqrt(np.abs(np.linalg.det(jacobian)))
    return np.column_stack([xy, size, np.rad2deg(np.arctan2(turned[:, 1], turned[:, 0])) % 360])


def test_patches_at_homography_twins_agree(camera: np.ndarray) -> None:
    """A synthetic warp (zoom 0.8, 25 degrees, perspective): patches at keypoints and at their mapped twins agree."""
    size = camera.shape[1], camera.shape[0]
    corners = np.array([[0, 0], [size[0] - 1, 0], [size[0] - 1, size[1] - 1], [0, size[1] - 1]], float)
    angle = np.deg2rad(25)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = corners.mean(0) + 0.8 * (corners - corners.mean(0)) @ rotation.T + [[10, -6], [-12, 8], [6, 10], [-8, -5]]
    homography = extraction.homography_from_points(corners, moved)
    warped = np.round(extraction.warp_image(camera.astype(np.float32), homography)).astype(np.uint8)
    keypoints = sift_keypoints(camera, 500)
    keypoints = keypoints[keypoints[:, 2] > 3]  # the smallest SIFT scales sit below the warp's own blur
    twins = twin_keypoints(keypoints, homography)
    radius = regions.MAGNIFICATION * twins[:, 2] / 2 * np.sqrt(2)
    inside = (twins[:, :2] > radius[:, None]).all(1) & (twins[:, :2] < np.array(size) - 1 - radius[:, None]).all(1)
    keypoints, twins = keypoints[inside], twins[inside]
    assert len(keypoints) >= 100
    first, second = extract_patches(camera, keypoints), extract_patches(warped, twins)
    same = mean_abs_diff(first, second)
    unrelated = mean_abs_diff(first, np.roll(second, 1, axis=0))
    assert np.median(same) < 7 and np.median(same) < 0.3 * np.median(unrelated)
    assert np.mean(same < np.median(unrelated) / 2) > 0.9
    # the same frames projected through the homography itself (ImagePyramid.sample), not a similarity twin
    frames = regions.keypoint_frames(keypoints)
    steps = frames.radii / 32 * twins[:, 2] / keypoints[:, 2]
    projected = ImagePyramid(warped).sample(homography @ regions.frame_matrices(frames), steps)
    assert np.median(mean_abs_diff(first, regions.resize_patches(projected, 32))) < 0.8 * np.median(same)


# --------------------------------------------------------------------------- matching


def brute_force_matches(d1: np.ndarray, d2: np.ndarray, ratio: float | None) -> np.ndarray:
    """Mutual nearest neighbours from the full distance matrix (float64), lowest index on ties."""
    distances = np.sqrt(((d1[:, None].astype(float) - d2[None].astype(float)) ** 2).sum(-1))
    nearest, back = distances.argmin(1), distances.argmin(0)
    keep = back[nearest] == np.arange(len(d1))
    if ratio is not None:
        ordered = np.sort(distances, axis=1)
        keep &= ordered[:, 0] < ratio * ordered[:, 1]
    rows = np.flatnonzero(keep)
    return np.stack([rows, nearest[rows]], axis=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_match_descriptors_in_chunks_equals_the_full_computation(dtype: type) -> None:
    rng = np.random.default_rng(0)
    d1, d2 = rng.standard_normal((700, 32)).astype(dtype), rng.standard_normal((650, 32)).astype(dtype)
    d2[:300] = d1[:300] + 0.3 * rng.standard_normal((300, 32)).astype(dtype)  # 300 true pairs
    for ratio in (None, 0.9):
        full, full_distances = match_descriptors(d1, d2, ratio=ratio, chunk=len(d1))
        assert full.dtype == np.int64 and full_distances.dtype == dtype
        np.testing.assert_array_equal(full, brute_force_matches(d1, d2, ratio))
        for chunk in (1, 7, 64, 699):
            matches, distances = match_descriptors(d1, d2, ratio=ratio, chunk=chunk)
            np.testing.assert_array_equal(matches, full)
            np.testing.assert_array_equal(distances, full_distances)
    matches, distances = match_descriptors(d1, d2)
    assert np.sum((matches[:, 0] == matches[:, 1]) & (matches[:, 0] < 300)) >= 290  # the true pairs are found
    np.testing.assert_allclose(distances, np.linalg.norm(d1[matches[:, 0]] - d2[matches[:, 1]], axis=1), rtol=1e-4)


def test_match_descriptors_ties_go_to_the_lowest_index() -> None:
    """Small-integer descriptors: distances are exact, with many ties, identical in every chunking."""
    rng = np.random.default_rng(3)
    d1, d2 = rng.integers(0, 3, (300, 4)).astype(np.float32), rng.integers(0, 3, (250, 4)).astype(np.float32)
    full, _ = match_descriptors(d1, d2, chunk=300)
    np.testing.assert_array_equal(full, brute_force_matches(d1, d2, None))
    for chunk in (1, 13, 128):
        np.testing.assert_array_equal(match_descriptors(d1, d2, chunk=chunk)[0], full)
    # a duplicated row of d2: its lower index wins; the ratio test rejects the ambiguous match
    twin = np.array([[1.0, 0.0], [5.0, 5.0], [1.0, 0.0]])
    np.testing.assert_array_equal(match_descriptors(np.array([[1.0, 0.1]]), twin, mutual=False)[0], [[0, 0]])
    assert len(match_descriptors(np.array([[1.0, 0.1]]), twin, mutual=False, ratio=1.0)[0]) == 0


def test_match_descriptors_options_and_bad_input() -> None:
    d1 = np.array([[0.0, 0.0], [10.0, 0.0], [0.1, 0.0]])
    d2 = np.array([[0.0, 0.2], [9.0, 0.0]])
    np.testing.assert_array_equal(match_descriptors(d1, d2, mutual=False)[0], [[0, 0], [1, 1], [2, 0]])
    np.testing.assert_array_equal(match_descriptors(d1, d2)[0], [[0, 0], [1, 1]])  # row 2's d2[0] prefers row 0
    assert match_descriptors(np.zeros((0, 2)), d2)[0].shape == (0, 2)
    assert match_descriptors(d1, np.zeros((0, 2)))[0].shape == (0, 2)
    with pytest.raises(ValueError, match="same dimension"):
        match_descriptors(d1, np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"d1: expected descriptors of shape \(N, D\)"):
        match_descriptors(np.zeros(4), d2)
    with pytest.raises(ValueError, match="ratio"):
        match_descriptors(d1, d2, ratio=1.5)
    with pytest.raises(ValueError, match="chunk"):
        match_descriptors(d1, d2, chunk=0)
    with pytest.raises(ValueError, match="finite"):
        match_descriptors(d1 * np.nan, d2)
