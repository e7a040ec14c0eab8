"""Tests of nhpatches.models: the report's layouts layer by layer, parameter counts worked out by
hand, shapes, residual learning, saving and short training steps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest

from nhpatches.nets import losses, models, specs
from nhpatches.train import training

BUILDERS: dict[str, Callable[[], keras.Model]] = {
    "unet": models.build_unet,
    "dncnn": models.build_dncnn,
    "baseline": lambda: models.build_l2net("baseline"),
    "updated": lambda: models.build_l2net("updated"),
    "deep": lambda: models.build_l2net("deep"),
    "hardnet": models.build_hardnet,
}
DESCRIPTORS = ("baseline", "updated", "deep", "hardnet")
L2NETS = ("baseline", "updated", "deep")


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


# ---------------------------------------------------------------------------------------------
# Layer-by-layer layouts (the report, R §2.1, §2.2, §4.1, §4.2; HardNet for the extension)
# ---------------------------------------------------------------------------------------------


def _describe(layer: keras.layers.Layer) -> tuple:
    """What the layout tests pin about one layer, as a tuple starting with its class name."""
    kind = type(layer).__name__
    if isinstance(layer, keras.layers.Conv2D):
        return (
            kind,
            layer.filters,
            layer.kernel_size,
            layer.strides,
            layer.padding,
            layer.activation.__name__,
            type(layer.kernel_initializer).__name__,
            layer.use_bias,
        )
    if isinstance(layer, keras.layers.BatchNormalization):
        return (kind, layer.center, layer.scale, layer.momentum, layer.epsilon)
    if isinstance(layer, keras.layers.Dropout):
        return (kind, layer.rate)
    if isinstance(layer, keras.layers.MaxPooling2D):
        return (kind, layer.pool_size, layer.strides, layer.padding)
    if isinstance(layer, keras.layers.UpSampling2D):
        return (kind, layer.size)
    if isinstance(layer, keras.layers.Concatenate):
        return (kind, layer.axis)
    if isinstance(layer, keras.layers.Reshape):
        return (kind, layer.target_shape)
    return (kind,)


def _conv(
    filters: int,
    kernel: int,
    stride: int = 1,
    activation: str = "linear",
    init: str = "HeNormal",
    bias: bool = True,
    padding: str = "same",
) -> tuple:
    """Expected description of a Conv2D layer."""
    return ("Conv2D", filters, (kernel, kernel), (stride, stride), padding, activation, init, bias)


INPUT = ("InputLayer",)
RELU = ("ReLU",)
BN_KERAS = ("BatchNormalization", True, True, 0.99, 1e-3)  # Keras defaults: affine (gamma, beta)
BN_FREE = ("BatchNormalization", False, False, 0.99, 1e-3)  # HardNet: no gamma, no beta

EXPECTED_LAYOUTS: dict[str, list[tuple]] = {
    # R §2.1 / the coursework's get_denoise_model.
    "unet": [
        INPUT,
        _conv(16, 3, activation="relu"),
        ("MaxPooling2D", (2, 2), (2, 2), "valid"),
        _conv(32, 3, activation="relu"),
        ("UpSampling2D", (2, 2)),
        _conv(64, 2, activation="relu"),  # 2x2, not 3x3
        ("Concatenate", -1),
        _conv(64, 3, activation="relu"),
        _conv(1, 3, activation="linear", init="GlorotUniform"),  # Keras' default init, linear out
    ],
    # R §2.2 / the coursework's get_descriptor_model.
    "baseline": [
        INPUT,
        _conv(32, 3),
        BN_KERAS,
        RELU,
        _conv(32, 3),
        BN_KERAS,
        RELU,
        _conv(64, 3, stride=2),
        BN_KERAS,
        RELU,
        _conv(64, 3),
        BN_KERAS,
        RELU,
        _conv(128, 3, stride=2),
        BN_KERAS,
        RELU,
        _conv(128, 3),
        BN_KERAS,
        RELU,
        ("Dropout", 0.3),
        _conv(128, 8, padding="valid"),
        ("Reshape", (128,)),
    ],
    # R §4.1: orthogonal init, dropout after every activation.
    "updated": [
        INPUT,
        _conv(32, 3, init="Orthogonal"),
        BN_KERAS,
        RELU,
        ("Dropout", 0.3),
        _conv(32, 3, init="Orthogonal"),
        BN_KERAS,
        RELU,
        ("Dropout", 0.3),
        _conv(64, 3, stride=2, init="Orthogonal"),
        BN_KERAS,
        RELU,
        ("Dropout", 0.3),
        _conv(64, 3, init="Orthogonal"),
        BN_KERAS,
        RELU,
        ("Dropout", 0.3),
        _conv(128, 3, stride=2, init="Orthogonal"),
        BN_KERAS,
        RELU,
        ("Dropout", 0.3),
        _conv(128, 3, init="Orthogonal"),
        BN_KERAS,
        RELU,
        ("Dropout", 0.3),
        _conv(128, 8, padding="valid", init="Orthogonal"),
        ("Reshape", (128,)),
    ],
    # R §4.2: 32, 32, 32, 64, 64, 64, 128, 128 and the final 128.
    "deep": [
        INPUT,
        _conv(32, 3),
        BN_KERAS,
        RELU,
        _conv(32, 3),
        BN_KERAS,
        RELU,
        _conv(32, 3),
        BN_KERAS,
        RELU,
        _conv(64, 3, stride=2),
        BN_KERAS,
        RELU,
        _conv(64, 3),
        BN_KERAS,
        RELU,
        _conv(64, 3),
        BN_KERAS,
        RELU,
        _conv(128, 3, stride=2),
        BN_KERAS,
        RELU,
        _conv(128, 3),
        BN_KERAS,
        RELU,
        ("Dropout", 0.3),
        _conv(128, 8, padding="valid"),
        ("Reshape", (128,)),
    ],
    # Extension: L2-Net/HardNet as published (standardised input, no biases, affine-free BN).
    "hardnet": [
        INPUT,
        ("PatchStandardization",),
        _conv(32, 3, init="GlorotUniform", bias=False),
        BN_FREE,
        RELU,
        _conv(32, 3, init="GlorotUniform", bias=False),
        BN_FREE,
        RELU,
        _conv(64, 3, stride=2, init="GlorotUniform", bias=False),
        BN_FREE,
        RELU,
        _conv(64, 3, init="GlorotUniform", bias=False),
        BN_FREE,
        RELU,
        _conv(128, 3, stride=2, init="GlorotUniform", bias=False),
        BN_FREE,
        RELU,
        _conv(128, 3, init="GlorotUniform", bias=False),
        BN_FREE,
        RELU,
        _conv(128, 8, padding="valid", init="GlorotUniform", bias=False),
        BN_FREE,
        ("Flatten",),
        ("L2Normalize",),
    ],
}


@pytest.mark.parametrize("key", list(EXPECTED_LAYOUTS))
def test_layout_layer_by_layer(built: dict[str, keras.Model], key: str) -> None:
    """Every layer's type, filters, kernel, strides, padding, activation, init and bias, in order."""
    model = built[key]
    assert [_describe(layer) for layer in model.layers] == EXPECTED_LAYOUTS[key]
    assert tuple(model.input_shape) == (None, 32, 32, 1)


