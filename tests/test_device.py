"""Device sampling, bf16, jit and data parallel (nhpatches.device_sampling), on any Keras backend."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd
import pytest
from keras import ops

from nhpatches.core import config
from nhpatches.core.cache import RunDir
from nhpatches.nets import specs
from nhpatches.train import training
from nhpatches.train.accelerator import data_parallel, precision_policy, resolve_jit_compile
from nhpatches.train.batches import DenoisingBatches, bank_from_sequences, flip_patches
from nhpatches.train.device import (
    DeviceDenoisingSampler,
    DeviceTripletSampler,
    flip_tensor,
)

LIB = Path(__file__).resolve().parents[1] / "lib"
POINTS, SIZE = 24, 32


def make_bank(points: int = POINTS, size: int = SIZE, seed: int = 0):
    """A learnable bank: each point is a random texture, its 16 images that texture plus noise."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, points, size, size))
    clean = np.clip(base + rng.normal(0, 12, (16, points, size, size)), 0, 255).astype(np.uint8)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    return bank_from_sequences({"v_test": SimpleNamespace(clean=clean, noisy=noisy)})


def numpy_plan(sampler: DeviceTripletSampler) -> dict[str, np.ndarray]:
    """One draw of a sampler as numpy arrays."""
    return {k: ops.convert_to_numpy(v) for k, v in sampler.draw().items()}


def test_flip_tensor_matches_host_flips():
    patches = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    codes = np.array([0, 1, 2, 3])
    got = ops.convert_to_numpy(flip_tensor(ops.convert_to_tensor(patches), ops.convert_to_tensor(codes)))
    np.testing.assert_array_equal(got, flip_patches(patches, codes))
    np.testing.assert_array_equal(got[3], patches[3][::-1, ::-1])  # code 3 is the 180-degree turn


@pytest.mark.parametrize("flip", ["none", "random", "rot180"])
def test_triplet_sampler_follows_triplet_batches_definition(flip):
    bank = make_bank()
    sampler = DeviceTripletSampler(bank.clean, 16, "triplet", flip, seed=3)
    for _ in range(3):
        plan = numpy_plan(sampler)
        anchor, positive, negative = (
            ops.convert_to_numpy(x) for x in sampler.sample({k: ops.convert_to_tensor(v) for k, v in plan.items()})
        )
        assert anchor.shape == positive.shape == negative.shape == (16, SIZE, SIZE, 1)
        assert anchor.dtype == np.float32 and anchor.min() >= 0 and anchor.max() <= 255
        point = plan["point"]
        assert len(np.unique(point)) == 16 and point.min() >= 0 and point.max() < POINTS  # unique classes
        assert np.all(plan["first"] != plan["second"])  # same point, two different images
        assert np.all((plan["negative"] != point) & (plan["negative"] >= 0) & (plan["negative"] < POINTS))
        assert plan["first"].max() < 16 and plan["negative_image"].max() < 16
        if flip == "none":
            assert not plan["flip"].any() and not plan["negative_flip"].any()
        elif flip == "rot180":
            assert np.all(plan["flip"] == 3) and np.all(plan["negative_flip"] == 3)
        # The gathered patches are the bank's, flipped by code (anchor and positive share a code).

        def expect(pts: np.ndarray, img: np.ndarray, codes: np.ndarray) -> np.ndarray:
            return flip_patches(bank.clean[pts, img], codes).astype(np.float32)[..., None]

        np.testing.assert_array_equal(anchor, expect(point, plan["first"], plan["flip"]))
        np.testing.assert_array_equal(positive, expect(point, plan["second"], plan["flip"]))
        np.testing.assert_array_equal(negative, expect(plan["negative"], plan["negative_image"], plan["negative_flip"]))


def test_triplet_sampler_random_flips_cover_all_codes_and_pairs_mode():
    sampler = DeviceTripletSampler(make_bank().clean, 16, "pair", "random", seed=0)
    codes = np.concatenate([numpy_plan(sampler)["flip"] for _ in range(8)])
    assert set(codes.tolist()) == {0, 1, 2, 3}
    batch = sampler(None)
    assert len(batch) == 2 and tuple(batch[0].shape) == (16, SIZE, SIZE, 1)


