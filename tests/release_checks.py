"""Checks of a release manifest (or checkpoint state) shared by test_describe (the shipped descriptor) and
test_recipe (a smoke run of the recipe). They read only the JSON keys ``validation_curve`` (one row per
epoch with ``epoch`` and ``val_score``), ``best_epoch`` and ``training_data.train_sequences`` /
``training_data.validation_sequences``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def photo_of(sequence: str) -> str:
    """The photo (scene) of a sequence name: 'v_coins' and 'i_coins' -> 'coins'."""
    prefix, _, photo = sequence.partition("_")
    assert prefix in ("i", "v") and photo, f"not an HPatches sequence name: {sequence!r}"
    return photo


def assert_exported_epoch_is_the_best(manifest: Mapping) -> None:
    """best_epoch is the epoch of the highest validation score (the first one on a tie)."""
    curve = manifest["validation_curve"]
    epochs = [row["epoch"] for row in curve]
    assert epochs == list(range(1, len(curve) + 1)), epochs
    scores = np.array([row["val_score"] for row in curve], dtype=float)
    assert np.isfinite(scores).all(), scores
    assert manifest["best_epoch"] == epochs[int(np.argmax(scores))], (manifest["best_epoch"], scores.round(4))


def assert_train_and_validation_photos_are_disjoint(manifest: Mapping) -> None:
    """No photo gives both a training and a validation sequence (i_ and v_ of one photo share its content)."""
    training = manifest["training_data"]
    train = {photo_of(name) for name in training["train_sequences"]}
    validation = {photo_of(name) for name in training["validation_sequences"]}
    assert train and validation, training
    assert not train & validation, sorted(train & validation)