def test_unet_concatenates_conv1_then_conv3(built: dict[str, keras.Model]) -> None:
    """The skip is concatenate([conv1, conv3]): conv1's 16 channels first, then conv3's 64."""
    model = built["unet"]
    probe = keras.Model(model.input, [model.get_layer(name).output for name in ("conv1", "conv3", "skip")])
    conv1, conv3, skip = (_np(t) for t in probe(_patches(2, seed=1), training=False))
    assert skip.shape == (2, 32, 32, 80)
    np.testing.assert_array_equal(skip[..., :16], conv1)
    np.testing.assert_array_equal(skip[..., 16:], conv3)


def test_unet_has_no_input_or_output_scaling() -> None:
    """Pixels go straight in and out: a zero conv5 kernel with bias 0.5 gives exactly 0.5 everywhere."""
    model = models.build_unet(patch_size=16)
    assert not any(isinstance(layer, keras.layers.Rescaling) for layer in model.layers)
    head = model.get_layer("conv5")
    kernel, bias = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.full_like(bias, 0.5)])
    np.testing.assert_allclose(_np(model(_patches(2, size=16))), 0.5, atol=1e-6)


# Parameter counts, worked out by hand: a k x k conv from c_in to c_out channels has
# k*k*c_in*c_out weights (+ c_out biases); an affine BatchNormalization has 4 per channel
# (gamma, beta trainable; moving mean and variance not), an affine-free one 2 (the moving ones).
UNET_PARAMS = (
    (3 * 3 * 1 * 16 + 16)  # conv1: 160
    + (3 * 3 * 16 * 32 + 32)  # conv2: 4,640
    + (2 * 2 * 32 * 64 + 64)  # conv3 (2x2): 8,256
    + (3 * 3 * (16 + 64) * 64 + 64)  # conv4 on concat[conv1, conv3] = 80 channels: 46,144
    + (3 * 3 * 64 * 1 + 1)  # conv5: 577
)
L2NET_CONVS = (
    (3 * 3 * 1 * 32 + 32)  # conv1: 320
    + (3 * 3 * 32 * 32 + 32)  # conv2: 9,248
    + (3 * 3 * 32 * 64 + 64)  # conv3: 18,496
    + (3 * 3 * 64 * 64 + 64)  # conv4: 36,928
    + (3 * 3 * 64 * 128 + 128)  # conv5: 73,856
    + (3 * 3 * 128 * 128 + 128)  # conv6: 147,584
    + (8 * 8 * 128 * 128 + 128)  # conv7, 8x8 valid: 1,048,704
)
L2NET_BN = 4 * (32 + 32 + 64 + 64 + 128 + 128)  # 1,792
DEEP_CONVS = (
    (3 * 3 * 1 * 32 + 32)  # conv1: 320
    + (3 * 3 * 32 * 32 + 32)  # conv2: 9,248
    + (3 * 3 * 32 * 32 + 32)  # conv3: 9,248
    + (3 * 3 * 32 * 64 + 64)  # conv4: 18,496
    + (3 * 3 * 64 * 64 + 64)  # conv5: 36,928
    + (3 * 3 * 64 * 64 + 64)  # conv6: 36,928
    + (3 * 3 * 64 * 128 + 128)  # conv7: 73,856
    + (3 * 3 * 128 * 128 + 128)  # conv8: 147,584
    + (8 * 8 * 128 * 128 + 128)  # conv9: 1,048,704
)
DEEP_BN = 4 * (32 + 32 + 32 + 64 + 64 + 64 + 128 + 128)  # 2,176
HARDNET_CONVS = (
    3 * 3 * 1 * 32
    + 3 * 3 * 32 * 32
    + 3 * 3 * 32 * 64
    + 3 * 3 * 64 * 64
    + 3 * 3 * 64 * 128
    + 3 * 3 * 128 * 128
    + 8 * 8 * 128 * 128  # no biases: 1,334,560
)
HARDNET_BN = 2 * (32 + 32 + 64 + 64 + 128 + 128 + 128)  # 7 affine-free BNs: 1,152
DNCNN_PARAMS = (
    (3 * 3 * 1 * 64 + 64)  # conv1 with bias: 640
    + 15 * (3 * 3 * 64 * 64 + 4 * 64)  # conv2..16 without bias, each + BN: 15 * 37,120
    + 3 * 3 * 64 * 1  # conv17, no bias: 576
)

