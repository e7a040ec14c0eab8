"""Tests of nhpatches.models: shapes, layouts, residual learning, saving and a training step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest

from nhpatches import losses, models

BUILDERS: dict[str, Callable[[], keras.Model]] = {
    "unet": models.build_unet,
    "dncnn": models.build_dncnn,
    "baseline": lambda: models.build_l2net("baseline"),
    "updated": lambda: models.build_l2net("updated"),
    "deep": lambda: models.build_l2net("deep"),
}
DESCRIPTORS = ("baseline", "updated", "deep")


def _np(x) -> np.ndarray:
    """A backend tensor as a numpy array."""
    return np.asarray(keras.ops.convert_to_numpy(x))


def _patches(batch: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """Random float32 patches in 0..255. Shape: (batch, size, size, 1)."""
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 1)).astype("float32")


@pytest.fixture(scope="module")
def built() -> dict[str, keras.Model]:
    """One model per builder, shared by the module's read-only tests."""
    keras.utils.set_random_seed(0)
    return {key: build() for key, build in BUILDERS.items()}


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("key", list(BUILDERS))
def test_output_shapes(built: dict[str, keras.Model], key: str, batch: int) -> None:
    """Denoisers map (B,32,32,1) to itself; descriptors to (B,128)."""
    out = _np(built[key](_patches(batch), training=False))
    expected = (batch, 128) if key in DESCRIPTORS else (batch, 32, 32, 1)
    assert out.shape == expected and out.dtype == np.float32 and np.isfinite(out).all()


@pytest.mark.parametrize("key", DESCRIPTORS)
def test_descriptors_unit_norm(built: dict[str, keras.Model], key: str) -> None:
    """Every descriptor has Euclidean norm 1."""
    out = _np(built[key](_patches(16, seed=3), training=False))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("key", "count"), [("unet", 6), ("dncnn", 17), ("baseline", 7), ("updated", 7), ("deep", 9)]
)
def test_conv_layer_counts(built: dict[str, keras.Model], key: str, count: int) -> None:
    """Conv layers per model, as in the study's tables."""
    assert models.count_conv_layers(built[key]) == count


def test_dncnn_depth_and_layout() -> None:
    """depth counts convs; middle convs have no bias and BN(momentum 0.9, eps 1e-3); all orthogonal."""
    model = models.build_dncnn(patch_size=16, depth=5, filters=8)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(convs) == 5 and len(bns) == 3
    assert [c.use_bias for c in convs] == [True, False, False, False, False]
    assert all(isinstance(c.kernel_initializer, keras.initializers.Orthogonal) for c in convs)
    assert all(bn.momentum == 0.9 and bn.epsilon == 1e-3 for bn in bns)
    assert convs[-1].filters == 1


def test_dncnn_residual_zero_noise_returns_input() -> None:
    """With the noise conv zeroed the output is exactly the input; otherwise it differs."""
    model = models.build_dncnn(patch_size=16, depth=4, filters=8)
    x = _patches(2, size=16)
    assert not np.allclose(_np(model(x, training=False)), x, atol=1e-2)
    last = model.get_layer("conv4")
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    np.testing.assert_array_equal(_np(model(x, training=False)), x)


def test_dncnn_output_is_input_minus_noise(built: dict[str, keras.Model]) -> None:
    """output = input - 255 * (last conv output): the 'noise' layer is what gets subtracted."""
    model = built["dncnn"]
    probe = keras.Model(model.input, [model.get_layer("noise").output, model.output])
    x = _patches(16, seed=4)
    noise, out = (_np(t) for t in probe(x, training=False))
    assert np.abs(noise).max() > 0
    np.testing.assert_allclose(out, x - noise, atol=1e-3)


def test_unet_rescales_both_ends() -> None:
    """A zero 1x1 output kernel with bias 0.5 (0..1 scale) gives 127.5 everywhere (0..255 scale)."""
    model = models.build_unet(patch_size=16)
    head = model.get_layer("out_conv")
    kernel, bias = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.full_like(bias, 0.5)])
    np.testing.assert_allclose(_np(model(_patches(2, size=16))), 127.5, atol=1e-4)
    assert model.get_layer("scale_in").scale == pytest.approx(1 / 255)


