"""Notebook 11's study functions: settings, sequences, rows, regions drawn as cut, tables and computed findings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from nhpatches.data import regions
from nhpatches.study import photograph_plots, photographs


def write_sequence(folder: Path, seed: int) -> None:
    """A two-image HPatches-layout sequence (40 x 40 noise images, identity homography)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k in (1, 2):
        cv2.imwrite(str(folder / f"{k}.png"), rng.integers(0, 256, (40, 40), dtype=np.uint8))
    (folder / "H_1_2").write_text("1 0 0\n0 1 0\n0 0 1\n")


def test_settings_take_the_profile_and_the_given_overrides() -> None:
    """None keeps the profile's value; given values replace it; bad values and names are refused by name."""
    smoke = photographs.matching_settings("smoke")
    assert smoke == photographs.PROFILE_SETTINGS["smoke"]
    changed = photographs.matching_settings("smoke", sigmas=[0, 20], max_keypoints=None, pairs=[2], sequences=["v_a"])
    assert changed.sigmas == (0.0, 20.0) and changed.pairs == (2,) and changed.sequences == ("v_a",)
    assert changed.max_keypoints == smoke.max_keypoints
    for overrides, message in (
        ({"sigmas": [-1]}, "sigmas"),
        ({"max_keypoints": 0}, "max_keypoints"),
        ({"pairs": [1, 2]}, "pairs"),
        ({"keypoints": 3}, "keypoints"),
    ):
        with pytest.raises(ValueError, match=message):
            photographs.matching_settings("smoke", **overrides)
    with pytest.raises(ValueError, match="huge"):
        photographs.matching_settings("huge")


def test_read_sequences_alternates_viewpoint_and_illumination(tmp_path: Path) -> None:
    """A count takes v_ and i_ sequences in turn (v_ first); names are read as given; unknown names are listed."""
    for seed, name in enumerate(("i_a", "i_b", "v_a", "v_b", "v_c")):
        write_sequence(tmp_path / name, seed)
    assert [s.name for s in photographs.read_sequences(tmp_path, 3)] == ["v_a", "i_a", "v_b"]
    assert [s.name for s in photographs.read_sequences(tmp_path, 5)] == ["v_a", "i_a", "v_b", "i_b", "v_c"]
    assert [s.name for s in photographs.read_sequences(tmp_path, ["i_b", "v_a"])] == ["i_b", "v_a"]
    assert len(photographs.read_sequences(tmp_path)) == 5
    with pytest.raises(ValueError, match="v_zz"):
        photographs.read_sequences(tmp_path, ["v_zz"])
    with pytest.raises(ValueError, match="positive"):
        photographs.read_sequences(tmp_path, 0)


def test_default_rows_follow_the_pipelines_defaults() -> None:
    """The default pipeline row carries the default denoiser; a region other than HPatches' adds a 5-sigma row."""
    rows = photographs.default_rows("auto", regions.MAGNIFICATION)
    assert rows.specs == ("sift", "rootsift", "describe", "nlm+sift", "auto+describe")
    assert rows.pipeline == "auto+describe" and dict(rows.denoised) == {"nlm+sift": "sift", "auto+describe": "describe"}
    plain = photographs.default_rows("none", 8.0)
    assert plain.pipeline == "describe" and dict(plain.denoised) == {"nlm+sift": "sift"}
    assert plain.specs == (
        "sift",
        "rootsift",
        "describe",
        "nlm+sift",
        f"describe:magnification={regions.MAGNIFICATION:g}",
    )


def test_region_outline_is_where_extract_patches_cuts() -> None:
    """A bright dot half-way along a keypoint's x axis (by the drawn outline) lands half-way to the right edge."""
    keypoint = np.array([[60.0, 50.0, 4.0, 90.0]])  # sigma 2, x axis pointing down the image
    outline = photograph_plots.region_outlines(keypoint, 5.0)[0]
    np.testing.assert_allclose(outline[5], [60.0, 60.0], atol=1e-9)  # centre + 10 px along (cos 90, sin 90)
    np.testing.assert_allclose(np.linalg.norm(outline[:4] - keypoint[0, :2], axis=1), 10 * np.sqrt(2), atol=1e-9)
    image = np.zeros((120, 120), np.uint8)
    dot = np.round((outline[5] + keypoint[0, :2]) / 2).astype(int)  # u = 0.5, v = 0
    cv2.circle(image, (int(dot[0]), int(dot[1])), 1, 255, -1)
    patch = regions.extract_patches(image, keypoint, size=32, magnification=5.0)[0]
    row, column = np.unravel_index(np.argmax(patch), patch.shape)
    assert abs(row - 16) <= 1 and abs(column - 24) <= 1


def test_spread_keypoints_takes_the_larger_half_by_size() -> None:
    """Distinct indices from the larger half of the sizes, smallest first; never more than there are."""
    keypoints = np.zeros((10, 4))
    keypoints[:, 2] = [9, 1, 8, 2, 7, 3, 6, 4, 5, 10]
    picked = photographs.spread_keypoints(keypoints, 3)
    assert list(keypoints[picked, 2]) == [6, 8, 10]
    assert len(set(photographs.spread_keypoints(keypoints, 20))) == 5
    assert len(photographs.spread_keypoints(np.zeros((0, 4)), 3)) == 0