# (total, non-trainable) per model.
EXPECTED_PARAMS: dict[str, tuple[int, int]] = {
    "unet": (UNET_PARAMS, 0),
    "baseline": (L2NET_CONVS + L2NET_BN, L2NET_BN // 2),
    "updated": (L2NET_CONVS + L2NET_BN, L2NET_BN // 2),
    "deep": (DEEP_CONVS + DEEP_BN, DEEP_BN // 2),
    "hardnet": (HARDNET_CONVS + HARDNET_BN, HARDNET_BN),
    "dncnn": (DNCNN_PARAMS, 15 * 2 * 64),
}


def test_built_models_have_the_published_parameter_counts(built: dict[str, keras.Model]) -> None:
    """The networks as built have the totals the report prints (U-Net 59,777; L2-Net 1,336,928) and the
    model card states for the shipped descriptor (hardnet_release, 1,335,712), and these equal the hand
    arithmetic above."""
    from nhpatches.pretrained import load_pipeline

    assert built["unet"].count_params() == UNET_PARAMS == 59_777
    assert built["baseline"].count_params() == L2NET_CONVS + L2NET_BN == 1_336_928
    assert load_pipeline().descriptor.count_params() == HARDNET_CONVS + HARDNET_BN == 1_335_712


@pytest.mark.parametrize("key", list(EXPECTED_PARAMS))
def test_parameter_counts(built: dict[str, keras.Model], key: str) -> None:
    """count_params() and the non-trainable share (BN moving statistics) equal the hand counts."""
    total, frozen = EXPECTED_PARAMS[key]
    model = built[key]
    assert model.count_params() == total
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == frozen


def test_updated_has_the_baseline_weights(built: dict[str, keras.Model]) -> None:
    """'updated' changes init and dropout only: same weight shapes, so baseline weights load into it."""
    baseline, updated = built["baseline"], built["updated"]
    assert [tuple(w.shape) for w in updated.weights] == [tuple(w.shape) for w in baseline.weights]
    clone = models.build_l2net("updated")
    clone.set_weights(baseline.get_weights())
    x = _patches(4, seed=2)
    np.testing.assert_allclose(_np(clone(x, training=False)), _np(baseline(x, training=False)), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Behaviour
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("key", list(BUILDERS))
def test_output_shapes(built: dict[str, keras.Model], key: str, batch: int) -> None:
    """Denoisers map (B,32,32,1) to itself; descriptors to (B,128)."""
    out = _np(built[key](_patches(batch), training=False))
    expected = (batch, 128) if key in DESCRIPTORS else (batch, 32, 32, 1)
    assert out.shape == expected and out.dtype == np.float32 and np.isfinite(out).all()


def test_unet_accepts_any_even_patch_size() -> None:
    """One pooling level: P only has to be even (18 works, 17 does not)."""
    out = _np(models.build_unet(patch_size=18)(_patches(2, size=18)))
    assert out.shape == (2, 18, 18, 1)
    with pytest.raises(ValueError, match="multiple of 2"):
        models.build_unet(patch_size=17)


def test_hardnet_descriptors_unit_norm(built: dict[str, keras.Model]) -> None:
    """The extension's descriptors have Euclidean norm 1."""
    out = _np(built["hardnet"](_patches(16, seed=3), training=False))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("key", L2NETS)
def test_l2net_has_no_input_or_output_normalisation(built: dict[str, keras.Model], key: str) -> None:
    """At init (zero biases, BN moving mean 0 / variance 1) the L2-Net is positively homogeneous:
    doubling the pixels doubles the descriptor. Standardisation or L2 normalisation would not."""
    model = built[key]
    x = _patches(8, seed=4)
    base = _np(model(x, training=False))
    np.testing.assert_allclose(
        _np(model(2.0 * x, training=False)), 2.0 * base, rtol=1e-4, atol=1e-4 * np.abs(base).max()
    )
    assert not np.allclose(np.linalg.norm(base, axis=1), 1.0, atol=1e-2)


def test_hardnet_invariant_to_brightness_and_contrast(built: dict[str, keras.Model]) -> None:
    """Per-patch standardisation: a*x + b (a > 0) gives the same descriptor as x."""
    model = built["hardnet"]
    x = _patches(16, seed=5) * 0.5
    base = _np(model(x, training=False))
    np.testing.assert_allclose(_np(model(1.5 * x + 40.0, training=False)), base, atol=1e-4)
    assert not np.allclose(_np(model(x[::-1], training=False)), base, atol=1e-2)


@pytest.mark.parametrize(
    ("key", "count"), [("unet", 5), ("dncnn", 17), ("baseline", 7), ("updated", 7), ("deep", 9), ("hardnet", 7)]
)
def test_conv_layer_counts(built: dict[str, keras.Model], key: str, count: int) -> None:
    """Conv layers per model, as in the study's tables (nested models included, shared ones once)."""

    def layers(model: keras.Model) -> list[keras.layers.Layer]:
        nested = [layers(layer) for layer in model.layers if isinstance(layer, keras.Model)]
        return list(model.layers) + [layer for group in nested for layer in group]

    convs = {id(layer) for layer in layers(built[key]) if isinstance(layer, keras.layers.Conv2D)}
    assert len(convs) == count


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


def _conv_layers(model: keras.Model) -> list[keras.layers.Conv2D]:
    """Conv2D layers of a model in order."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


@pytest.mark.parametrize(("key", "orthogonal"), [("baseline", False), ("updated", True), ("deep", False)])
def test_orthogonal_init(built: dict[str, keras.Model], key: str, orthogonal: bool) -> None:
    """Only 'updated' kernels have orthonormal columns at init; the he_normal ones do not."""
    conv = _conv_layers(built[key])[2]  # 3x3x32 -> 64 (baseline/updated) or 32 (deep)
    kernel = _np(conv.kernel).reshape(-1, conv.filters)
    gram = kernel.T @ kernel
    assert np.allclose(gram, np.eye(conv.filters), atol=1e-4) == orthogonal


def test_dropout_rate_parameter() -> None:
    """dropout_rate reaches every Dropout layer; rates outside [0, 1) are rejected."""
    updated = models.build_l2net("updated", dropout_rate=0.1)
    assert [layer.rate for layer in updated.layers if isinstance(layer, keras.layers.Dropout)] == [0.1] * 6
    assert [f"dropout{i}" for i in range(1, 7)] == [
        layer.name for layer in updated.layers if isinstance(layer, keras.layers.Dropout)
    ]
    assert models.build_l2net("baseline", dropout_rate=0.2).get_layer("dropout").rate == 0.2
    hardnet = models.build_hardnet(dropout_rate=0.1)
    layers = hardnet.layers
    dropout = hardnet.get_layer("dropout")
    assert dropout.rate == 0.1 and layers[layers.index(dropout) + 1] is hardnet.get_layer("conv7")
    for build in (
        lambda: models.build_l2net("updated", dropout_rate=1.0),
        lambda: models.build_hardnet(dropout_rate=-0.1),
    ):
        with pytest.raises(ValueError, match="dropout_rate"):
            build()


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
        (lambda: models.build_hardnet(patch_size=30), "multiple of 4"),
        (lambda: models.build_unet(patch_size=0), "patch_size"),
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


@pytest.mark.parametrize("key", ["unet", "dncnn", "baseline", "updated", "deep", "hardnet"])
def test_save_load_roundtrip(built: dict[str, keras.Model], key: str, tmp_path: Path) -> None:
    """A saved .keras model loads back (no custom_objects) with identical layers and outputs."""
    path = tmp_path / f"{key}.keras"
    built[key].save(path)
    loaded = keras.models.load_model(path)
    assert [_describe(layer) for layer in loaded.layers] == [_describe(layer) for layer in built[key].layers]
    x = _patches(16, seed=6)
    expected = _np(built[key](x, training=False))
    np.testing.assert_allclose(
        _np(loaded(x, training=False)), expected, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(expected).max())
    )


def test_hardnet_custom_layers_roundtrip_with_config(tmp_path: Path) -> None:
    """The registered custom layers come back as themselves, with their settings."""
    model = models.build_hardnet(patch_size=16)
    model.get_layer("standardize").epsilon = 1e-3  # a non-default setting must survive the file
    model.save(tmp_path / "hardnet.keras")
    loaded = keras.models.load_model(tmp_path / "hardnet.keras")
    assert isinstance(loaded.get_layer("standardize"), models.PatchStandardization)
    assert loaded.get_layer("standardize").epsilon == 1e-3
    assert isinstance(loaded.get_layer("l2_normalize"), models.L2Normalize)


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
    np.testing.assert_allclose(out[:, 2], _np(descriptor(n, training=False)), rtol=1e-5)
    pair.save(tmp_path / "pair.keras")
    loaded = keras.models.load_model(tmp_path / "pair.keras")
    np.testing.assert_allclose(_np(loaded([a, p], training=False)), out[:, :2], rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Training steps
# ---------------------------------------------------------------------------------------------


def _fit_losses(
    model: keras.Model,
    loss: object,
    x: object,
    y: np.ndarray,
    steps: int,
    optimizer: keras.optimizers.Optimizer | None = None,
) -> list[float]:
    """Train on one fixed batch for `steps` epochs; the per-epoch losses."""
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-3), loss=loss)
    return model.fit(x, y, epochs=steps, batch_size=len(y), verbose=0, shuffle=False).history["loss"]


def test_l2net_baseline_triplet_sgd_lowers_the_loss() -> None:
    """The report's descriptor set-up (baseline L2-Net, Eq. 2 with the coursework's distance,
    SGD 0.1) drives the loss down on a fixed batch of hard triplets within a few steps."""
    keras.utils.set_random_seed(4)
    trainer = models.build_triplet_trainer(models.build_l2net("baseline"))
    anchors = _patches(16, seed=20)
    positives = np.clip(anchors + np.random.default_rng(21).normal(0, 10, anchors.shape), 0, 255).astype("float32")
    negatives = (0.8 * anchors + 0.2 * _patches(16, seed=22)).astype("float32")  # close to the anchors
    history = _fit_losses(
        trainer, losses.TripletLoss(), [anchors, positives, negatives], np.zeros(16), 5, keras.optimizers.SGD(0.1)
    )
    assert np.isfinite(history).all()
    assert history[0] > 0.5 and history[-1] < 0.5 * history[0]


def test_unet_coursework_sgd_step_is_finite() -> None:
    """The U-Net with the coursework's SGD (1e-5, Nesterov momentum 0.9) and MAE runs a step:
    finite loss, finite and changed weights."""
    keras.utils.set_random_seed(5)
    model = models.build_unet()
    clean = _patches(8, seed=23)
    noisy = np.clip(clean + np.random.default_rng(24).normal(0, 25, clean.shape), 0, 255).astype("float32")
    before = [w.copy() for w in model.get_weights()]
    history = _fit_losses(model, "mae", noisy, clean, 1, keras.optimizers.SGD(1e-5, momentum=0.9, nesterov=True))
    after = model.get_weights()
    assert np.isfinite(history).all() and history[0] > 0
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))


def test_study_specs_compile_the_report_set_ups() -> None:
    """The study's 'unet' and 'baseline' specs compile what the two tests above train."""
    unet = training.build_denoiser(specs.DENOISERS["unet"])
    optimizer = unet.optimizer
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.nesterov
    assert float(_np(optimizer.learning_rate)) == pytest.approx(1e-5) and optimizer.momentum == 0.9
    assert [_describe(layer) for layer in unet.layers] == EXPECTED_LAYOUTS["unet"]
    descriptor, trainer = training.build_descriptor_trainer(specs.DESCRIPTORS["baseline"])
    assert [_describe(layer) for layer in descriptor.layers] == EXPECTED_LAYOUTS["baseline"]
    assert isinstance(trainer.loss, losses.TripletLoss)
    assert (trainer.loss.distance, trainer.loss.margin) == ("mean_squared", 1.0)
    assert isinstance(trainer.optimizer, keras.optimizers.SGD)
    assert float(_np(trainer.optimizer.learning_rate)) == pytest.approx(0.1)


@pytest.mark.parametrize("key", ["unet", "dncnn"])
def test_denoiser_training_step_decreases_loss(key: str) -> None:
    """A few MAE steps (Adam) on one batch reduce the loss and keep the weights finite.

    The U-Net sees raw 0..255 pixels (no rescaling, as the coursework), where Adam at 1e-3
    oscillates on some backends' initial draws; 1e-4 is used for it.
    """
    keras.utils.set_random_seed(1)
    model = models.build_unet(16) if key == "unet" else models.build_dncnn(16, depth=17, filters=16)
    clean = _patches(4, seed=10, size=16)
    noisy = np.clip(clean + np.random.default_rng(11).normal(0, 25, clean.shape), 0, 255).astype("float32")
    optimizer = keras.optimizers.Adam(1e-4 if key == "unet" else 1e-3)
    history = _fit_losses(model, losses.mean_absolute_error, noisy, clean, steps=6, optimizer=optimizer)
    assert np.isfinite(history).all() and history[-1] < history[0]
    assert all(np.isfinite(_np(w)).all() for w in model.trainable_weights)


def test_hardnet_training_step_decreases_hardest_negative_loss() -> None:
    """The extension: HardNet loss (margin 2, always active) decreases on one batch of pairs."""
    keras.utils.set_random_seed(2)
    trainer = models.build_pair_trainer(models.build_hardnet())
    anchors = _patches(8, seed=12)
    positives = anchors + np.random.default_rng(13).normal(0, 10, anchors.shape).astype("float32")
    history = _fit_losses(trainer, losses.hardest_negative_loss(margin=2.0), [anchors, positives], np.zeros(8), 5)
    assert np.isfinite(history).all() and history[0] > 0 and history[-1] < history[0]


def test_euclidean_triplet_training_with_identical_pairs_stays_finite() -> None:
    """Anchor == positive (Euclidean distance 0, under a square root) still gives finite gradients."""
    keras.utils.set_random_seed(3)
    # No dropout, so that the two branches really see (and output) the same thing.
    descriptor = models.build_l2net("updated", patch_size=16, dropout_rate=0.0)
    trainer = models.build_triplet_trainer(descriptor)
    anchors, negatives = _patches(4, seed=14, size=16), _patches(4, seed=15, size=16)
    before = [_np(w).copy() for w in descriptor.trainable_weights]
    loss = losses.triplet_loss(margin=1e4, distance="euclidean")
    out = _np(trainer([anchors, anchors, negatives], training=True))
    np.testing.assert_array_equal(out[:, 0], out[:, 1])  # d(a, p) is exactly 0
    history = _fit_losses(trainer, loss, [anchors, anchors, negatives], np.zeros(4), 2)
    after = [_np(w) for w in descriptor.trainable_weights]
    assert np.isfinite(history).all() and history[0] > 0
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))