def test_triplet_sampler_is_deterministic_per_seed_and_draws_every_point():
    bank = make_bank()
    first = [numpy_plan(DeviceTripletSampler(bank.clean, 8, seed=5)) for _ in range(2)]
    for key in first[0]:
        np.testing.assert_array_equal(first[0][key], first[1][key])
    other = numpy_plan(DeviceTripletSampler(bank.clean, 8, seed=6))
    assert not np.array_equal(first[0]["point"], other["point"])
    sampler = DeviceTripletSampler(bank.clean, 8, seed=5)
    seen = np.concatenate([numpy_plan(sampler)["point"] for _ in range(30)])
    assert set(seen.tolist()) == set(range(POINTS))  # every point can be drawn, not a fixed subset


def test_triplet_sampler_rejects_bad_arguments():
    bank = make_bank()
    with pytest.raises(ValueError, match="distinct points"):
        DeviceTripletSampler(bank.clean, POINTS + 1)
    with pytest.raises(ValueError, match="flip"):
        DeviceTripletSampler(bank.clean, 8, flip="sideways")
    with pytest.raises(ValueError, match="uint8"):
        DeviceTripletSampler(bank.clean.astype(np.float32), 8)


def test_denoising_sampler_full_pass_is_the_host_order_and_random_mode_draws_pairs():
    bank = make_bank()
    sampler = DeviceDenoisingSampler(bank.noisy, bank.clean, 32, None, seed=2)
    host = DenoisingBatches(bank, 32, None, seed=2)
    assert sampler.steps == len(host)
    for index in range(2):
        noisy, clean = (ops.convert_to_numpy(x) for x in sampler(None))
        host_noisy, host_clean = host[index]
        np.testing.assert_array_equal(noisy, host_noisy)
        np.testing.assert_array_equal(clean, host_clean)
    sampler.start_epoch(1)
    host.on_epoch_end()
    np.testing.assert_array_equal(ops.convert_to_numpy(sampler(None)[1]), host[0][1])
    random = DeviceDenoisingSampler(bank.noisy, bank.clean, 8, 5, seed=0)
    noisy, clean = (ops.convert_to_numpy(x) for x in random(None))
    assert noisy.shape == clean.shape == (8, SIZE, SIZE, 1) and noisy.dtype == np.float32
    flat_noisy = bank.noisy.reshape(-1, SIZE, SIZE)
    flat_clean = bank.clean.reshape(-1, SIZE, SIZE)
    for n, c in zip(noisy[..., 0], clean[..., 0], strict=True):  # each pair is one (point, image) patch
        rows = np.flatnonzero((flat_clean == c).all(axis=(1, 2)))
        assert any((flat_noisy[row] == n).all() for row in rows)


def _fit_losses(mixed_precision: str | None, jit_compile: bool | str) -> tuple[list[float], keras.Model]:
    """(per-epoch training losses, descriptor) of 3 x 6 device-sampled Adam steps on the test bank.

    The hardnet network with the Euclidean triplet loss (unit-norm descriptors, a loss of the
    margin's scale). The training loss is used: after so few steps BatchNormalization's moving
    statistics, which validation uses, are still far from the batch statistics.
    """
    bank = make_bank()
    spec = specs.DescriptorSpec("t", network="hardnet", distance="euclidean", optimizer="adam", learning_rate=1e-3)
    keras.utils.set_random_seed(0)
    with precision_policy(mixed_precision):
        descriptor, trainer = training.build_sampled_descriptor_trainer(
            spec, bank.clean, 8, seed=0, jit_compile=resolve_jit_compile(jit_compile)
        )
    history = trainer.fit(training.DeviceSteps(6, 8), epochs=3, verbose=0)
    return history.history["loss"], descriptor


def test_device_sampled_training_lowers_the_loss():
    losses, descriptor = _fit_losses(None, "auto")
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0], losses
    assert descriptor.get_layer("conv1").compute_dtype == "float32"


