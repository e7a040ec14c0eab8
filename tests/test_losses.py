"""Tests of nhpatches.losses on hand-made descriptors with known answers."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from nhpatches import losses

ATOL = 1e-4  # the eps under the square roots moves distances by ~1e-6 / d


def _np(x) -> np.ndarray:
    """A backend tensor as a numpy array."""
    return np.asarray(keras.ops.convert_to_numpy(x))


def _stack(*parts: list[list[float]]) -> np.ndarray:
    """Stack (B, D) lists into a (B, k, D) float32 array."""
    return np.stack([np.asarray(p, dtype="float32") for p in parts], axis=1)


def _zeros(y_pred: np.ndarray) -> np.ndarray:
    """Dummy y_true."""
    return np.zeros((y_pred.shape[0],), dtype="float32")


# Hand-made batch for the hard loss: D_ij = |a_i - p_j|.
#   row mins (negatives p_j):    1.1 (p1), 0.9 (p0), sqrt(1.01) = 1.004988 (p0)
#   column mins (negatives a_j): 0.9 (a1), 1.1 (a0), 1.2 (a0)
#   positives: 0.1, 0.1, 0.2
HARD_ANCHORS = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
HARD_POSITIVES = [[0.1, 0.0], [1.1, 0.0], [0.0, 1.2]]
SQRT_101 = float(np.sqrt(1.01))


def test_triplet_loss_value_by_hand() -> None:
    """Eq. 2 on two triplets: d_pos 0.5, d_neg 1.0 -> 0.5; d_pos 0.2, d_neg 2.0 -> 0; mean 0.25."""
    y_pred = _stack([[0, 0], [0, 0]], [[0.3, 0.4], [0.2, 0.0]], [[0.6, 0.8], [0.0, 2.0]])
    loss = losses.triplet_loss(margin=1.0)
    np.testing.assert_allclose(_np(loss.call(None, y_pred)), [0.5, 0.0], atol=ATOL)
    np.testing.assert_allclose(float(_np(loss(_zeros(y_pred), y_pred))), 0.25, atol=ATOL)


def test_triplet_loss_margin_changes_value() -> None:
    """With margin 2 the same triplets give 1.5 and 0.2."""
    y_pred = _stack([[0, 0], [0, 0]], [[0.3, 0.4], [0.2, 0.0]], [[0.6, 0.8], [0.0, 2.0]])
    per_sample = _np(losses.triplet_loss(margin=2.0).call(None, y_pred))
    np.testing.assert_allclose(per_sample, [1.5, 0.2], atol=ATOL)


def test_triplet_loss_zero_past_margin() -> None:
    """A negative farther than d_pos + margin contributes exactly zero."""
    y_pred = _stack([[0, 0, 0]], [[0.1, 0, 0]], [[0, 0, 1.2]])
    assert float(_np(losses.triplet_loss(1.0)(_zeros(y_pred), y_pred))) == 0.0


def test_triplet_loss_ignores_y_true() -> None:
    """y_true does not change the value."""
    y_pred = _stack([[0, 0]], [[0.3, 0.4]], [[0.6, 0.8]])
    loss = losses.triplet_loss()
    a = float(_np(loss(np.zeros((1,), "float32"), y_pred)))
    b = float(_np(loss(np.full((1,), 7.0, "float32"), y_pred)))
    assert a == b


def test_triplet_distances_and_shape_check() -> None:
    """triplet_distances returns (d_pos, d_neg); a (B, 2, D) input is rejected."""
    d_pos, d_neg = losses.triplet_distances(_stack([[0, 0]], [[3, 4]], [[0, 1]]))
    np.testing.assert_allclose(_np(d_pos), [5.0], atol=ATOL)
    np.testing.assert_allclose(_np(d_neg), [1.0], atol=ATOL)
    with pytest.raises(ValueError, match=r"\(B, 3, D\)"):
        losses.triplet_loss()(np.zeros(1), _stack([[0, 0]], [[1, 1]]))


def test_distance_matrix_matches_brute_force() -> None:
    """The Gram-form matrix equals pairwise norms; identical rows give sqrt(eps), not NaN."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 8)).astype("float32"), rng.normal(size=(4, 8)).astype("float32")
    b[0] = a[2]
    expected = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    got = _np(losses.descriptor_distance_matrix(a, b))
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got, expected, atol=2e-3)
    assert np.isfinite(got).all() and got[2, 0] < 2e-3


def test_distance_matrix_rejects_bad_rank() -> None:
    """A (B, 2, D) stack is not a matrix."""
    with pytest.raises(ValueError, match="matrices"):
        losses.descriptor_distance_matrix(np.zeros((2, 2, 3)), np.zeros((2, 3)))


@pytest.mark.parametrize(
    ("anchor_swap", "hardest"),
    [(False, [1.1, 0.9, SQRT_101]), (True, [0.9, 0.9, SQRT_101])],
)
def test_hardest_negative_picks_known_points(anchor_swap: bool, hardest: list[float]) -> None:
    """Row min over p_j (j != i), and with anchor swap also column min over a_j."""
    d_pos, d_neg = losses.hardest_negative_distances(
        np.asarray(HARD_ANCHORS, "float32"), np.asarray(HARD_POSITIVES, "float32"), anchor_swap
    )
    np.testing.assert_allclose(_np(d_pos), [0.1, 0.1, 0.2], atol=ATOL)
    np.testing.assert_allclose(_np(d_neg), hardest, atol=ATOL)