def _conv_layers(model: keras.Model) -> list[keras.layers.Conv2D]:
    """Conv2D layers of a model in order."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


@pytest.mark.parametrize(("key", "orthogonal"), [("baseline", False), ("updated", True), ("deep", True)])
def test_orthogonal_init(built: dict[str, keras.Model], key: str, orthogonal: bool) -> None:
    """'updated'/'deep' kernels have orthonormal columns at init; the Glorot baseline's do not."""
    conv = _conv_layers(built[key])[2]  # 3x3x32 -> 64 (baseline/updated) or 32 (deep)
    kernel = _np(conv.kernel).reshape(-1, conv.filters)
    gram = kernel.T @ kernel
    assert np.allclose(gram, np.eye(conv.filters), atol=1e-4) == orthogonal
    assert isinstance(conv.kernel_initializer, keras.initializers.Orthogonal) == orthogonal


@pytest.mark.parametrize(("key", "has_dropout"), [("baseline", False), ("updated", True), ("deep", True)])
def test_dropout_before_last_conv(built: dict[str, keras.Model], key: str, has_dropout: bool) -> None:
    """Dropout(0.3) sits right before the last conv in 'updated'/'deep' and nowhere in 'baseline'."""
    layers = built[key].layers
    dropouts = [layer for layer in layers if isinstance(layer, keras.layers.Dropout)]
    assert len(dropouts) == int(has_dropout)
    if has_dropout:
        assert dropouts[0].rate == 0.3
        assert layers[layers.index(dropouts[0]) + 1] is _conv_layers(built[key])[-1]


def test_dropout_rate_parameter() -> None:
    """dropout_rate reaches the layer; rates outside [0, 1) are rejected."""
    model = models.build_l2net("updated", dropout_rate=0.1)
    assert model.get_layer("dropout").rate == 0.1
    with pytest.raises(ValueError, match="dropout_rate"):
        models.build_l2net("updated", dropout_rate=1.0)


def test_l2net_bn_affine_free_and_final_conv(built: dict[str, keras.Model]) -> None:
    """Every BN has no scale/offset; the last conv is an 8x8 valid conv to 128."""
    model = built["deep"]
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 9 and not any(bn.center or bn.scale for bn in bns)
    last = _conv_layers(model)[-1]
    assert last.kernel_size == (8, 8) and last.padding == "valid" and last.filters == 128
    strides = [conv.strides[0] for conv in _conv_layers(model)]
    assert strides == [1, 1, 1, 2, 1, 1, 2, 1, 1]


def test_descriptor_invariant_to_brightness_and_contrast(built: dict[str, keras.Model]) -> None:
    """Per-patch standardisation: a*x + b (a > 0) gives the same descriptor as x."""
    model = built["baseline"]
    x = _patches(16, seed=5) * 0.5
    base = _np(model(x, training=False))
    np.testing.assert_allclose(_np(model(1.5 * x + 40.0, training=False)), base, atol=1e-4)
    assert not np.allclose(_np(model(x[::-1], training=False)), base, atol=1e-2)


def test_patch_standardization_constant_patch_is_finite() -> None:
    """A flat patch standardises to zeros, not NaN; others get mean 0, std 1."""
    x = np.concatenate([np.full((1, 8, 8, 1), 90.0, "float32"), _patches(1, size=8)])
    out = _np(models.PatchStandardization()(x))
    np.testing.assert_array_equal(out[0], 0.0)
    assert abs(out[1].mean()) < 1e-5 and abs(out[1].std() - 1) < 1e-4


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: models.build_l2net("resnet"), "baseline"),
        (lambda: models.build_l2net(patch_size=30), "multiple of 4"),
        (lambda: models.build_l2net(descriptor_dim=0), "descriptor_dim"),
        (lambda: models.build_unet(patch_size=18), "multiple of 4"),
        (lambda: models.build_dncnn(depth=1), "depth"),
        (lambda: models.build_dncnn(filters=0), "filters"),
        (lambda: models.build_pair_trainer("l2net"), "keras.Model"),
    ],
)
def test_bad_arguments_raise(call: Callable[[], object], message: str) -> None:
    """Bad arguments raise ValueError with a clear message."""
    with pytest.raises(ValueError, match=message):
        call()


def test_unknown_variant_names_allowed_values() -> None:
    """The message lists every allowed variant."""
    with pytest.raises(ValueError) as info:
        models.build_l2net("resnet")
    assert all(name in str(info.value) for name in models.L2NET_VARIANTS)


