"""The study orchestration: data errors, scene hold-out, pixel conventions and run caching."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from nhpatches.core import config
from nhpatches.nets.inference import denoise_patches, describe_patches
from nhpatches.study import ModelStore, Study, hold_out_scenes
from nhpatches.study import runner as runner_module
from nhpatches.study import study as study_module
from nhpatches.train import training
from schedules import FAST


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Results, data and figures under tmp_path."""
    for name in ("RESULTS", "DATA", "FIGURES"):
        monkeypatch.setenv(f"NHPATCHES_{name}", str(tmp_path / name.lower()))
    return tmp_path


def test_open_missing_data_dir_names_the_path(tmp_path) -> None:
    """A data_dir that does not exist fails at once, naming it."""
    missing = tmp_path / "no-such-hpatches"
    with pytest.raises(FileNotFoundError, match="no-such-hpatches"):
        Study.open("smoke", data_dir=missing)


def test_open_epochs_replaces_every_epoch_count(tmp_path, monkeypatch) -> None:
    """The notebooks' ``epochs`` parameter sets every epoch count; a bad value is refused."""
    monkeypatch.setattr(study_module, "embedded_dataset_dir", lambda settings: tmp_path)
    profile = Study.open("smoke", epochs=3).profile
    assert (profile.epochs_unet, profile.epochs_dncnn, profile.epochs_descriptor) == (3, 3, 3)
    assert profile.epochs_retrain == 1 and profile.dncnn_keep_epoch is None  # round(3 * 13 / 40) = 1
    assert Study.open("smoke", epochs=40).profile.epochs_retrain == 13
    assert Study.open("smoke", epochs=3, epochs_dncnn=1).profile.epochs_dncnn == 1
    assert Study.open("smoke").profile.epochs_unet == config.get_profile("smoke").epochs_unet
    for bad in (0, 2.5, True, "3"):
        with pytest.raises(ValueError, match="epochs must be a positive integer"):
            Study.open("smoke", epochs=bad)


def test_hold_out_keeps_scenes_together() -> None:
    """i_x and v_x land on the same side; at least one scene is held out."""
    names = [f"{kind}_{scene}" for scene in "abcdefgh" for kind in "iv"]
    train, validation = hold_out_scenes(dict.fromkeys(names))
    assert validation and train
    assert {n[2:] for n in train}.isdisjoint({n[2:] for n in validation})
    assert all(f"i_{n[2:]}" in validation and f"v_{n[2:]}" in validation for n in validation)
    with pytest.raises(ValueError, match="two scenes"):
        hold_out_scenes({"i_a": None, "v_a": None})


def test_denoised_patches_are_clipped_and_truncated() -> None:
    """Denoiser output is clipped to [0, 255] and truncated (not rounded) to uint8."""
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Rescaling(scale=2.0, offset=-10.7)])
    patches = np.array([[0, 10, 100, 200]] * 4, np.uint8).reshape(1, 1, 4, 4)
    out = denoise_patches(model, patches, batch_size=8)
    assert out.dtype == np.uint8 and out.shape == patches.shape
    np.testing.assert_array_equal(out[0, 0, 0], [0, 9, 189, 255])


def test_diverged_denoiser_is_refused() -> None:
    """A denoiser whose output is NaN (diverged training) gives a clear error, not uint8 garbage."""
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Rescaling(scale=float("nan"))], name="broken")
    with pytest.raises(ValueError, match=r"'broken'.*diverged"):
        denoise_patches(model, np.zeros((1, 1, 4, 4), np.uint8), batch_size=8)


def test_describe_patches_keeps_the_image_and_point_axes() -> None:
    """(16, N, P, P) patches give (16, N, D) descriptors in the same order."""
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
    patches = np.arange(16 * 3 * 16, dtype=np.uint8).reshape(16, 3, 4, 4)
    out = describe_patches(model, patches, batch_size=5)
    assert out.shape == (16, 3, 16)
    np.testing.assert_array_equal(out[7, 2], patches[7, 2].ravel())