@pytest.mark.parametrize(
    ("anchor_swap", "per_row"),
    [(False, [0.0, 0.2, 1.2 - SQRT_101]), (True, [0.2, 0.2, 1.2 - SQRT_101])],
)
def test_hard_triplet_loss_values(anchor_swap: bool, per_row: list[float]) -> None:
    """Anchor swap changes row 0 from max(0, 1 + 0.1 - 1.1) = 0 to 1 + 0.1 - 0.9 = 0.2."""
    y_pred = _stack(HARD_ANCHORS, HARD_POSITIVES)
    loss = losses.hard_triplet_loss(margin=1.0, anchor_swap=anchor_swap)
    np.testing.assert_allclose(_np(loss.call(None, y_pred)), per_row, atol=ATOL)
    np.testing.assert_allclose(float(_np(loss(_zeros(y_pred), y_pred))), np.mean(per_row), atol=ATOL)


def test_hard_triplet_masks_near_duplicates() -> None:
    """p1 == a0 (distance < 0.008) is not row 0's negative; without the mask it would be."""
    anchors = np.asarray([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], "float32")
    positives = np.asarray([[0.1, 0.0], [0.0, 0.0], [0.0, 1.2]], "float32")
    _, masked = losses.hardest_negative_distances(anchors, positives, anchor_swap=False)
    _, unmasked = losses.hardest_negative_distances(
        anchors, positives, anchor_swap=False, duplicate_threshold=0.0
    )
    assert abs(float(_np(masked)[0]) - 1.2) < ATOL  # next nearest: p2 at 1.2
    assert float(_np(unmasked)[0]) < 2e-3  # the duplicate itself, sqrt(eps)


def test_hard_triplet_loss_matches_numpy_reference() -> None:
    """Random unit descriptors: equals a loop-based HardNet loss with anchor swap."""
    rng = np.random.default_rng(1)
    a, p = rng.normal(size=(2, 6, 16)).astype("float32")
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    dist = np.linalg.norm(a[:, None] - p[None], axis=-1)
    off = ~np.eye(6, dtype=bool)
    rows = [min(dist[i, j] for j in range(6) if off[i, j]) for i in range(6)]
    cols = [min(dist[j, i] for j in range(6) if off[i, j]) for i in range(6)]
    expected = np.mean(np.maximum(0.0, 1.0 + np.diag(dist) - np.minimum(rows, cols)))
    got = float(_np(losses.hard_triplet_loss()(np.zeros(6), _stack(a, p))))
    np.testing.assert_allclose(got, expected, atol=ATOL)


def test_hard_triplet_loss_shape_check() -> None:
    """A (B, 3, D) triplet stack is rejected by the pair loss."""
    with pytest.raises(ValueError, match=r"\(B, 2, D\)"):
        losses.hard_triplet_loss()(np.zeros(1), _stack([[0, 0]], [[1, 1]], [[2, 2]]))


def test_negative_margin_rejected() -> None:
    """Margins must be >= 0."""
    with pytest.raises(ValueError, match="margin"):
        losses.triplet_loss(-1.0)
    with pytest.raises(ValueError, match="margin"):
        losses.hard_triplet_loss(-0.5)


def test_loss_config_roundtrip() -> None:
    """Registered losses serialize and deserialize with their settings."""
    loss = losses.hard_triplet_loss(margin=0.5, anchor_swap=False)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, losses.HardTripletLoss)
    assert (again.margin, again.anchor_swap) == (0.5, False)
    again = keras.losses.deserialize(keras.losses.serialize(losses.triplet_loss(0.7)))
    assert isinstance(again, losses.TripletLoss) and again.margin == 0.7


def test_denoiser_losses_match_keras() -> None:
    """The MAE/MSE wrappers give Keras' built-in values, per patch."""
    rng = np.random.default_rng(2)
    y_true, y_pred = rng.uniform(0, 255, size=(2, 3, 4, 4, 1)).astype("float32")
    mae = _np(losses.mean_absolute_error(y_true, y_pred))
    mse = _np(losses.mean_squared_error(y_true, y_pred))
    assert mae.shape == (3,) and mse.shape == (3,)
    np.testing.assert_allclose(mae, np.abs(y_true - y_pred).mean(axis=(1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(mae.mean(), float(_np(keras.losses.MeanAbsoluteError()(y_true, y_pred))), rtol=1e-5)
    np.testing.assert_allclose(mse.mean(), float(_np(keras.losses.MeanSquaredError()(y_true, y_pred))), rtol=1e-5)


def test_distance_eps_value_on_exact_duplicates() -> None:
    """Exactly equal rows are sqrt(DISTANCE_EPS) apart, the floor that keeps gradients finite."""
    got = _np(losses.descriptor_distance_matrix([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0]]))
    np.testing.assert_allclose(got[:, 0], [np.sqrt(losses.DISTANCE_EPS), np.sqrt(2.0)], rtol=1e-5)


@pytest.mark.parametrize(
    ("loss", "count"), [(losses.triplet_loss(margin=100.0), 3), (losses.hard_triplet_loss(margin=100.0), 2)]
)
def test_gradients_finite_when_positive_equals_anchor(loss: keras.losses.Loss, count: int) -> None:
    """A fit step through a zero anchor-positive distance (hinge active) leaves finite, changed weights."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(count, 4))
    outputs = keras.layers.Dense(3, name="embed")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    x = np.random.default_rng(3).normal(size=(4, count, 4)).astype("float32")
    x[:, 1] = x[:, 0]
    before = _np(model.get_layer("embed").kernel).copy()
    model.fit(x, np.zeros(4, "float32"), epochs=1, batch_size=4, verbose=0)
    after = _np(model.get_layer("embed").kernel)
    assert np.isfinite(after).all() and not np.array_equal(before, after)