@pytest.mark.parametrize("key", ["unet", "dncnn", "updated"])
def test_save_load_roundtrip(built: dict[str, keras.Model], key: str, tmp_path: Path) -> None:
    """A saved .keras model loads back (no custom_objects) with identical outputs."""
    path = tmp_path / f"{key}.keras"
    built[key].save(path)
    loaded = keras.models.load_model(path)
    x = _patches(16, seed=6)
    np.testing.assert_allclose(_np(loaded(x, training=False)), _np(built[key](x, training=False)), atol=1e-5)
    assert models.count_conv_layers(loaded) == models.count_conv_layers(built[key])


def test_trainers_share_weights_and_roundtrip(built: dict[str, keras.Model], tmp_path: Path) -> None:
    """Trainers stack the shared descriptor's outputs and save/load like any model."""
    descriptor = built["baseline"]
    triplet = models.build_triplet_trainer(descriptor)
    pair = models.build_pair_trainer(descriptor)
    assert [t.name for t in triplet.inputs] == ["anchor", "positive", "negative"]
    assert len(triplet.trainable_weights) == len(descriptor.trainable_weights)
    a, p, n = _patches(16, 7), _patches(16, 8), _patches(16, 9)
    out = _np(triplet([a, p, n], training=False))
    assert out.shape == (16, 3, 128) and _np(pair([a, p], training=False)).shape == (16, 2, 128)
    np.testing.assert_allclose(out[:, 2], _np(descriptor(n, training=False)), atol=1e-5)
    pair.save(tmp_path / "pair.keras")
    loaded = keras.models.load_model(tmp_path / "pair.keras")
    np.testing.assert_allclose(_np(loaded([a, p], training=False)), out[:, :2], atol=1e-5)


def _fit_losses(model: keras.Model, loss: object, x: object, y: np.ndarray, steps: int) -> list[float]:
    """Train on one fixed batch for `steps` epochs; the per-epoch losses."""
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    return model.fit(x, y, epochs=steps, batch_size=len(y), verbose=0, shuffle=False).history["loss"]


@pytest.mark.parametrize("key", ["unet", "dncnn"])
def test_denoiser_training_step_decreases_loss(key: str) -> None:
    """A few MAE steps on one batch reduce the loss and keep the weights finite."""
    keras.utils.set_random_seed(1)
    model = models.build_unet(16) if key == "unet" else models.build_dncnn(16, depth=17, filters=16)
    clean = _patches(4, seed=10, size=16)
    noisy = np.clip(clean + np.random.default_rng(11).normal(0, 25, clean.shape), 0, 255).astype("float32")
    history = _fit_losses(model, losses.mean_absolute_error, noisy, clean, steps=6)
    assert np.isfinite(history).all() and history[-1] < history[0]
    assert all(np.isfinite(_np(w)).all() for w in model.trainable_weights)


def test_descriptor_training_step_decreases_hard_loss() -> None:
    """HardNet loss (margin 2, always active) decreases on one batch of pairs."""
    keras.utils.set_random_seed(2)
    trainer = models.build_pair_trainer(models.build_l2net("baseline"))
    anchors = _patches(8, seed=12)
    positives = anchors + np.random.default_rng(13).normal(0, 10, anchors.shape).astype("float32")
    history = _fit_losses(trainer, losses.hard_triplet_loss(margin=2.0), [anchors, positives], np.zeros(8), 5)
    assert np.isfinite(history).all() and history[0] > 0 and history[-1] < history[0]


def test_triplet_training_with_identical_pairs_stays_finite() -> None:
    """Anchor == positive (distance 0) still gives finite gradients thanks to the eps."""
    keras.utils.set_random_seed(3)
    descriptor = models.build_l2net("updated")
    trainer = models.build_triplet_trainer(descriptor)
    anchors, negatives = _patches(4, seed=14), _patches(4, seed=15)
    before = [_np(w).copy() for w in descriptor.trainable_weights]
    history = _fit_losses(trainer, losses.triplet_loss(margin=3.0), [anchors, anchors, negatives], np.zeros(4), 2)
    after = [_np(w) for w in descriptor.trainable_weights]
    assert np.isfinite(history).all() and history[0] > 0
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))
