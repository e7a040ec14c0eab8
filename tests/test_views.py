"""Views the notebooks show: layer tables of the networks and training triplets as a picture."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from nhpatches.nets import models
from nhpatches.study import report
from nhpatches.train.batches import PatchBank, TripletBatches

COLUMNS = [
    "name",
    "type",
    "output shape",
    "filters",
    "kernel",
    "strides",
    "activation",
    "initializer",
    "bias",
    "parameters",
    "details",
]


def test_layer_table_of_the_unet_matches_the_report() -> None:
    """R §2.1: 16, 32, 64 (2x2), 64, 1 filters, stride 1, he_normal; one pooling; parameters add up."""
    model = models.build_unet()
    table = report.layer_table(model)
    assert list(table.columns) == COLUMNS
    assert len(table) == len(model.layers)
    conv = table[table.type == "Conv2D"].set_index("name")
    assert list(conv.filters) == [16, 32, 64, 64, 1]
    assert list(conv.kernel) == ["3x3", "3x3", "2x2", "3x3", "3x3"]
    assert set(conv.strides) == {"1x1"}
    assert list(conv.initializer[:4]) == ["HeNormal"] * 4
    assert list(conv.activation) == ["relu"] * 4 + ["linear"]
    assert conv.loc["conv1", "output shape"] == "(32, 32, 16)"
    assert (table.type == "MaxPooling2D").sum() == 1
    assert table.parameters.sum() == model.count_params()


def test_layer_table_of_descriptors_shows_init_dropout_and_bn() -> None:
    """The updated baseline: orthogonal init and a dropout after every activation; HardNet: affine-free BN."""
    updated = report.layer_table(models.build_l2net("updated"))
    conv = updated[updated.type == "Conv2D"]
    assert set(conv.initializer) == {"Orthogonal(gain=1)"}
    assert list(conv.strides) == ["1x1", "1x1", "2x2", "1x1", "2x2", "1x1", "1x1"]
    assert conv.iloc[-1].kernel == "8x8" and conv.iloc[-1]["output shape"] == "(1, 1, 128)"
    assert set(updated[updated.type == "Dropout"].details) == {"rate 0.3"}
    assert (updated.type == "Dropout").sum() == 6
    assert set(updated[updated.type == "ReLU"].activation) == {"relu"}
    hardnet = report.layer_table(models.build_hardnet())
    assert set(hardnet[hardnet.type == "BatchNormalization"].details) == {"affine-free, momentum 0.99"}
    assert set(hardnet[hardnet.type == "Conv2D"].bias) == {False}
    assert hardnet.parameters.sum() == models.build_hardnet().count_params()


def test_layer_table_of_a_loaded_model(tmp_path) -> None:
    """A saved and reloaded model (as Study gives them) still has shapes and initialisers."""
    model = models.build_dncnn(depth=3)
    model.save(tmp_path / "m.keras")
    import keras

    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    table = report.layer_table(loaded)
    assert table.equals(report.layer_table(model))
    assert "Subtract" in set(table.type)


def test_architecture_summary_compares_the_variants() -> None:
    """One row per network: conv count, filters, init, dropout, BN, parameters."""
    summary = report.architecture_summary({v: models.build_l2net(v) for v in models.L2NET_VARIANTS})
    rows = summary.set_index("network")
    assert list(rows["conv layers"]) == [7, 7, 9]
    assert rows.loc["deep", "filters"] == "32, 32, 32, 64, 64, 64, 128, 128, 128"
    assert rows.loc["deep", "strides"] == "1, 1, 1, 2, 1, 1, 2, 1, 1"
    assert rows.loc["updated", "dropout layers"] == "6 (rate 0.3)"
    assert rows.loc["baseline", "dropout layers"] == "1 (rate 0.3)"
    assert rows.loc["baseline", "initializer"] == "HeNormal"
    assert list(rows["batch norm layers"]) == [6, 6, 8]


def tiny_bank(points: int = 8) -> PatchBank:
    """A bank whose patch values encode (point, image): point * 16 + image."""
    values = (np.arange(points)[:, None] * 16 + np.arange(16)[None, :]).astype(np.uint8)
    clean = np.broadcast_to(values[:, :, None, None], (points, 16, 32, 32)).copy()
    return PatchBank(clean, None, np.zeros(points, np.int32), ("i_x",))


def test_plot_triplet_from_a_batch() -> None:
    """Three rows (anchor, positive, negative), one column per triplet, patches drawn as given."""
    (anchor, positive, negative), _ = TripletBatches(tiny_bank(), batch_size=4, steps=1, seed=0)[0]
    fig = report.plot_triplet(anchor, positive, negative, columns=6)
    axes = np.array(fig.axes).reshape(3, 4)  # 4 triplets in the batch < 6 columns
    assert [axes[r, 0].get_ylabel() for r in range(3)] == ["anchor", "positive", "negative"]
    shown = np.asarray(axes[1, 2].images[0].get_array())
    assert shown.shape == (32, 32) and shown.dtype == np.uint8
    np.testing.assert_array_equal(shown, positive[2, ..., 0].astype(np.uint8))
    # anchor and positive: same point (value // 16), different images; negative another point
    a, p, n = (int(x[0, 0, 0, 0]) for x in (anchor, positive, negative))
    assert a // 16 == p // 16 and a != p and n // 16 != a // 16
    plt.close(fig)


def test_plot_triplet_accepts_uint8_and_limits_columns() -> None:
    """(B, P, P) uint8 input; columns caps the triplets shown; float values are clipped."""
    patches = np.full((10, 32, 32), 7, np.uint8)
    fig = report.plot_triplet(patches, patches, patches, columns=3)
    assert len(fig.axes) == 9
    plt.close(fig)
    floats = np.full((2, 32, 32, 1), 300.0, np.float32)
    fig = report.plot_triplet(floats, floats, floats)
    assert np.asarray(fig.axes[0].images[0].get_array()).max() == 255
    plt.close(fig)


def test_plot_triplet_rejects_bad_shapes() -> None:
    """Mismatched or wrongly shaped inputs raise ValueError."""
    a = np.zeros((4, 32, 32), np.uint8)
    with pytest.raises(ValueError, match="same shape"):
        report.plot_triplet(a, a, np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        report.plot_triplet(np.zeros((4, 32), np.uint8), a, a)


def test_mark_epoch_and_continued_history() -> None:
    """A kept-epoch line on a loss figure; fine-tuning epochs continue after the first run."""
    first = pd.DataFrame({"epoch": [1, 2, 3], "loss": [3.0, 2.0, 1.0], "val_loss": [3.0, 2.0, 1.5]})
    second = pd.DataFrame({"epoch": [1, 2], "loss": [0.9, 0.8], "val_loss": [1.4, 1.3]})
    shifted = report.continued_history(first, second)
    assert list(shifted.epoch) == [4, 5] and list(second.epoch) == [1, 2]
    fig = report.plot_loss_curves({"a": first, "b": shifted})
    report.mark_epoch(fig, 2, "kept epoch 2")
    line = fig.axes[0].lines[-1]
    assert list(line.get_xdata()) == [2, 2]
    assert "kept epoch 2" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)


def test_with_report_note() -> None:
    """Rows of the report's Table 2 are marked; others get the note."""
    table = pd.DataFrame({"denoiser": ["unet", "dncnn_mse"], "descriptor": ["baseline", "baseline"]})
    noted = report.with_report_note(table.assign(mean=[0.5, 0.4]))
    assert list(noted.columns) == ["denoiser", "descriptor", "in report", "mean"]
    assert list(noted["in report"]) == ["report Table 2", "not in the report"]
    assert "in report" not in table.columns


