"""Keras 3 Functional builders: U-Net and DnCNN denoisers, L2-Net descriptors, training wrappers.

The report's models (``build_unet``, ``build_dncnn``, ``build_l2net``) follow the report and, where
it is silent, the coursework code (FIDELITY.md lists every choice); ``build_hardnet`` is the
field's stronger descriptor, kept as a named extension. Every model takes (and the denoisers
return) grayscale patches of shape (B, P, P, 1), float32 pixel values in 0..255; only DnCNN and
HardNet rescale internally. Only ``keras.ops`` is used,
so the models run on the TensorFlow, PyTorch and JAX backends alike.
"""

from __future__ import annotations

import keras
from keras import ops

#: Descriptor variants accepted by build_l2net.
L2NET_VARIANTS: tuple[str, ...] = ("baseline", "updated", "deep")
#: Pixel range of the patches at the model boundary.
PIXEL_MAX = 255.0


@keras.saving.register_keras_serializable(package="nhpatches")
class PatchStandardization(keras.layers.Layer):
    """Per-patch standardisation (x - mean) / (std + eps) over H, W, C, as L2-Net/HardNet.

    Shape: (B, H, W, C) -> (B, H, W, C).
    """

    def __init__(self, epsilon: float = 1e-7, **kwargs) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        """Standardise each patch of the batch independently."""
        mean = ops.mean(inputs, axis=(1, 2, 3), keepdims=True)
        std = ops.sqrt(ops.mean(ops.square(inputs - mean), axis=(1, 2, 3), keepdims=True))
        return (inputs - mean) / (std + self.epsilon)

    def compute_output_shape(self, input_shape):
        """Same shape as the input."""
        return input_shape

    def get_config(self) -> dict:
        """Config for saving."""
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="nhpatches")
class L2Normalize(keras.layers.Layer):
    """Scale each vector to unit Euclidean norm: x / sqrt(sum(x^2) + eps), as HardNet's L2Norm.

    Shape: (B, ..., D) -> (B, ..., D), normalised along ``axis``.
    """

    def __init__(self, axis: int = -1, epsilon: float = 1e-10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.axis = int(axis)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        """Divide by the (eps-stabilised) norm along the axis."""
        norm = ops.sqrt(ops.sum(ops.square(inputs), axis=self.axis, keepdims=True) + self.epsilon)
        return inputs / norm

    def compute_output_shape(self, input_shape):
        """Same shape as the input."""
        return input_shape

    def get_config(self) -> dict:
        """Config for saving."""
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="nhpatches")
class StackDescriptors(keras.layers.Layer):
    """Stack same-shaped descriptor batches along a new axis 1.

    Shape: k x (B, D) -> (B, k, D).
    """

    def call(self, inputs):
        """Stack the list of inputs along axis 1."""
        return ops.stack(list(inputs), axis=1)

    def compute_output_shape(self, input_shape):
        """(B, k, D) from k shapes (B, D)."""
        first = tuple(input_shape[0])
        return (first[0], len(input_shape), *first[1:])


