"""nhpatches.nets.cost: MACs and FLOPs from layer shapes, worked out by hand."""

from __future__ import annotations

import keras

from nhpatches.nets import cost, models

#: The report's L2-Net on 32 px: (output side, kernel side, C_in, C_out) of its 7 convs.
L2NET_CONVS = [(32, 3, 1, 32), (32, 3, 32, 32), (16, 3, 32, 64), (16, 3, 64, 64), (8, 3, 64, 128), (8, 3, 128, 128)]


def test_l2net_macs_by_hand() -> None:
    """Each 3x3 conv: side² · 9 · C_in · C_out; the 8x8 valid conv: 8·8·128·128 at one position."""
    expected = [side * side * k * k * cin * cout for side, k, cin, cout in L2NET_CONVS] + [8 * 8 * 128 * 128]
    for model in (models.build_l2net("baseline"), models.build_hardnet()):
        macs = cost.layer_macs(model)
        assert list(macs.values()) == expected
        assert sum(expected) == 39_092_224
        assert cost.forward_flops(model) == 2 * 39_092_224


def test_trainer_counts_the_shared_network_once_and_steps_are_three_forwards() -> None:
    """A pair trainer holds the descriptor once; a step of 2·B patches costs 3 · 2B · forward FLOPs."""
    descriptor = models.build_hardnet()
    trainer = models.build_pair_trainer(descriptor)
    assert cost.forward_flops(trainer) == cost.forward_flops(descriptor)
    assert cost.training_step_flops(descriptor, 1024) == 3 * 1024 * 2 * 39_092_224


def test_dense_and_transposed_convolutions() -> None:
    """Dense: in·out per position; a transposed conv counts its input positions; other layers count nothing."""
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2DTranspose(5, 2, strides=2, name="up")(inputs)  # 4x4 input positions
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten(name="flat")(x)
    outputs = keras.layers.Dense(7, name="dense")(x)
    macs = cost.layer_macs(keras.Model(inputs, outputs))
    assert macs == {"up": 4 * 4 * 2 * 2 * 5 * 3, "dense": 8 * 8 * 5 * 7}
