"""The networks as tables: one row per layer (what the report's schematics show), or one per network.

Works on any built Keras model; Keras is imported only when a table is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # annotations only: the module itself loads no Keras backend
    import keras


def _pair(value: object) -> str:
    """'3x3' for (3, 3), '2' for 2, '' for None."""
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value)
    return str(value)


def _initializer_name(initializer: object) -> str:
    """Class name of a Keras initializer, with the gain of an orthogonal one."""
    if initializer is None:
        return ""
    name = type(initializer).__name__
    gain = getattr(initializer, "gain", None)
    return f"{name}(gain={gain:g})" if gain is not None else name


def _output_shape(layer: keras.layers.Layer) -> str:
    """The layer's output shape without the batch axis, e.g. '(32, 32, 16)'."""
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return ""
    return str(tuple(shape[1:]))


def _layer_details(layer: keras.layers.Layer) -> str:
    """What else defines a layer: pool or upsampling size, dropout rate, BN settings, scale."""
    import keras  # imported here: the rest of this module does not need a backend

    if isinstance(layer, keras.layers.Dropout):
        return f"rate {layer.rate:g}"
    if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        return f"pool {_pair(layer.pool_size)}"
    if isinstance(layer, keras.layers.UpSampling2D):
        return f"size {_pair(layer.size)}"
    if isinstance(layer, keras.layers.BatchNormalization):
        affine = "affine" if (layer.center or layer.scale) else "affine-free"
        return f"{affine}, momentum {layer.momentum:g}"
    if isinstance(layer, keras.layers.Rescaling):
        return f"x {float(layer.scale):.4g}"
    if isinstance(layer, keras.layers.Conv2D):
        return f"padding {layer.padding}"
    return ""


def layer_table(model: keras.Model) -> pd.DataFrame:
    """One row per layer of a Keras model: what the report's schematics (R Fig. 1, 3, 4) show.

    Columns: name, type, output shape (no batch axis), filters, kernel, strides, activation,
    initializer, bias, parameters and details (pool size, dropout rate, BN settings, padding).
    Empty strings where a column does not apply to a layer.
    """
    import keras

    rows = []
    for layer in model.layers:
        activation = getattr(layer, "activation", None)
        if isinstance(layer, keras.layers.ReLU):
            activation_name = "relu"
        elif activation is not None:
            activation_name = getattr(activation, "__name__", str(activation))
        else:
            activation_name = ""
        rows.append(
            {
                "name": layer.name,
                "type": type(layer).__name__,
                "output shape": _output_shape(layer),
                "filters": getattr(layer, "filters", "") or "",
                "kernel": _pair(getattr(layer, "kernel_size", None)),
                "strides": _pair(getattr(layer, "strides", None)),
                "activation": activation_name,
                "initializer": _initializer_name(getattr(layer, "kernel_initializer", None)),
                "bias": "" if not hasattr(layer, "use_bias") else bool(layer.use_bias),
                "parameters": int(layer.count_params()) if layer.built else 0,
                "details": _layer_details(layer),
            }
        )
    return pd.DataFrame(rows)


def architecture_summary(networks: Mapping[str, keras.Model]) -> pd.DataFrame:
    """A compact side-by-side of several networks: one row each.

    Columns: network, conv layers, filters (in order), strides (in order), initializer(s),
    dropout layers (with rates), batch normalisation layers, parameters.
    """
    rows = []
    for label, model in networks.items():
        table = layer_table(model)
        conv = table[table["type"] == "Conv2D"]
        dropout = table[table["type"] == "Dropout"]
        rows.append(
            {
                "network": label,
                "conv layers": len(conv),
                "filters": ", ".join(str(f) for f in conv["filters"]),
                "strides": ", ".join(s.split("x")[0] for s in conv["strides"]),
                "initializer": ", ".join(dict.fromkeys(conv["initializer"])),
                "dropout layers": f"{len(dropout)} ({', '.join(dict.fromkeys(dropout['details']))})"
                if len(dropout)
                else "0",
                "batch norm layers": int((table["type"] == "BatchNormalization").sum()),
                "parameters": int(model.count_params()),
            }
        )
    return pd.DataFrame(rows)