def _check_positive_int(value: int, what: str) -> None:
    """Raise ValueError unless value is a positive int."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")


def _check_patch_size(patch_size: int, multiple: int = 1) -> None:
    """Raise ValueError unless patch_size is a positive int divisible by multiple."""
    _check_positive_int(patch_size, "patch_size")
    if patch_size % multiple:
        raise ValueError(f"patch_size must be a multiple of {multiple}, got {patch_size}")


def _patch_input(patch_size: int, name: str = "patch") -> keras.KerasTensor:
    """A (P, P, 1) float32 input."""
    return keras.Input(shape=(patch_size, patch_size, 1), dtype="float32", name=name)


def build_unet(patch_size: int = 32, name: str = "unet") -> keras.Model:
    """The report's shallow U-Net denoiser (R §2.1), as the coursework's ``get_denoise_model``.

    conv1 16 3x3 ReLU -> MaxPool 2x2 -> conv2 32 3x3 ReLU -> UpSampling 2x2 -> conv3 64 **2x2**
    ReLU -> concatenate [conv1, conv3] -> conv4 64 3x3 ReLU -> conv5 1 3x3 linear. Padding same,
    stride 1, biases on, he_normal init on conv1-4; conv5 keeps Keras' default (Glorot) init and a
    linear output, as in the coursework (the report's text says ReLU on every layer; the study
    clips the output to 0..255 anyway, see FIDELITY.md). No input scaling: pixels go in as 0..255.
    Shape: (B, P, P, 1) in 0..255 -> (B, P, P, 1) denoised, same scale; P even.
    """
    _check_patch_size(patch_size, 2)
    conv = keras.layers.Conv2D
    inputs = _patch_input(patch_size)
    conv1 = conv(16, 3, activation="relu", padding="same", kernel_initializer="he_normal", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(conv1)
    x = conv(32, 3, activation="relu", padding="same", kernel_initializer="he_normal", name="conv2")(x)
    x = keras.layers.UpSampling2D(2, name="up2")(x)
    x = conv(64, 2, activation="relu", padding="same", kernel_initializer="he_normal", name="conv3")(x)
    x = keras.layers.Concatenate(axis=-1, name="skip")([conv1, x])
    x = conv(64, 3, activation="relu", padding="same", kernel_initializer="he_normal", name="conv4")(x)
    outputs = conv(1, 3, padding="same", name="conv5")(x)
    return keras.Model(inputs, outputs, name=name)


def _dncnn_block(x: keras.KerasTensor, filters: int, index: int) -> keras.KerasTensor:
    """One DnCNN middle block: Conv(3x3, no bias, orthogonal) + BN + ReLU."""
    x = keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer="orthogonal",
        name=f"conv{index}",
    )(x)
    # BN momentum: cszn's Keras code uses momentum=0.0 (moving statistics = the last batch's),
    # with 0.1 (PyTorch's convention, misread by Keras as 0.1 weight on the old value) commented
    # out. We use 0.9, i.e. PyTorch's/MatConvNet's default momentum 0.1 in Keras' convention: the
    # moving statistics then settle within ~50 steps, which short CPU runs need (Keras' default
    # 0.99 needs ~500). epsilon 1e-3 is Keras' default (cszn uses 1e-4; the difference is
    # negligible next to batch variances of 64 feature maps).
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name=f"bn{index}")(x)
    return keras.layers.ReLU(name=f"relu{index}")(x)


def build_dncnn(patch_size: int = 32, depth: int = 17, filters: int = 64, name: str = "dncnn") -> keras.Model:
    """DnCNN (Zhang et al. 2017, cszn's Keras code): residual learning, output = input - noise.

    Input and output are in 0..255, but the convolutions see the input scaled to 0..1 (Rescaling)
    for stable training; the predicted noise (0..1 scale) is scaled back by 255 before the
    subtraction. ``depth`` counts conv layers (17 at the default); all kernels are orthogonal and
    the last conv has no bias, as in cszn's code.
    Shape: (B, P, P, 1) in 0..255 -> (B, P, P, 1) denoised, same scale.
    """
    _check_patch_size(patch_size)
    _check_positive_int(filters, "filters")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
        raise ValueError(f"depth must be an int >= 2, got {depth!r}")
    inputs = _patch_input(patch_size)
    x = keras.layers.Rescaling(1.0 / PIXEL_MAX, name="scale_in")(inputs)
    x = keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer="orthogonal", name="conv1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    for index in range(2, depth):
        x = _dncnn_block(x, filters, index)
    noise = keras.layers.Conv2D(
        1, 3, padding="same", use_bias=False, kernel_initializer="orthogonal", name=f"conv{depth}"
    )(x)
    noise = keras.layers.Rescaling(PIXEL_MAX, name="noise")(noise)
    outputs = keras.layers.Subtract(name="residual")([inputs, noise])
    return keras.Model(inputs, outputs, name=name)


def _l2net_layout(variant: str) -> list[tuple[int, int]]:
    """(filters, stride) of the 3x3 conv-BN-ReLU blocks of a variant, before the final 8x8 conv."""
    if variant not in L2NET_VARIANTS:
        raise ValueError(f"unknown L2-Net variant {variant!r}; expected one of {L2NET_VARIANTS}")
    if variant == "deep":
        # R §4.2: 32, 32, 32, 64, 64, 64, 128, 128 (+ the final 128); the added layers have stride 1.
        return [(32, 1), (32, 1), (32, 1), (64, 2), (64, 1), (64, 1), (128, 2), (128, 1)]
    return [(32, 1), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1)]


def build_l2net(
    variant: str = "baseline",
    patch_size: int = 32,
    descriptor_dim: int = 128,
    dropout_rate: float = 0.3,
    name: str | None = None,
) -> keras.Model:
    """The report's descriptor (R §2.2, §4.1, §4.2), as the coursework's ``get_descriptor_model``.

    3x3 conv (bias, stride 2 on the first 64- and the first 128-filter conv) + BatchNormalization
    (Keras defaults: affine) + ReLU blocks, then a (P/4 x P/4, valid) conv to ``descriptor_dim``
    with bias and a reshape. No input normalisation and no output normalisation.

    - "baseline": 7 convs (32, 32, 64, 64, 128, 128, 128), he_normal, Dropout(rate) before the
      last conv (coursework).
    - "updated": the baseline with orthogonal init and Dropout(rate) after every activation (R §4.1).
    - "deep": 9 convs (32, 32, 32, 64, 64, 64, 128, 128, 128), otherwise the baseline (R §4.2).

    Shape: (B, P, P, 1) in 0..255 -> (B, descriptor_dim), P a multiple of 4 (32 in the study).
    """
    layout = _l2net_layout(variant)
    _check_patch_size(patch_size, 4)
    _check_positive_int(descriptor_dim, "descriptor_dim")
    if not 0.0 <= float(dropout_rate) < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
    init = "orthogonal" if variant == "updated" else "he_normal"
    inputs = _patch_input(patch_size)
    x = inputs
    for index, (filters, stride) in enumerate(layout, start=1):
        x = keras.layers.Conv2D(
            filters, 3, strides=stride, padding="same", use_bias=True, kernel_initializer=init, name=f"conv{index}"
        )(x)
        x = keras.layers.BatchNormalization(name=f"bn{index}")(x)
        x = keras.layers.ReLU(name=f"relu{index}")(x)
        if variant == "updated":
            x = keras.layers.Dropout(dropout_rate, name=f"dropout{index}")(x)
    if variant != "updated":
        x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
    last = len(layout) + 1
    x = keras.layers.Conv2D(
        descriptor_dim, patch_size // 4, padding="valid", use_bias=True, kernel_initializer=init, name=f"conv{last}"
    )(x)
    outputs = keras.layers.Reshape((descriptor_dim,), name="reshape")(x)
    return keras.Model(inputs, outputs, name=name or f"l2net_{variant}")


def build_hardnet(
    patch_size: int = 32,
    descriptor_dim: int = 128,
    dropout_rate: float = 0.0,
    kernel_initializer: str = "glorot_uniform",
    name: str = "hardnet",
) -> keras.Model:
    """Extension (not the report's): the L2-Net/HardNet-style descriptor, for the ``hardnet`` family.

    The architecture of Tian et al. 2017 and Mishchuk et al. 2017, used from notebook 08 on.

    Per-patch standardisation, 7 convs (32, 32, 64/2, 64, 128/2, 128, then P/4 x P/4 valid) without
    bias, each followed by affine-free BatchNormalization (ReLU after all but the last), optional
    Dropout before the last conv, Flatten and L2 normalisation: unit-norm descriptors.
    Shape: (B, P, P, 1) in 0..255 -> (B, descriptor_dim), P a multiple of 4.
    """
    layout = _l2net_layout("baseline")
    _check_patch_size(patch_size, 4)
    _check_positive_int(descriptor_dim, "descriptor_dim")
    if not 0.0 <= float(dropout_rate) < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
    inputs = _patch_input(patch_size)
    x = PatchStandardization(name="standardize")(inputs)
    for index, (filters, stride) in enumerate(layout, start=1):
        x = keras.layers.Conv2D(
            filters,
            3,
            strides=stride,
            padding="same",
            use_bias=False,
            kernel_initializer=kernel_initializer,
            name=f"conv{index}",
        )(x)
        x = _affine_free_bn(f"bn{index}")(x)
        x = keras.layers.ReLU(name=f"relu{index}")(x)
    if dropout_rate > 0:
        x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
    last = len(layout) + 1
    x = keras.layers.Conv2D(
        descriptor_dim,
        patch_size // 4,
        padding="valid",
        use_bias=False,
        kernel_initializer=kernel_initializer,
        name=f"conv{last}",
    )(x)
    x = _affine_free_bn(f"bn{last}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = L2Normalize(name="l2_normalize")(x)
    return keras.Model(inputs, outputs, name=name)


def _affine_free_bn(name: str) -> keras.layers.BatchNormalization:
    """BatchNormalization without scale/offset, as every BN of L2-Net/HardNet."""
    return keras.layers.BatchNormalization(center=False, scale=False, name=name)


def _shared_trainer(descriptor_model: keras.Model, roles: tuple[str, ...], name: str) -> keras.Model:
    """Apply one descriptor model (shared weights) to each role's input and stack the outputs."""
    if not isinstance(descriptor_model, keras.Model):
        raise ValueError(f"descriptor_model must be a keras.Model, got {type(descriptor_model)}")
    shape = tuple(descriptor_model.input_shape[1:])
    inputs = [keras.Input(shape=shape, dtype="float32", name=role) for role in roles]
    outputs = StackDescriptors(name="stack")([descriptor_model(t) for t in inputs])
    return keras.Model(inputs, outputs, name=name)


def build_triplet_trainer(descriptor_model: keras.Model) -> keras.Model:
    """Training wrapper for triplet_loss: shared descriptor on anchor, positive, negative.

    Shape: 3 x (B, P, P, 1) -> (B, 3, D).
    """
    return _shared_trainer(descriptor_model, ("anchor", "positive", "negative"), "triplet_trainer")


def build_pair_trainer(descriptor_model: keras.Model) -> keras.Model:
    """Training wrapper for hardest_negative_loss: shared descriptor on anchor and positive.

    Shape: 2 x (B, P, P, 1) -> (B, 2, D).
    """
    return _shared_trainer(descriptor_model, ("anchor", "positive"), "pair_trainer")


@keras.saving.register_keras_serializable(package="nhpatches")
class ClipPixels(keras.layers.Layer):
    """Clip to the 0..255 pixel range, as the study does to a denoiser's output before describing it.

    (The test-time pipeline also truncates to uint8; that step has no gradient and is left out here.)
    """

    def call(self, inputs):
        """The inputs clipped to 0..255. Shape: any -> same."""
        return ops.clip(inputs, 0.0, 255.0)

    def compute_output_shape(self, input_shape):
        """The input shape (clipping keeps it)."""
        return input_shape


def build_joint_trainer(denoiser_model: keras.Model, descriptor_model: keras.Model) -> keras.Model:
    """Extension: denoiser and descriptor trained end to end on noisy anchor-positive pairs.

    Each noisy patch goes through the denoiser, is clipped to 0..255 and described; the outputs are
    ``descriptors`` (B, 2, D) for the hardest-negative loss and ``denoised`` (B, 2, P, P, 1), the
    unclipped denoiser outputs, for the λ·MAE term against the clean patches. Both models are shared
    (their weights are the ones trained).
    Shape: 2 x (B, P, P, 1) noisy 0..255 -> {"descriptors": (B, 2, D), "denoised": (B, 2, P, P, 1)}
    """
    for model, what in ((denoiser_model, "denoiser_model"), (descriptor_model, "descriptor_model")):
        if not isinstance(model, keras.Model):
            raise ValueError(f"{what} must be a keras.Model, got {type(model)}")
    shape = tuple(descriptor_model.input_shape[1:])
    if tuple(denoiser_model.input_shape[1:]) != shape:
        raise ValueError(
            f"the denoiser's input {denoiser_model.input_shape} and the descriptor's input "
            f"{descriptor_model.input_shape} must have the same patch shape"
        )
    inputs = [keras.Input(shape=shape, dtype="float32", name=role) for role in ("anchor", "positive")]
    denoised = [denoiser_model(t) for t in inputs]
    clip = ClipPixels(name="clip")
    described = StackDescriptors(name="descriptors")([descriptor_model(clip(d)) for d in denoised])
    stacked = StackDescriptors(name="denoised")(denoised)
    return keras.Model(inputs, {"descriptors": described, "denoised": stacked}, name="joint_trainer")
