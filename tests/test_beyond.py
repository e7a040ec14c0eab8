"""Beyond the report: the noise sweep's noise, joint denoise-and-describe, the training-data
ablation and multi-seed tables (notebook 08, issue 9)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from nhpatches.data import sweep
from nhpatches.nets import models, specs
from nhpatches.study import Study, findings, report
from nhpatches.train import joint
from nhpatches.train.batches import JointBatches, bank_from_sequences
from schedules import FAST


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Results, data and figures under tmp_path."""
    for name in ("RESULTS", "DATA", "FIGURES"):
        monkeypatch.setenv(f"NHPATCHES_{name}", str(tmp_path / name.lower()))
    return tmp_path


# ----- the noise sweep ---------------------------------------------------------------------------


def test_sweep_noise_known_answer() -> None:
    """noisy = clip(floor(clean + σ z + 0.5)) with z of default_rng([seed, image]); σ = 0 gives the clean."""
    clean = np.full((16, 3, 4, 4), 128, np.uint8)
    clean[5] = 250  # an image near the top of the range: clipping
    noisy = sweep.renoise(clean, 10.0, seed=7)
    for image in (0, 5, 15):
        z = np.random.default_rng([7, image]).standard_normal((3, 4, 4), dtype=np.float32)
        expected = np.clip(np.floor(clean[image].astype(np.float32) + np.float32(10.0) * z + 0.5), 0, 255)
        np.testing.assert_array_equal(noisy[image], expected.astype(np.uint8))
    assert noisy[5].max() == 255 and noisy.dtype == np.uint8
    np.testing.assert_array_equal(sweep.renoise(clean, 0.0, seed=7), clean)
    # The same draw at every σ: the deviation scales with σ (up to rounding).
    low = sweep.renoise(clean, 10.0, seed=7)[0].astype(int) - 128
    high = sweep.renoise(clean, 20.0, seed=7)[0].astype(int) - 128
    assert np.abs(high - 2 * low).max() <= 2 and np.abs(low).max() > 2
    assert not np.array_equal(sweep.renoise(clean, 10.0, seed=8), noisy)


def test_sweep_noise_std_and_bad_input() -> None:
    """The added noise has the asked std; bad σ, dtype or shape are refused."""
    clean = np.full((16, 64, 32, 32), 128, np.uint8)
    deviation = sweep.renoise(clean, 35.0, seed=0).astype(float) - 128
    assert abs(deviation.std() - 35.0) < 0.5 and abs(deviation.mean()) < 0.5
    with pytest.raises(ValueError, match="sigma"):
        sweep.renoise(clean, -1.0, seed=0)
    with pytest.raises(ValueError, match="uint8"):
        sweep.renoise(clean.astype(np.float32), 10.0, seed=0)
    with pytest.raises(ValueError, match=r"\(16, N, P, P\)"):
        sweep.renoise(clean[:3], 10.0, seed=0)


# ----- joint denoise-and-describe ----------------------------------------------------------------


def _joint_spec(weight: float) -> specs.DescriptorSpec:
    return dataclasses.replace(specs.DESCRIPTORS["hardnet_joint"], joint_weight=weight)


def test_joint_gradients_reach_the_denoiser_at_lambda_zero() -> None:
    """With λ = 0 the denoiser still trains, through the descriptor loss alone; the originals stay put."""
    rng = np.random.default_rng(0)
    unet, hardnet = models.build_unet(), models.build_hardnet()
    before = [w.copy() for w in unet.get_weights()]
    denoiser, descriptor, trainer = joint.compile_joint_trainer(_joint_spec(0.0), unet, hardnet)
    noisy = [rng.uniform(0, 255, (8, 32, 32, 1)).astype(np.float32) for _ in range(2)]
    targets = {"descriptors": np.zeros(8, np.float32), "denoised": np.zeros((8, 2, 32, 32, 1), np.float32)}
    logs = trainer.train_on_batch(noisy, targets, return_dict=True)
    assert np.isfinite(logs["loss"])
    moved = [not np.allclose(a, b) for a, b in zip(before, denoiser.get_weights(), strict=True)]
    assert all(moved), "every denoiser weight should get a gradient from the descriptor loss"
    for original, copy in zip(before, unet.get_weights(), strict=True):
        np.testing.assert_array_equal(original, copy)  # the trained denoiser passed in is not modified
    assert descriptor is not hardnet