class Found(list):
    """Stands for a Features result: its length is the keypoint count; ``denoised`` as the pipeline sets it."""

    def __init__(self, count: int, denoised: bool) -> None:
        super().__init__(range(count))
        self.denoised = denoised


def test_inlier_table_checks_inliers_against_the_truth() -> None:
    """Correct inliers are those within 3 px under the true homography; the corner error is the estimate's."""
    xy1 = np.array([[10.0, 10], [20, 20], [30, 30], [40, 40]])
    xy2 = xy1 + np.array([[0, 0], [0, 0], [10, 0], [0, 1]])  # under the identity: errors 0, 0, 10, 1
    shifted = np.array([[1.0, 0, 2], [0, 1, 0], [0, 0, 1]])  # every corner 2 px off
    result = SimpleNamespace(
        features1=Found(7, True),
        features2=Found(9, False),
        xy1=xy1,
        xy2=xy2,
        inliers=np.array([True, True, True, False]),
        homography=shifted,
    )
    row = photographs.inlier_table({"pair": result}, np.eye(3), (100, 100)).iloc[0]
    assert row["keypoints"] == "7 / 9" and row["denoised"] == "yes / no"
    assert row["matches"] == 4 and row["inliers"] == 3 and row["correct inliers (≤3 px)"] == 2
    assert row["MMA@3"] == pytest.approx(0.75) and row["corner error (px)"] == pytest.approx(2.0)


def summary(values: dict[str, dict[float, tuple[float, float]]], pairs: int = 4) -> pd.DataFrame:
    """A flat summary from {method: {sigma: (mma_3, h_acc_3)}}."""
    rows = [
        {"method": m, "sigma": s, "pairs": pairs, "mma_3": a, "h_acc_3": h, "keypoints": 300.0}
        for m, by_sigma in values.items()
        for s, (a, h) in by_sigma.items()
    ]
    return pd.DataFrame(rows)


def test_findings_are_computed_from_the_summary() -> None:
    """Ahead by more than the tolerance at every sigma holds; level at one sigma does not; numbers are quoted."""
    table = summary(
        {
            "sift": {0.0: (0.50, 0.5), 35.0: (0.20, 0.25)},
            "rootsift": {0.0: (0.52, 0.5), 35.0: (0.21, 0.25)},
            "describe": {0.0: (0.60, 0.75), 35.0: (0.25, 0.25)},
            "nlm+sift": {0.0: (0.49, 0.5), 35.0: (0.30, 0.5)},
            "auto+describe": {0.0: (0.60, 0.75), 35.0: (0.26, 0.5)},
        }
    )
    ahead = photographs.descriptor_on_photographs(table, "describe", ("sift", "rootsift"), tolerance=0.02)
    assert "σ 0: 0.600 against rootsift 0.520 (+0.080, ahead)" in ahead and "σ 35: 0.250 against rootsift" in ahead
    assert ahead.endswith("→ holds on this run.")
    level = photographs.descriptor_on_photographs(table, "describe", ("sift", "rootsift"), tolerance=0.05)
    assert "(+0.040, level)" in level and level.endswith("→ does not hold on this run.")
    denoised = photographs.denoising_first(table, {"nlm+sift": "sift", "auto+describe": "describe"}, 0.02)
    assert "σ 35: MMA@3 0.200 → 0.300 (+0.100)" in denoised and "σ 0:" not in denoised
    assert denoised.endswith("→ does not hold on this run.")  # auto+describe gains only 0.01
    assert photographs.denoising_first(table, {"nlm+sift": "sift"}, 0.02).endswith("→ holds on this run.")
    leaders = photographs.leaders(table)
    assert "σ 0 describe, auto+describe 0.600" in leaders and "σ 35 nlm+sift 0.300" in leaders
    rows = photographs.default_rows("auto", regions.MAGNIFICATION)
    text = photographs.findings(table, "dev", rows)
    assert text.startswith("dev: 4 pairs per row and σ (a share of pairs moves in steps of 0.25), 300 keypoints")
    with pytest.raises(ValueError, match="'orb'"):
        photographs.descriptor_on_photographs(table, "orb", ("sift",))
    assert "not measured" in photographs.denoising_first(table[table.sigma == 0], {"nlm+sift": "sift"})


def test_figures_have_one_panel_per_measure_and_drawing() -> None:
    """The sigma panels show MMA@3 and homography accuracy; drawings one axis each; regions one outline each."""
    table = summary({"sift": {0.0: (0.5, 0.5), 35.0: (0.2, 0.25)}, "describe": {0.0: (0.6, 0.75), 35.0: (0.3, 0.5)}})
    fig = photograph_plots.plot_sigma_panels(table, "dev")
    assert [axis.get_ylabel() for axis in fig.axes] == list(photographs.MEASURES.values())
    drawing = np.zeros((20, 40, 3), np.uint8)
    assert len(photograph_plots.plot_drawings({"a": drawing, "b": drawing}).axes) == 2
    keypoints = np.array([[20.0, 20.0, 4.0, 0.0], [40.0, 30.0, 6.0, 45.0]])
    fig = photograph_plots.plot_regions(np.zeros((60, 80), np.uint8), keypoints, 5.0)
    assert len(fig.axes[0].lines) == 2 * len(keypoints)
    with pytest.raises(ValueError, match="mma_4"):
        photograph_plots.plot_against_sigma(table, "mma_4")
    plt.close("all")