def test_settings_table_flattens_a_record(tmp_path, monkeypatch) -> None:
    """Nested mappings become dotted rows, long ones one compact cell, lists joined, paths made relative."""
    from nhpatches.study import views

    monkeypatch.setenv("NHPATCHES_ROOT", str(tmp_path))
    record = {
        "source": "generated",
        "requested": {"pairs": 100, "queries": 3},
        "per_sequence": {f"s{i}": i for i in range(views.COMPACT_ITEMS + 1)},
        "sigmas": [0.0, 25.0],
        "path": str(tmp_path / "data" / "tasks"),
        "symmetries": True,
    }
    table = views.settings_table(record, "recipe")
    assert list(table.columns) == ["recipe", "value"]
    values = dict(zip(table.recipe, table.value, strict=False))
    assert list(values) == [
        "source",
        "requested.pairs",
        "requested.queries",
        "per_sequence",
        "sigmas",
        "path",
        "symmetries",
    ]
    assert values["requested.pairs"] == 100 and values["symmetries"] is True
    assert values["per_sequence"].startswith("s0 0, s1 1, ") and values["per_sequence"].endswith(
        f"s{views.COMPACT_ITEMS} {views.COMPACT_ITEMS}"
    )
    assert values["sigmas"] == "0.0, 25.0"
    assert values["path"] == str(Path("data") / "tasks")


def test_fine_tuning_says_which_denoiser_was_trained() -> None:
    """A run whose metrics carry joint_weight trained its denoiser with that λ; one without kept it frozen."""
    from types import SimpleNamespace

    from nhpatches.study import views

    runs = {
        "hardnet_two_stage": SimpleNamespace(metrics={"epochs": 2}),
        "hardnet_joint": SimpleNamespace(metrics={"epochs": 3, "joint_weight": 0.01}),
    }
    table = views.fine_tuning(runs).set_index("descriptor")
    assert list(table.denoiser) == ["frozen", "trained jointly"]
    assert np.isnan(table.loc["hardnet_two_stage", "λ (MAE weight)"])
    assert table.loc["hardnet_joint", "λ (MAE weight)"] == 0.01 and list(table.epochs) == [2, 3]
