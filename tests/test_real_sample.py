"""The model card's real-sample check (nhpatches.cli.real_sample) on a reduced sample: the first 40 real
points, 4 small embedded sequences as the other scenes, one σ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nhpatches
from nhpatches import data, evaluation
from nhpatches.cli import real_sample
from nhpatches.data import embedded, sweep, tasks
from nhpatches.nets.inference import describe_each

SEQUENCE = Path(__file__).parent / "fixtures" / "hpatches-sample" / "v_wormhole"
SIGMA = 20.0
POINTS = 40


@pytest.fixture(scope="module")
def negatives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Clean test sequences of a 2-photo embedded build (4 sequences x 24 points)."""
    folder = embedded.build_embedded_dataset(
        tmp_path_factory.mktemp("negatives") / "embedded", seed=0, max_patches_per_sequence=24, images=2
    )
    return {name: seq.clean for name, seq in data.load_dataset(folder, "full", "test").items()}


@pytest.fixture(scope="module")
def sample() -> real_sample.RealSample:
    return real_sample.load_real_sample(SEQUENCE, max_points=POINTS)


@pytest.fixture(scope="module")
def check(sample, negatives) -> tuple[real_sample.CheckResult, list[str]]:
    lines: list[str] = []
    return real_sample.run_check(sample, negatives, sigmas=(SIGMA,), print_fn=lines.append), lines


def scores_of(result: real_sample.CheckResult) -> dict[str, dict]:
    """Rows by descriptor name."""
    return {row["descriptor"]: row for row in result.rows}


def test_sample_is_the_real_sequence_at_32_and_65_px(sample) -> None:
    assert sample.name == "v_wormhole"
    assert sample.clean.shape == (16, POINTS, 32, 32) and sample.native.shape == (16, POINTS, 65, 65)
    np.testing.assert_array_equal(sample.clean, data.load_sequence(SEQUENCE, max_patches=POINTS).clean)


def test_one_row_per_pipeline_and_the_65px_sift(check, negatives) -> None:
    """describe(), SIFT and raw pixels at 32 px, and SIFT at 65 px; the task counts are the focused ones."""
    result, lines = check
    rows = scores_of(result)
    assert sorted(rows) == sorted(["hardnet_release", "sift", "raw", real_sample.SIFT_NATIVE])
    assert rows["hardnet_release"]["denoiser"] == "none" and all(row["sigma"] == SIGMA for row in result.rows)
    for row in result.rows:
        three = [row[key] for key in ("verification", "matching", "retrieval")]
        assert all(0 <= value <= 1 for value in three) and row["mean"] == pytest.approx(np.mean(three))
    assert result.counts["queries"] <= POINTS and result.counts["pos"] > 0 and result.counts["inter"] > 0
    assert len(lines) == 2 + len(result.rows) and lines[0].startswith(f"v_wormhole: {POINTS} points")
    assert rows[real_sample.SIFT_NATIVE]["matching"] != rows["sift"]["matching"]


def test_the_learned_descriptor_beats_sift_and_raw_pixels(check) -> None:
    """The ordering of the model card's table: describe() > SIFT > raw pixels on matching, and describe()
    ahead of raw pixels on every task."""
    rows = scores_of(check[0])
    learned, sift, raw = rows["hardnet_release"], rows["sift"], rows["raw"]
    assert learned["matching"] > sift["matching"] + 0.1 > raw["matching"] + 0.1
    assert all(learned[key] > raw[key] for key in ("verification", "matching", "retrieval"))


@pytest.mark.parametrize("pipeline, descriptor", [("default", "hardnet_release"), ("raw", "raw")])
def test_scores_equal_a_direct_evaluation(check, sample, negatives, pipeline: str, descriptor: str) -> None:
    """The check's numbers are those of one nhpatches.evaluation.evaluate call on the same noisy patches
    and focused task files, with matching read from the real sequence's own APs."""
    sequences = {sample.name: sample.clean, **negatives}
    noisy = {
        name: sweep.renoise(array, SIGMA, data.sequence_noise_seed(0, f"real:{name}"))
        for name, array in sequences.items()
    }
    descriptors = {
        name: describe_each(lambda x: nhpatches.describe(x, pipeline=pipeline), array) for name, array in noisy.items()
    }
    sizes = {name: array.shape[1] for name, array in sequences.items()}
    generated = tasks.generate_tasks(
        sizes, "real", 42, 300_000, 6_000, 20_000, clean_ref={name: a[0] for name, a in sequences.items()}
    )
    results = evaluation.evaluate(descriptors, tasks.focus_tasks(generated, sample.name), progress=False)
    own_aps = results["matching"]["ap_per_seq"][sample.name]
    row = scores_of(check[0])[descriptor]
    assert row["verification"] == pytest.approx(results["verification"]["mAP"], abs=1e-9)
    assert row["retrieval"] == pytest.approx(results["retrieval"]["mAP"], abs=1e-9)
    assert row["matching"] == pytest.approx(np.mean([np.mean(aps) for aps in own_aps.values()]), abs=1e-9)
    assert row["matching"] != pytest.approx(results["matching"]["mAP"], abs=1e-6)  # not all sequences' matching


def test_outputs_hold_the_rows(check, tmp_path) -> None:
    """The CSV holds the rows; the Markdown table is in percent and explains the 65 px rows."""
    result = check[0]
    csv, markdown, figure = real_sample.write_outputs(result, tmp_path)
    frame = pd.read_csv(csv)
    pd.testing.assert_frame_equal(frame, pd.DataFrame(result.rows), check_dtype=False)
    text = markdown.read_text()
    learned = scores_of(result)["hardnet_release"]
    assert f"| {learned['matching'] * 100:.1f} |" in text and real_sample.SIFT_NATIVE in text.split("\n\n")[-1]
    assert figure.stat().st_size > 0


def test_bad_input_is_named(sample, negatives) -> None:
    with pytest.raises(ValueError, match="other sequences than the real one"):
        real_sample.run_check(sample, {sample.name: sample.clean}, sigmas=(0.0,), print_fn=None)
    unfocused = tasks.generate_tasks({"a": 5, "b": 5}, "x", 42, 100, 4, 4)
    with pytest.raises(ValueError, match="focus_tasks"):
        evaluation.evaluate_focused({}, unfocused)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        real_sample.load_real_sample(SEQUENCE.parent / "v_nowhere")