def test_models_and_evaluations_are_cached(isolated, monkeypatch) -> None:
    """A second study on the same settings loads models and results instead of recomputing."""
    overrides = {"steps_per_epoch": 1, "validation_steps": 1, "epochs_unet": 1, "epochs_descriptor": 1}
    first = Study.open("smoke", **overrides)
    unet = first.denoiser("unet")
    results = first.evaluate("unet", "baseline")
    assert set(results["summary"]) >= {"verification_mAP", "matching_mAP", "retrieval_mAP"}
    assert 0.0 <= results["summary"]["matching_mAP"] <= 1.0
    denoised = first.test_patches("unet")
    assert all(a.dtype == np.uint8 and a.shape == first.test_sequences[n].noisy.shape for n, a in denoised.items())

    def refuse(*args, **kwargs):
        raise AssertionError("a cached run was recomputed")

    monkeypatch.setattr(training, "train_denoiser", refuse)
    monkeypatch.setattr(training, "train_descriptor", refuse)
    monkeypatch.setattr(runner_module, "describe_patches", refuse)
    second = Study.open("smoke", **overrides)
    assert second.denoiser("unet").metrics == unet.metrics
    resolved_runs = []
    denoiser_training_run = ModelStore.denoiser_training_run

    def counting(store: ModelStore, name: str):
        resolved_runs.append(name)
        return denoiser_training_run(store, name)

    monkeypatch.setattr(ModelStore, "denoiser_training_run", counting)
    assert second.evaluate("unet", "baseline") == results
    assert resolved_runs == ["unet"]  # the pipeline is resolved once per evaluation
    with pytest.raises(AssertionError, match="recomputed"):
        Study.open("smoke", **{**overrides, "epochs_unet": 2}).denoiser("unet")


def test_unknown_model_names_are_listed(tmp_path) -> None:
    """Asking for an unknown model names the known ones (before any data is read)."""
    from nhpatches.core.config import get_profile
    from nhpatches.study import StudyData

    study = Study.of(StudyData(get_profile("smoke"), tmp_path / "no-data-read"))
    with pytest.raises(ValueError, match="baseline"):
        study.descriptor("unet", "nonexistent")
    with pytest.raises(ValueError, match="unet_adam"):
        study.denoiser("nonexistent")
    with pytest.raises(ValueError, match="unknown descriptor 'unet'"):  # names swapped: a loud error
        study.descriptor("baseline", "unet")


def test_release_layout_runs_end_to_end(isolated, fixtures_dir) -> None:
    """A genuine hpatches-release style folder (65 px strips, no noise files) goes through the pipeline."""
    import json
    import shutil

    root = isolated / "hpatches-release"
    names = ("v_wormhole", "i_wormholea", "v_wormholeb", "i_wormholec")
    for name in names:
        shutil.copytree(
            fixtures_dir / "hpatches-sample" / "v_wormhole", root / name, ignore=shutil.ignore_patterns("*.csv")
        )
    splits = {"a": {"name": "a", "test": list(names[:2]), "train": list(names[2:])}}
    (root / "splits.json").write_text(json.dumps(splits))
    study = Study.open("smoke", data_dir=root, steps_per_epoch=1, validation_steps=1, epochs_descriptor=1)
    assert study.layout == "release"
    seq = study.test_sequences["v_wormhole"]
    assert seq.clean.shape == (16, 16, 32, 32) and seq.noisy.shape == seq.clean.shape
    assert not (seq.noisy == seq.clean).all()  # noise synthesised for the release layout
    results = study.evaluate("clean", "baseline")
    assert results["pipeline"]["layout"] == "release"
    assert results["tasks"]["source"].startswith("generated")  # capped test set: official lists do not apply


def test_denoising_quality_by_hand() -> None:
    """A constant error of 10 grey levels gives MAE 10 and PSNR 10 log10(255^2 / 100) at every level."""
    from nhpatches.evaluation.quality import denoising_quality

    clean = {"i_a": np.zeros((16, 2, 4, 4), np.uint8)}
    noisy = {"i_a": np.full((16, 2, 4, 4), 10, np.uint8)}
    denoised = {"i_a": clean["i_a"].copy()}
    denoised["i_a"][11:] = 5  # tough images only partly cleaned
    table = denoising_quality(clean, noisy, denoised).set_index(["noise_level", "input"])
    assert table.loc[("hard", "noisy"), "mae"] == 10
    assert table.loc[("hard", "noisy"), "psnr_db"] == pytest.approx(10 * np.log10(255**2 / 100))
    assert table.loc[("easy", "denoised"), "mae"] == 0 and table.loc[("tough", "denoised"), "mae"] == 5


def _record_descriptor_training(monkeypatch) -> list[dict]:
    """Wrap training.train_descriptor so the test sees what each descriptor was trained on."""
    calls, original = [], training.train_descriptor

    def recording(spec, train, validation, profile, seed, run, source="clean", initial=None):
        calls.append(
            {
                "spec": spec,
                "train": train,
                "source": source,
                "initial": None if initial is None else [w.copy() for w in initial.get_weights()],
            }
        )
        return original(spec, train, validation, profile, seed, run, source, initial)

    monkeypatch.setattr(training, "train_descriptor", recording)
    return calls