def test_joint_lambda_weights_the_mae_term() -> None:
    """The total loss is the descriptor loss + λ · MAE(denoised, clean)."""
    rng = np.random.default_rng(1)
    noisy = [rng.uniform(0, 255, (6, 32, 32, 1)).astype(np.float32) for _ in range(2)]
    targets = {"descriptors": np.zeros(6, np.float32), "denoised": np.full((6, 2, 32, 32, 1), 100.0, np.float32)}
    unet, hardnet = models.build_unet(), models.build_hardnet()
    _, _, trainer = joint.compile_joint_trainer(_joint_spec(0.5), unet, hardnet)
    logs = trainer.evaluate(noisy, targets, batch_size=6, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["descriptors_loss"] + 0.5 * logs["denoised_loss"], rel=1e-4)
    with pytest.raises(ValueError, match="joint_weight"):
        joint.compile_joint_trainer(_joint_spec(-1.0), unet, hardnet)
    with pytest.raises(ValueError, match="train_on='joint'"):
        joint.compile_joint_trainer(specs.DESCRIPTORS["hardnet_flip"], unet, hardnet)


def test_joint_batches_flip_noisy_and_clean_alike() -> None:
    """Inputs are noisy pairs of one point; the targets are the same patches' clean versions."""
    rng = np.random.default_rng(2)
    clean = rng.integers(0, 256, (16, 12, 8, 8), dtype=np.uint8)
    noisy = (clean // 2).astype(np.uint8)  # a recognisable "noise": noisy = clean // 2 everywhere
    bank = bank_from_sequences({"v_x": type("S", (), {"clean": clean, "noisy": noisy})()})
    batches = JointBatches(bank, batch_size=6, steps=2, seed=3, flip="random")
    (anchor, positive), targets = batches[1]
    assert anchor.shape == (6, 8, 8, 1) and targets["denoised"].shape == (6, 2, 8, 8, 1)
    np.testing.assert_array_equal(anchor, np.floor(targets["denoised"][:, 0] / 2))
    np.testing.assert_array_equal(positive, np.floor(targets["denoised"][:, 1] / 2))
    assert (batches._plan["flip"] != 0).any()


def test_joint_and_ablation_pipelines(isolated) -> None:
    """The joint pipeline uses its own fine-tuned denoiser; the ablation descriptors train on what they say."""
    study = Study.open("smoke", **FAST)
    assert study.descriptor_source("unet_adam", "hardnet_flip") == "clean"
    assert study.descriptor_source("unet_adam", "hardnet_flip_noisy") == "noisy"
    assert study.descriptor_source("unet_adam", "hardnet_flip_denoised") == "denoised"
    assert study.descriptor_source("unet_adam", "hardnet_joint") == "joint"
    with pytest.raises(ValueError, match="fine-tunes a denoiser"):
        study.descriptor_source("none", "hardnet_joint")
    joint = study.descriptor("unet_adam", "hardnet_joint")
    assert joint.metrics["init_from"] == "hardnet_flip" and joint.metrics["joint_weight"] == 0.01
    tuned, key = study.pipeline_denoiser("unet_adam", "hardnet_joint")
    original = study.denoiser("unet_adam").model
    assert key == joint.run.key
    assert any(not np.array_equal(a, b) for a, b in zip(tuned.get_weights(), original.get_weights(), strict=True))
    noisy = next(iter(study.test_sequences.values())).noisy
    name = next(iter(study.test_sequences))
    assert not np.array_equal(
        study.test_patches("unet_adam", "hardnet_joint")[name], study.test_patches("unet_adam")[name]
    )
    assert study.test_patches("unet_adam")[name].shape == noisy.shape
    # λ is part of the key; the two-stage control keeps the denoiser
    other = Study.open("smoke", joint_lambda=0.0, **FAST)
    assert other.descriptor_run_key("unet_adam", "hardnet_joint") != joint.run.key
    assert other.models.descriptor_spec("hardnet_joint").joint_weight == 0.0
    assert study.pipeline_denoiser("unet_adam", "hardnet_two_stage")[1] == study.denoiser_run_key("unet_adam")


def test_noise_sweep_rows_and_cache(isolated) -> None:
    """One row per σ and pipeline, each the mAPs of one direct evaluation of that pipeline's descriptors
    on the test points re-noised with the sweep's draw; raw pixels lose matching mAP from σ 0 to 50; a
    second call reads the cache."""
    from nhpatches import data, evaluation
    from nhpatches.nets import classical
    from nhpatches.nets.inference import describe_each, describe_patches

    study = Study.open("smoke", **FAST)
    pipelines = (("none", "hardnet_flip"), ("unet_adam", "hardnet_flip"))
    raw = classical.CLASSICAL["raw"]
    frame = study.noise_sweep(pipelines, sigmas=(0.0, 50.0), extra={"raw": raw})
    assert list(frame.sigma) == [0.0, 0.0, 0.0, 50.0, 50.0, 50.0]
    assert list(frame.descriptor) == ["hardnet_flip", "hardnet_flip", "raw"] * 2
    points = study.profile.sweep_points
    clean = {name: seq.clean[:, :points] for name, seq in study.test_sequences.items()}
    sweep_tasks = study.data.generated_tasks({name: array.shape[1] for name, array in clean.items()})
    noisy = {
        name: sweep.renoise(array, 50.0, data.sequence_noise_seed(study.seed, f"sweep:{name}"))
        for name, array in clean.items()
    }
    model = study.descriptor("none", "hardnet_flip").model
    for descriptor, describe in (("hardnet_flip", lambda flat: describe_patches(model, flat)), ("raw", raw)):
        descriptors = {name: describe_each(describe, array) for name, array in noisy.items()}
        summary = evaluation.evaluate(descriptors, sweep_tasks, progress=False)["summary"]
        row = frame[(frame.sigma == 50.0) & (frame.denoiser == "none") & (frame.descriptor == descriptor)].iloc[0]
        for task in ("verification", "matching", "retrieval"):
            assert row[task] == pytest.approx(summary[f"{task}_mAP"], abs=1e-6), (descriptor, task)
    raw_matching = frame[frame.descriptor == "raw"].set_index("sigma")["matching"]
    assert raw_matching[0.0] > raw_matching[50.0]  # 4 points per sequence: a coarse but strict drop
    assert frame.equals(study.noise_sweep(pipelines, sigmas=(0.0, 50.0), extra={"raw": raw}))
    with pytest.raises(ValueError, match="clean"):
        study.noise_sweep((("clean", "hardnet_flip"),))


# ----- seeds -------------------------------------------------------------------------------------


def _table(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "denoiser": ["a", "b"],
            "descriptor": ["x", "y"],
            "verification": values,
            "matching": values,
            "retrieval": values,
            "mean": values,
            "task_files": "t",
        }
    )


