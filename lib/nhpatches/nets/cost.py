"""What a network costs: multiply-accumulates per patch, from its layers' shapes.

Convention (the usual one of papers and profilers):

* a convolution costs ``output positions x kernel size`` MACs per patch: a Conv2D with a
  kh x kw x C_in x C_out kernel (C_in per group) and an H x W output costs H·W·kh·kw·C_in·C_out;
  a transposed convolution costs the same with its *input* positions; a Dense layer costs
  ``in x out`` per position;
* everything else (BatchNormalization, activations, pooling, up-sampling, per-patch
  standardisation, L2 normalisation, biases, the loss) is left out: elementwise work, a few % here;
* FLOPs = 2 x MACs (a multiply and an add); a training step costs about 3 x the forward FLOPs
  (the backward pass computes the gradients with respect to the activations and to the weights,
  each about one forward pass).

``benchmarks/bench_training.py`` divides these by the measured step time to get the achieved
GFLOP/s and compares it with a float32 matrix product timed in the same run.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

#: Training step FLOPs / forward FLOPs: forward + backward (activation and weight gradients).
TRAINING_STEP_FACTOR = 3


def layer_macs(model: keras.Model) -> dict[str, int]:
    """MACs per sample of every convolution and Dense layer, nested models included (each layer once).

    Shape: the model's input (B, ...) -> {layer path: MACs for one sample}.
    """
    import keras

    convs = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.DepthwiseConv2D)
    transposed = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
    out: dict[str, int] = {}
    for layer in _layers(model):
        if isinstance(layer, transposed):
            positions = math.prod(layer.input.shape[1:-1])
        elif isinstance(layer, (*convs, keras.layers.Dense)):
            positions = math.prod(layer.output.shape[1:-1])
        else:
            continue
        kernel = layer.kernel if hasattr(layer, "kernel") else layer.depthwise_kernel
        out[layer.path] = int(positions * math.prod(kernel.shape))
    return out


def _layers(model: keras.Model):
    """Every layer once, descending into nested models."""
    import keras

    seen: set[int] = set()
    stack = list(reversed(model.layers))
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        if isinstance(layer, keras.Model):
            stack.extend(reversed(layer.layers))


def forward_flops(model: keras.Model) -> int:
    """FLOPs (2 x MACs) of one sample's forward pass through ``model``."""
    return 2 * sum(layer_macs(model).values())


def training_step_flops(model: keras.Model, samples_per_step: int) -> int:
    """FLOPs of one training step that runs ``samples_per_step`` samples (patches) through ``model``."""
    return TRAINING_STEP_FACTOR * samples_per_step * forward_flops(model)
