"""The notebooks' "finding here" texts: measured numbers, and "holds" / "does not hold" as the numbers say."""

from __future__ import annotations

import pandas as pd
import pytest

from nhpatches.study import findings

HOLDS, FAILS = "→ holds on this run.", "→ does not hold on this run."


def pipelines(rows: dict[tuple[str, str], float]) -> pd.DataFrame:
    """A pipeline table; each task mAP is the given mean, shifted so that the tasks differ."""
    records = []
    for (denoiser, descriptor), mean in rows.items():
        records.append(
            {
                "denoiser": denoiser,
                "descriptor": descriptor,
                "verification": mean + 0.3,
                "matching": mean - 0.2,
                "retrieval": mean - 0.1,
                "mean": mean,
                "task_files": "generated, recipe V seed 42",
            }
        )
    return pd.DataFrame(records)


def history(values: list[float], **columns: list[float]) -> pd.DataFrame:
    """A per-epoch history with a loss column (and any others)."""
    return pd.DataFrame({"epoch": range(1, len(values) + 1), "loss": values, **columns})


def quality(rows: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """A compare_denoisers frame: the same (mae, psnr) at every noise level."""
    records = []
    for denoiser, (mae, psnr) in rows.items():
        for level in ("easy", "hard", "tough"):
            records.append(
                {
                    "denoiser": denoiser,
                    "input": "noisy" if denoiser == "none" else "denoised",
                    "noise_level": level,
                    "mae": mae,
                    "psnr_db": psnr,
                }
            )
    return pd.DataFrame(records)


def test_verdict_follows_the_numbers_at_the_boundary() -> None:
    """A finding ends with exactly one verdict, and the verdict turns at the claim's inequality: a tie
    between the noisy and the denoised pipeline does not hold, the smallest gain does."""
    rows = {("none", "baseline"): 0.4, ("unet", "baseline"): 0.4, ("clean", "baseline"): 0.5}
    tie = findings.denoising_order(pipelines(rows))
    gain = findings.denoising_order(pipelines({**rows, ("unet", "baseline"): 0.4001}))
    assert tie.endswith(FAILS) and HOLDS not in tie
    assert gain.endswith(HOLDS) and FAILS not in gain
    assert tie.count("→") == gain.count("→") == 1


# ----- 00 ------------------------------------------------------------------------------------------


def summary(illumination: int, viewpoint: int) -> pd.DataFrame:
    """A dataset_summary frame with the given sequence counts."""
    names = [f"i_{k}" for k in range(illumination)] + [f"v_{k}" for k in range(viewpoint)]
    return pd.DataFrame(
        {
            "sequence": names,
            "kind": ["illumination"] * illumination + ["viewpoint"] * viewpoint,
            "patches": 10,
            "role": "train",
        }
    )


def test_data_description_holds_for_nhpatches() -> None:
    """116 sequences, 57 i_ and 59 v_, three levels: the report's description."""
    text = findings.data_description(summary(57, 59), ["easy", "hard", "tough"])
    assert text.endswith(HOLDS)
    assert "116 sequences, 57 illumination (i_) and 59 viewpoint (v_)" in text


def test_data_description_does_not_hold_for_a_small_dataset() -> None:
    """The embedded dataset has far fewer sequences."""
    text = findings.data_description(summary(6, 6), ["easy", "hard", "tough"])
    assert text.endswith(FAILS)
    assert "12 sequences, 6 illumination (i_) and 6 viewpoint (v_)" in text


def test_data_description_needs_the_three_levels() -> None:
    """Right counts but other noise levels: does not hold."""
    assert findings.data_description(summary(57, 59), ["easy", "hard"]).endswith(FAILS)


# ----- 01 ------------------------------------------------------------------------------------------


def test_denoising_order_holds_and_states_numbers() -> None:
    """noisy < unet < clean: holds, and each mean is quoted."""
    table = pipelines({("none", "baseline"): 0.30, ("unet", "baseline"): 0.40, ("clean", "baseline"): 0.50})
    text = findings.denoising_order(table)
    assert text.endswith(HOLDS)
    for number in ("mean 0.300", "mean 0.400", "mean 0.500", "verification 0.700"):
        assert number in text


def test_denoising_order_does_not_hold_when_denoising_hurts() -> None:
    """The denoised pipeline below the noisy one."""
    table = pipelines({("none", "baseline"): 0.45, ("unet", "baseline"): 0.40, ("clean", "baseline"): 0.50})
    assert findings.denoising_order(table).endswith(FAILS)


def test_denoising_order_tolerance_demands_a_margin() -> None:
    """A gain of 0.01 is not enough under a tolerance of 0.02."""
    table = pipelines({("none", "baseline"): 0.39, ("unet", "baseline"): 0.40, ("clean", "baseline"): 0.50})
    assert findings.denoising_order(table).endswith(HOLDS)
    assert findings.denoising_order(table, tolerance=0.02).endswith(FAILS)


def test_denoising_order_other_metric_and_missing_row() -> None:
    """A task column can be judged instead of the mean; a missing pipeline is named."""
    table = pipelines({("none", "baseline"): 0.30, ("unet", "baseline"): 0.40, ("clean", "baseline"): 0.50})
    assert findings.denoising_order(table, metric="matching").endswith(HOLDS)
    with pytest.raises(ValueError, match="dncnn_adam \\+ baseline"):
        findings.denoising_order(table, denoiser="dncnn_adam")
    with pytest.raises(ValueError, match="metric"):
        findings.denoising_order(table, metric="auc")
    with pytest.raises(ValueError, match="tolerance"):
        findings.denoising_order(table, tolerance=-0.1)


# ----- 02 ------------------------------------------------------------------------------------------


def test_dncnn_beats_unet_holds() -> None:
    """Higher PSNR and lower MAE than the U-Net."""
    text = findings.dncnn_beats_unet(quality({"none": (30.0, 18.0), "unet": (20.0, 22.0), "dncnn_adam": (10.0, 26.0)}))
    assert text.endswith(HOLDS)
    assert "26.00 dB" in text and "22.00 dB" in text and "noisy input: 18.00 dB" in text


def test_dncnn_beats_unet_does_not_hold() -> None:
    """DnCNN worse on PSNR (or tied within the tolerance)."""
    table = quality({"unet": (20.0, 22.0), "dncnn_adam": (25.0, 21.0)})
    assert findings.dncnn_beats_unet(table).endswith(FAILS)
    close = quality({"unet": (20.0, 22.0), "dncnn_adam": (19.9, 22.1)})
    assert findings.dncnn_beats_unet(close).endswith(HOLDS)
    assert findings.dncnn_beats_unet(close, tolerance=0.5).endswith(FAILS)


def test_loss_change() -> None:
    """Relative change first -> last epoch."""
    assert findings.loss_change(history([100.0, 90.0, 80.0])) == pytest.approx(-0.2)
    with pytest.raises(ValueError, match="val_loss"):
        findings.loss_change(history([1.0]), "val_loss")


def test_sgd_barely_moves_holds() -> None:
    """A 1 % change of the validation loss is within the default 5 %; Adam's change is quoted beside."""
    sgd = history([180.0, 120.0, 119.0], val_loss=[100.0, 99.5, 99.0])
    text = findings.sgd_barely_moves(sgd, reference=history([1.0, 1.0], val_loss=[100.0, 40.0]))
    assert text.endswith(HOLDS)
    assert "val_loss 100 at epoch 1 → 99 at epoch 3 (-1.0%)" in text and "dncnn_adam -60.0%" in text


def test_sgd_barely_moves_quotes_the_noisy_input() -> None:
    """With a quality table, SGD's test MAE is set beside the noisy input's."""
    table = quality({"none": (25.0, 18.0), "dncnn_sgd": (26.0, 17.5)})
    text = findings.sgd_barely_moves(history([1.0, 1.0], val_loss=[30.0, 29.5]), quality=table)
    assert "mean test MAE of dncnn_sgd 26.00 vs the noisy input's 25.00" in text


def test_sgd_barely_moves_does_not_hold() -> None:
    """A 30 % drop is training; the training-loss column can be chosen; a single epoch shows nothing."""
    assert findings.sgd_barely_moves(history([1.0, 1.0], val_loss=[100.0, 70.0])).endswith(FAILS)
    sgd = history([180.0, 120.0], val_loss=[100.0, 99.0])
    assert findings.sgd_barely_moves(sgd).endswith(HOLDS)
    assert findings.sgd_barely_moves(sgd, column="loss").endswith(FAILS)
    single = findings.sgd_barely_moves(history([100.0], val_loss=[90.0]))
    assert single.endswith(FAILS) and "single epoch" in single


# ----- 03 ------------------------------------------------------------------------------------------


def test_mse_vs_mae_holds() -> None:
    """The MSE run's last validation MAE is the higher one."""
    mae = history([30.0, 20.0], val_mae=[25.0, 18.0])
    mse = history([900.0, 600.0], val_mae=[27.0, 21.0])
    text = findings.mse_vs_mae(mae, mse)
    assert text.endswith(HOLDS)
    assert "21.000" in text and "18.000" in text


def test_mse_vs_mae_does_not_hold() -> None:
    """MSE reaching the lower MAE, or a gap inside the tolerance."""
    mae = history([30.0, 20.0], val_mae=[25.0, 18.0])
    assert findings.mse_vs_mae(mae, history([900.0, 600.0], val_mae=[24.0, 17.0])).endswith(FAILS)
    assert findings.mse_vs_mae(mae, history([900.0, 600.0], val_mae=[24.0, 18.5]), tolerance=1.0).endswith(FAILS)
    with pytest.raises(ValueError, match="val_mae"):
        findings.mse_vs_mae(history([1.0]), mae)


def test_mse_vs_mae_names_a_diverged_run() -> None:
    """A NaN loss (SGD blowing up on MSE) is not a worse MAE: the comparison does not hold and says why."""
    mae = history([30.0, 20.0], val_mae=[25.0, 18.0])
    mse = history([1e13, float("nan")], val_mae=[float("inf"), float("nan")])
    text = findings.mse_vs_mae(mae, mse)
    assert text.endswith(FAILS)
    assert "unet_mse diverged (non-finite losses from epoch 1)" in text


def test_sgd_barely_moves_names_a_diverged_run() -> None:
    """A loss that turns NaN is not 'barely moving'."""
    text = findings.sgd_barely_moves(history([1.0, 1.0], val_loss=[100.0, float("nan")]))
    assert text.endswith(FAILS) and "diverged" in text


# ----- 04 ------------------------------------------------------------------------------------------


def variants(updated: float, deep: float) -> pd.DataFrame:
    """Baseline 0.50 after DnCNN beside the two variants."""
    return pipelines(
        {("dncnn_adam", "baseline"): 0.50, ("dncnn_adam", "updated"): updated, ("dncnn_adam", "deep"): deep}
    )


def test_descriptor_variants_both_hold() -> None:
    """Updated clearly worse, deep within the tolerance."""
    text = findings.descriptor_variants(variants(0.40, 0.505))
    lines = text.splitlines()
    assert len(lines) == 2 and all(line.endswith(HOLDS) for line in lines)
    assert "mean 0.400" in lines[0] and "mean 0.505" in lines[1]


def test_descriptor_variants_do_not_hold() -> None:
    """Updated as good as the baseline; deep clearly better."""
    lines = findings.descriptor_variants(variants(0.50, 0.60)).splitlines()
    assert lines[0].endswith(FAILS) and lines[1].endswith(FAILS)
    strict = findings.descriptor_variants(variants(0.40, 0.505), tolerance=0.0).splitlines()
    assert strict[0].endswith(HOLDS) and strict[1].endswith(FAILS)


# ----- 05 ------------------------------------------------------------------------------------------


def test_retraining_holds_when_it_does_not_help() -> None:
    """Retrained below the baseline after both denoisers."""
    table = pipelines(
        {
            ("unet", "baseline"): 0.50,
            ("unet", "retrained"): 0.48,
            ("dncnn_adam", "baseline"): 0.49,
            ("dncnn_adam", "retrained"): 0.47,
        }
    )
    text = findings.retraining(table)
    assert text.endswith(HOLDS)
    assert "unet: retrained 0.480 vs baseline 0.500 (-0.020)" in text


def test_retraining_does_not_hold_when_it_helps() -> None:
    """One denoiser where retraining gains is enough to break the claim; the tolerance can absorb it."""
    table = pipelines(
        {
            ("unet", "baseline"): 0.50,
            ("unet", "retrained"): 0.48,
            ("dncnn_adam", "baseline"): 0.49,
            ("dncnn_adam", "retrained"): 0.52,
        }
    )
    assert findings.retraining(table).endswith(FAILS)
    assert findings.retraining(table, tolerance=0.05).endswith(HOLDS)


# ----- 06 ------------------------------------------------------------------------------------------


def test_hard_loss_holds_when_no_gain() -> None:
    """Both hard variants at or below the baseline."""
    table = pipelines(
        {("dncnn_adam", "baseline"): 0.50, ("dncnn_adam", "hard"): 0.45, ("dncnn_adam", "hard_retrained"): 0.50}
    )
    text = findings.hard_loss(table)
    assert text.endswith(HOLDS) and "hard mean 0.450" in text


def test_hard_loss_does_not_hold_when_it_helps() -> None:
    """One variant above the baseline."""
    table = pipelines(
        {("dncnn_adam", "baseline"): 0.50, ("dncnn_adam", "hard"): 0.45, ("dncnn_adam", "hard_retrained"): 0.53}
    )
    assert findings.hard_loss(table).endswith(FAILS)
    assert findings.hard_loss(table, variants=("hard",)).endswith(HOLDS)


# ----- 07 ------------------------------------------------------------------------------------------


def table2(unet_baseline: float, dncnn_baseline: float) -> pd.DataFrame:
    """Table 2's rows with the noisy and clean references (clean always the highest)."""
    return pipelines(
        {
            ("unet", "baseline"): unet_baseline,
            ("dncnn_adam", "baseline"): dncnn_baseline,
            ("dncnn_adam", "updated"): 0.30,
            ("dncnn_adam", "deep"): 0.40,
            ("unet", "retrained"): 0.41,
            ("dncnn_adam", "retrained"): 0.42,
            ("none", "baseline"): 0.35,
            ("clean", "baseline"): 0.90,
        }
    )


def test_best_pipeline_holds_for_the_baseline() -> None:
    """The U-Net + baseline on top; the clean upper bound is not a candidate."""
    text = findings.best_pipeline(table2(0.50, 0.45))
    assert text.endswith(HOLDS)
    assert "best unet + baseline" in text and "clean + baseline" not in text
    assert "best of the 7 pipelines compared" in text


def test_best_pipeline_does_not_hold() -> None:
    """Another pipeline ahead; named as the best with the gap."""
    text = findings.best_pipeline(table2(0.45, 0.50))
    assert text.endswith(FAILS)
    assert "best dncnn_adam + baseline" in text and "(-0.050 to the best)" in text
    assert findings.best_pipeline(table2(0.45, 0.50), tolerance=0.06).endswith(HOLDS)


def test_best_pipeline_over_chosen_pipelines() -> None:
    """Restricting the candidates to the report's rows."""
    table = table2(0.45, 0.40)
    table.loc[table.denoiser == "none", "mean"] = 0.60
    assert findings.best_pipeline(table).endswith(FAILS)
    report_rows = [("unet", "baseline"), ("dncnn_adam", "baseline"), ("unet", "retrained")]
    assert findings.best_pipeline(table, pipelines=report_rows).endswith(HOLDS)


# ----- 08 ------------------------------------------------------------------------------------------

EXTENSIONS = (("none", "hardnet"), ("unet_adam", "hardnet"), ("clean", "hardnet"))


def test_beyond_holds_with_per_task_gains() -> None:
    """The best non-clean extension beats the baseline on every task; gains quoted per task."""
    table = pipelines(
        {
            ("none", "hardnet"): 0.55,
            ("unet_adam", "hardnet"): 0.60,
            ("clean", "hardnet"): 0.95,
            ("unet", "baseline"): 0.50,
            ("clean", "baseline"): 0.70,
        }
    )
    text = findings.beyond(table, EXTENSIONS)
    assert text.endswith(HOLDS)
    assert "best extension unet_adam + hardnet" in text
    assert "verification 0.900 vs 0.800 (+0.100)" in text and "warning" not in text


def test_beyond_does_not_hold_when_one_task_loses() -> None:
    """Better on the mean but worse on matching."""
    table = pipelines(
        {
            ("none", "hardnet"): 0.55,
            ("unet_adam", "hardnet"): 0.60,
            ("clean", "hardnet"): 0.95,
            ("unet", "baseline"): 0.50,
        }
    )
    table.loc[table.descriptor == "baseline", "matching"] = 0.9
    text = findings.beyond(table, EXTENSIONS)
    assert text.endswith(FAILS) and "matching" in text


def test_beyond_flags_mixed_task_files_and_needs_candidates() -> None:
    """Rows from different task files are flagged; only clean pipelines left is an error."""
    table = pipelines({("unet_adam", "hardnet"): 0.60, ("unet", "baseline"): 0.50})
    table.loc[0, "task_files"] = "official"
    assert "different task files" in findings.beyond(table, [("unet_adam", "hardnet")])
    with pytest.raises(ValueError, match="no extension"):
        findings.beyond(table, [("clean", "hardnet")])