def test_pipeline_descriptor_trains_on_its_denoisers_output(isolated, monkeypatch) -> None:
    """A report descriptor sees noisy -> its pipeline's denoiser -> uint8 patches; the key names the denoiser."""
    calls = _record_descriptor_training(monkeypatch)
    study = Study.open("smoke", **FAST)
    study.descriptor("unet", "baseline")
    (call,) = calls
    assert call["source"] == "denoised"
    bank = call["train"]
    expected = denoise_patches(study.denoiser("unet").model, bank.noisy, 64)
    np.testing.assert_array_equal(bank.denoised, expected)
    assert not np.array_equal(bank.denoised, bank.clean) and not np.array_equal(bank.denoised, bank.noisy)
    # one descriptor per pipeline: other inputs give other runs, and the denoiser's key is in the descriptor's
    keys = {den: study.descriptor_run_key(den, "baseline") for den in ("unet", "unet_mse", "none", "clean")}
    assert len(set(keys.values())) == 4
    assert study.descriptor_source("none", "baseline") == "noisy"
    assert study.descriptor_source("clean", "baseline") == "clean"
    assert study.descriptor_source("unet", "hardnet") == "clean"  # the extension trains on clean patches
    assert study.descriptor_run_key("unet", "hardnet") == study.descriptor_run_key("dncnn_adam", "hardnet")
    other = Study.open("smoke", **{**FAST, "epochs_unet": 2})
    assert other.descriptor_run_key("unet", "baseline") != keys["unet"]  # a retrained denoiser: a new descriptor
    assert other.descriptor_run_key("none", "baseline") == keys["none"]


def test_retrained_fine_tunes_the_pipelines_trained_baseline(isolated, monkeypatch) -> None:
    """'retrained' starts from the weights of the baseline trained for the same pipeline."""
    calls = _record_descriptor_training(monkeypatch)
    study = Study.open("smoke", **FAST)
    retrained = study.descriptor("unet", "retrained")
    assert [c["spec"].name for c in calls] == ["baseline", "retrained"]
    assert calls[0]["initial"] is None
    baseline = study.descriptor("unet", "baseline").model.get_weights()
    assert len(calls[1]["initial"]) == len(baseline)
    for start, trained in zip(calls[1]["initial"], baseline, strict=True):
        np.testing.assert_array_equal(start, trained)
    assert calls[1]["spec"].flip == "rot180" and calls[1]["source"] == "denoised"
    assert retrained.metrics["init_from"] == "baseline" and retrained.metrics["epochs"] == 1
    changed = [not np.array_equal(a, b) for a, b in zip(retrained.model.get_weights(), baseline, strict=True)]
    assert any(changed)  # fine-tuning moved the weights
    assert study.descriptor_run_key("unet", "retrained") != study.descriptor_run_key("none", "retrained")


def test_smoke_tables_are_identical_across_results_folders(tmp_path, monkeypatch) -> None:
    """The same settings into two results folders give identical mAP tables (training is seeded)."""
    pipelines = (("unet", "baseline"), ("unet", "retrained"), ("dncnn_adam", "hard"), ("none", "hardnet"))
    tables = []
    monkeypatch.setenv("NHPATCHES_DATA", str(tmp_path / "data"))
    for folder in ("first", "second"):
        monkeypatch.setenv("NHPATCHES_RESULTS", str(tmp_path / folder))
        tables.append(Study.open("smoke", **FAST).table(pipelines))
    assert (tmp_path / "first").is_dir() and (tmp_path / "second").is_dir()
    assert tables[0].equals(tables[1])


def test_run_keys_name_the_keras_backend(isolated, monkeypatch) -> None:
    """A model trained on one Keras backend is not reused on another: the backend is in every run key."""
    study = Study.open("smoke", **FAST)
    keys = (study.denoiser_run_key("unet"), study.descriptor_run_key("unet", "baseline"))
    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"
    monkeypatch.setattr(study_module.keras.backend, "backend", lambda: other)
    assert study.denoiser_run_key("unet") != keys[0]
    assert study.descriptor_run_key("unet", "baseline") != keys[1]


def test_force_retrain_trains_each_model_once_per_study(isolated, monkeypatch) -> None:
    """force_retrain retrains what a study uses, once: a fine-tuned descriptor does not retrain its
    parent a second time, and asking again loads the fresh run."""
    Study.open("smoke", **FAST).descriptor("unet", "retrained")  # a complete cache to force over
    calls = _record_descriptor_training(monkeypatch)
    denoiser_calls, original = [], training.train_denoiser

    def recording(spec, *args):
        denoiser_calls.append(spec.name)
        return original(spec, *args)

    monkeypatch.setattr(training, "train_denoiser", recording)
    forced = Study.open("smoke", force_retrain=True, **FAST)
    forced.descriptor("unet", "baseline")
    forced.descriptor("unet", "retrained")
    forced.descriptor("unet", "baseline")
    assert [c["spec"].name for c in calls] == ["baseline", "retrained"]
    assert denoiser_calls.count("unet") <= 1  # the denoised training bank may come from its cache
    forced.denoiser("unet")
    forced.denoiser("unet")
    assert denoiser_calls == ["unet"]