def test_bf16_training_loss_is_finite_and_falls():
    losses, descriptor = _fit_losses("bf16", True)
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0], losses
    conv = descriptor.get_layer("conv1")
    assert conv.compute_dtype == "bfloat16" and conv.variable_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # restored after building


def _device_profile(**overrides) -> config.Profile:
    settings = {
        "device_sampling": True,
        "mixed_precision": "bf16",
        "jit_compile": "auto",
        "batch_size": 8,
        "descriptor_steps_per_epoch": 3,
        "descriptor_validation_steps": 1,
        "epochs_descriptor": 2,
        "steps_per_epoch": None,
        "validation_steps": 1,
        "epochs_unet": 2,
        "denoiser_batch_size": 32,
    }
    return config.get_profile("smoke", **{**settings, **overrides})


def test_train_descriptor_and_denoiser_with_device_sampling_save_plain_float32_models(tmp_path):
    bank = make_bank()
    profile = _device_profile()
    run = RunDir(tmp_path, "descriptor", {"k": 1})
    metrics = training.train_descriptor(
        specs.DESCRIPTORS["retrained"],
        bank,
        bank,
        profile,
        0,
        run,
        source="noisy",
        initial=specs.build_descriptor_network(specs.DESCRIPTORS["baseline"]),
    )
    history = pd.read_csv(run.path / "history.csv")
    assert list(history.columns) == ["epoch", "loss", "val_loss"] and len(history) == profile.epochs_retrain
    assert metrics["patches_fed"] == profile.epochs_retrain * 3 * 8 * 3 and metrics["source"] == "noisy"
    saved = keras.models.load_model(run.path / "model.keras", compile=False)
    assert {layer.compute_dtype for layer in saved.layers} == {"float32"}
    assert saved.output_shape == (None, 128)

    run = RunDir(tmp_path, "denoiser", {"k": 2})
    small = make_bank(points=8)  # 128 patches: 4 batches of 32 make one full pass
    metrics = training.train_denoiser(specs.DENOISERS["unet_adam"], small, small, profile, 0, run)
    history = pd.read_csv(run.path / "history.csv")
    assert list(history.columns) == ["epoch", "loss", "mae", "mse", "val_loss", "val_mae", "val_mse"]
    assert np.isfinite(history.to_numpy()).all()
    assert metrics["patches_fed"] == 2 * 128  # one full pass per epoch
    saved = keras.models.load_model(run.path / "model.keras", compile=False)
    assert {layer.compute_dtype for layer in saved.layers} == {"float32"}


def test_profiles_accelerator_settings():
    for name in ("smoke", "cpu"):
        profile = config.PROFILES[name]
        assert (profile.device_sampling, profile.mixed_precision, profile.jit_compile, profile.devices) == (
            False,
            None,
            "auto",
            1,
        )
    gpu = config.PROFILES["gpu"]
    assert gpu.device_sampling and gpu.mixed_precision == "bf16" and gpu.jit_compile is True
    with pytest.raises(ValueError, match="mixed_precision"), precision_policy("fp8"):
        pass
    with pytest.raises(ValueError, match="jit_compile"):
        resolve_jit_compile("yes")


def test_devices_above_one_need_jax_and_even_batches():
    with data_parallel(1) as distribution:
        assert distribution is None
    with pytest.raises(ValueError), data_parallel(0):
        pass
    # the even split is checked first, on every backend: 51 pairs do not split over 2 devices
    with (
        pytest.raises(ValueError, match=r"batch sizes \[51\] do not split evenly over 2 devices"),
        data_parallel(2, (50, 51)),
    ):
        pass
    with data_parallel(1, (51,)):  # one device takes any batch
        pass
    if keras.backend.backend() != "jax":
        with pytest.raises(ValueError, match="JAX"), data_parallel(2, (50, 52)):
            pass