def test_seed_summary_mean_and_std() -> None:
    """Scores are averaged over the seeds with their sample std; one seed gives NaN std."""
    table = report.seed_summary([_table([0.1, 0.5]), _table([0.3, 0.5]), _table([0.2, 0.5])], [0, 1, 2])
    assert table["mean"].tolist() == pytest.approx([0.2, 0.5])
    assert table["mean std"].tolist() == pytest.approx([0.1, 0.0])
    assert table["seeds"].iloc[0] == "0,1,2" and table.columns[-1] == "task_files"
    assert report.seed_summary([_table([0.1, 0.5])], [0])["mean std"].isna().all()
    swapped = _table([0.1, 0.5]).iloc[::-1].reset_index(drop=True)
    with pytest.raises(ValueError, match="same pipelines"):
        report.seed_summary([_table([0.1, 0.5]), swapped], [0, 1])


def test_spread_note_says_which_differences_exceed_the_spread() -> None:
    """A difference counts as larger than the spread when its size exceeds the larger std."""
    table = report.seed_summary([_table([0.10, 0.50]), _table([0.14, 0.52])], [0, 1])
    rows = [table.iloc[0], table.iloc[1]]
    note = findings.spread_note(rows, [0.38, 0.01])
    assert "over 2 seeds" in note and "larger than it: +0.380" in note and "within it: +0.010" in note
    assert "not measured" in findings.spread_note([_table([0.1, 0.5]).iloc[0]], [0.2])


def test_seeds_are_checked_and_make_one_study_each(isolated) -> None:
    """seeds=[...] gives one study per seed, the first being the study itself."""
    study = Study.open("smoke", seeds=[3, 1], **FAST)
    assert study.seed == 3 and [s.seed for s in study.studies] == [3, 1] and study.studies[0] is study
    assert study.studies[1].descriptor_run_key("none", "baseline") != study.descriptor_run_key("none", "baseline")
    for bad in ([], [1, 1], [-1], [0.5]):
        with pytest.raises(ValueError, match="seeds"):
            Study.open("smoke", seeds=bad, **FAST)


def test_descriptor_loss_part_of_a_joint_history() -> None:
    """A joint history's descriptor-loss columns replace its total loss; other histories pass through."""
    joint = pd.DataFrame(
        {
            "epoch": [1, 2],
            "loss": [5.0, 4.0],
            "descriptors_loss": [0.9, 0.8],
            "denoised_loss": [400.0, 320.0],
            "val_loss": [6.0, 5.0],
            "val_descriptors_loss": [1.0, 0.9],
        }
    )
    part = report.descriptor_loss_part(joint)
    assert part["loss"].tolist() == [0.9, 0.8] and part["val_loss"].tolist() == [1.0, 0.9]
    plain = pd.DataFrame({"epoch": [1], "loss": [0.7]})
    assert report.descriptor_loss_part(plain) is plain