DATA_PARALLEL_SCRIPT = textwrap.dedent("""
    import json, sys, tempfile
    from types import SimpleNamespace
    import jax, keras, numpy as np, pandas as pd
    from nhpatches.core import config
    from nhpatches.nets import specs
    from nhpatches.train import training
    from nhpatches.train.batches import bank_from_sequences
    from nhpatches.core.cache import RunDir
    from nhpatches.train.accelerator import data_parallel

    assert len(jax.devices()) == 2, jax.devices()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (1, 24, 32, 32))
    clean = np.clip(base + rng.normal(0, 12, (16, 24, 32, 32)), 0, 255).astype(np.uint8)
    bank = bank_from_sequences({"v_t": SimpleNamespace(clean=clean, noisy=clean)})
    spec = specs.DescriptorSpec("t", network="hardnet", distance="euclidean", optimizer="adam",
                                   learning_rate=1e-3)
    out = {}
    for sampling in (True,):  # the gpu profile's path; its validation batches come from the host sampler
        for devices in (1, 2):
            profile = config.get_profile("smoke", devices=devices, device_sampling=sampling, batch_size=8,
                                         descriptor_steps_per_epoch=3, descriptor_validation_steps=1,
                                         epochs_descriptor=1, jit_compile=True)
            run = RunDir(tempfile.mkdtemp(), "d", {"k": devices})
            training.train_descriptor(spec, bank, bank, profile, 0, run)
            history = pd.read_csv(run.path / "history.csv")
            out[f"{sampling}-{devices}"] = history[["loss", "val_loss"]].to_numpy().ravel().tolist()
    with data_parallel(2, (8,)) as distribution:
        _, trainer = training.build_sampled_descriptor_trainer(spec, bank.clean, 8, 0)
        anchor = trainer.sampler(None)[0]
        out["device_shards"] = [list(s.data.shape) for s in anchor.addressable_shards]
        host = np.zeros((8, 32, 32, 1), np.float32)
        layout = distribution.get_data_layout(host.shape)
        out["host_shards"] = [list(s.data.shape) for s in
                              keras.distribution.distribute_tensor(host, layout).addressable_shards]
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed in this environment")
def test_data_parallel_two_virtual_devices_matches_one_device(tmp_path):
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "PYTHONPATH": os.pathsep.join([str(LIB), os.environ.get("PYTHONPATH", "")]),
        "NHPATCHES_RESULTS": str(tmp_path / "results"),
        "JAX_PLATFORMS": "cpu",
    }
    done = subprocess.run(
        [sys.executable, "-c", DATA_PARALLEL_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    # Each device holds half of the batch of 8, for the device sampler's batches and the host's.
    assert out["device_shards"] == [[4, 32, 32, 1]] * 2
    assert out["host_shards"] == [[4, 32, 32, 1]] * 2
    # The same seed gives the same losses on 2 devices as on 1, up to float summation order.
    assert len(out["True-1"]) == 2 and min(out["True-1"]) > 0  # loss and val_loss of one epoch (3 updates)
    # Measured: 3e-5 (loss) and 4e-5 (val_loss) relative; 3e-4 leaves room for other XLA versions.
    np.testing.assert_allclose(out["True-2"], out["True-1"], rtol=3e-4, atol=1e-5)


def test_accelerator_settings_key_training_runs_only_when_set(tmp_path, monkeypatch):
    """cpu/smoke keys keep their schedule (cached runs stay valid); a changed setting is a new run."""
    from nhpatches.study import Study

    for name in ("RESULTS", "DATA", "FIGURES"):
        monkeypatch.setenv(f"NHPATCHES_{name}", str(tmp_path / name.lower()))
    study = Study.open("smoke")
    _, run = study.models.denoiser_training_run("unet")
    assert not {"device_sampling", "mixed_precision", "jit_compile", "devices"} & set(run.settings["schedule"])
    assert (
        Study.open("smoke", device_sampling=False, mixed_precision=None, devices=1).denoiser_run_key("unet") == run.key
    )
    keys = {run.key}
    for override in ({"device_sampling": True}, {"mixed_precision": "bf16"}, {"jit_compile": True}, {"devices": 2}):
        keys.add(Study.open("smoke", **override).denoiser_run_key("unet"))
    assert len(keys) == 5
