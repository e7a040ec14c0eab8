"""Tests of nhpatches.losses on hand-made descriptors with known answers: the report's Eq. 2
(TripletLoss) and Eq. 4 (HardTripletLoss, in-triplet anchor swap), and HardNet's in-batch
hardest-negative loss (HardestNegativeLoss, the extension)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from nhpatches.nets import losses

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


# Two triplets in D = 2 (a, p, n per row):
#   row 0: a (0, 0), p (0.3, 0.4), n (0.6, 0.8): |a-p|^2 = 0.25, |a-n|^2 = 1.0, |p-n|^2 = 0.25
#   row 1: a (0, 0), p (0.2, 0),   n (0, 2):     |a-p|^2 = 0.04, |a-n|^2 = 4.0, |p-n|^2 = 4.04
# "mean_squared" divides the squared distances by D = 2; "euclidean" takes their square roots.
TRIPLETS = _stack([[0, 0], [0, 0]], [[0.3, 0.4], [0.2, 0.0]], [[0.6, 0.8], [0.0, 2.0]])

# Three triplets in D = 4 for Eq. 4 against Eq. 2 (margin 1):
#   row 0: a (0,0,0,0), p (1,0,0,0), n (2,0,0,0): squared d_ap 1, d_an 4, d_pn 1 (p between a and n)
#   row 1: a (0,0,0,0), p (1,0,0,0), n (0,1,0,0): squared d_ap 1, d_an 1, d_pn 2 (anchor is closer)
#   row 2: a (0,1,2,3), p (1,1,2,2), n (1,2,2,2): squared d_ap 2, d_an 3, d_pn 1
SWAP_TRIPLETS = _stack(
    [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 2, 3]],
    [[1, 0, 0, 0], [1, 0, 0, 0], [1, 1, 2, 2]],
    [[2, 0, 0, 0], [0, 1, 0, 0], [1, 2, 2, 2]],
)


@pytest.mark.parametrize(
    ("distance", "per_row"),
    [
        ("mean_squared", [1 + 0.25 / 2 - 1.0 / 2, 0.0]),  # 0.625; 1 + 0.02 - 2 < 0
        ("squared", [1 + 0.25 - 1.0, 0.0]),  # 0.25; 1 + 0.04 - 4 < 0
        ("euclidean", [1 + 0.5 - 1.0, 0.0]),  # 0.5; 1 + 0.2 - 2 < 0
    ],
)
def test_triplet_loss_eq2_by_hand(distance: str, per_row: list[float]) -> None:
    """Eq. 2, relu(d(a, p) - d(a, n) + 1), per triplet and as the batch mean."""
    loss = losses.TripletLoss(margin=1.0, distance=distance)
    np.testing.assert_allclose(_np(loss.call(None, TRIPLETS)), per_row, atol=ATOL)
    np.testing.assert_allclose(float(_np(loss(_zeros(TRIPLETS), TRIPLETS))), np.mean(per_row), atol=ATOL)


def test_triplet_loss_defaults_to_the_coursework() -> None:
    """triplet_loss() is margin 1 with mean((a - p)^2) over D: 0.625 and 0 on TRIPLETS."""
    loss = losses.triplet_loss()
    assert isinstance(loss, losses.TripletLoss)
    assert (loss.margin, loss.distance) == (1.0, "mean_squared")
    np.testing.assert_allclose(_np(loss.call(None, TRIPLETS)), [0.625, 0.0], atol=1e-6)


def test_triplet_loss_margin_changes_value() -> None:
    """With margin 2 (mean_squared) the same triplets give 2 + 0.125 - 0.5 and 2 + 0.02 - 2."""
    per_sample = _np(losses.triplet_loss(margin=2.0).call(None, TRIPLETS))
    np.testing.assert_allclose(per_sample, [1.625, 0.02], atol=1e-6)


def test_triplet_loss_zero_past_margin() -> None:
    """A negative farther than d_pos + margin contributes exactly zero (0.01/3 - 4/3 + 1 < 0)."""
    y_pred = _stack([[0, 0, 0]], [[0.1, 0, 0]], [[0, 0, 2.0]])
    for distance in ("mean_squared", "squared"):
        assert float(_np(losses.triplet_loss(1.0, distance)(_zeros(y_pred), y_pred))) == 0.0
    # ... and the same triplet with a closer negative is not zero: 0.01/3 - 0.36/3 + 1.
    closer = _stack([[0, 0, 0]], [[0.1, 0, 0]], [[0, 0, 0.6]])
    np.testing.assert_allclose(
        float(_np(losses.triplet_loss()(_zeros(closer), closer))), 1 + (0.01 - 0.36) / 3, atol=1e-6
    )


def test_triplet_loss_ignores_y_true() -> None:
    """y_true does not change the value."""
    loss = losses.triplet_loss()
    a = float(_np(loss(np.zeros((2,), "float32"), TRIPLETS)))
    b = float(_np(loss(np.full((2,), 7.0, "float32"), TRIPLETS)))
    assert a == b and a > 0


@pytest.mark.parametrize(
    ("distance", "expected"),
    [
        ("euclidean", ([5.0], [1.0], [np.sqrt(18.0)])),
        ("squared", ([25.0], [1.0], [18.0])),
        ("mean_squared", ([12.5], [0.5], [9.0])),
    ],
)
def test_triplet_distances_by_hand(distance: str, expected: tuple) -> None:
    """(d(a, p), d(a, n), d(p, n)) for a (0, 0), p (3, 4), n (0, 1)."""
    got = losses.triplet_distances(_stack([[0, 0]], [[3, 4]], [[0, 1]]), distance)
    assert len(got) == 3
    for value, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(_np(value), want, atol=ATOL)


def test_pair_distance_kinds_and_unknown_name() -> None:
    """pair_distance is row-wise; unknown names are rejected, naming the allowed ones."""
    a = np.asarray([[0, 0, 0, 0], [1, 1, 1, 1]], "float32")
    b = np.asarray([[1, 1, 1, 1], [1, 1, 1, 3]], "float32")
    np.testing.assert_allclose(_np(losses.pair_distance(a, b, "squared")), [4.0, 4.0], atol=1e-6)
    np.testing.assert_allclose(_np(losses.pair_distance(a, b, "mean_squared")), [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(_np(losses.pair_distance(a, b)), [1.0, 1.0], atol=1e-6)  # default
    np.testing.assert_allclose(_np(losses.pair_distance(a, b, "euclidean")), [2.0, 2.0], atol=ATOL)
    with pytest.raises(ValueError, match="mean_squared"):
        losses.pair_distance(a, b, "cosine")
    for factory in (losses.triplet_loss, losses.hard_triplet_loss):
        with pytest.raises(ValueError, match="distance"):
            factory(1.0, "cosine")


def test_triplet_shape_checks() -> None:
    """Triplet losses need (B, 3, D); the hardest-negative loss needs (B, 2, D)."""
    pairs, triplets = _stack([[0, 0]], [[1, 1]]), _stack([[0, 0]], [[1, 1]], [[2, 2]])
    for loss in (losses.triplet_loss(), losses.hard_triplet_loss()):
        with pytest.raises(ValueError, match=r"\(B, 3, D\)"):
            loss(np.zeros(1), pairs)
    with pytest.raises(ValueError, match=r"\(B, 2, D\)"):
        losses.hardest_negative_loss()(np.zeros(1), triplets)


@pytest.mark.parametrize(
    ("distance", "eq2", "eq4"),
    [
        # row 0: relu(1 - 4 + 1) vs relu(1 - min(4, 1) + 1); row 1: d_an < d_pn, no change;
        # row 2: relu(2 - 3 + 1) vs relu(2 - min(3, 1) + 1).
        ("squared", [0.0, 1.0, 0.0], [1.0, 1.0, 2.0]),
        # the same distances divided by D = 4.
        (
            "mean_squared",
            [0.25 - 1 + 1, 0.25 - 0.25 + 1, 0.5 - 0.75 + 1],
            [0.25 - 0.25 + 1, 0.25 - 0.25 + 1, 0.5 - 0.25 + 1],
        ),
    ],
)
def test_hard_triplet_loss_eq4_by_hand(distance: str, eq2: list[float], eq4: list[float]) -> None:
    """Eq. 4 replaces d(a, n) by min(d(a, n), d(p, n)): it differs from Eq. 2 exactly where the
    positive is closer to the negative than the anchor is (rows 0 and 2)."""
    triplet = losses.TripletLoss(margin=1.0, distance=distance)
    hard = losses.HardTripletLoss(margin=1.0, distance=distance)
    np.testing.assert_allclose(_np(triplet.call(None, SWAP_TRIPLETS)), eq2, atol=1e-6)
    np.testing.assert_allclose(_np(hard.call(None, SWAP_TRIPLETS)), eq4, atol=1e-6)
    np.testing.assert_allclose(float(_np(hard(_zeros(SWAP_TRIPLETS), SWAP_TRIPLETS))), np.mean(eq4), atol=1e-6)


def test_hard_triplet_loss_on_the_eq2_batch() -> None:
    """On TRIPLETS, row 0 has d(p, n) = 0.25 < d(a, n) = 1 (squared): Eq. 4 gives 1 + 0.25 - 0.25."""
    loss = losses.hard_triplet_loss()
    assert isinstance(loss, losses.HardTripletLoss) and (loss.margin, loss.distance) == (1.0, "mean_squared")
    np.testing.assert_allclose(_np(loss.call(None, TRIPLETS)), [1.0, 0.0], atol=1e-6)


# Two triplets whose own negatives are far (3 away) while the other row's patches are close:
#   row 0: a0 (0, 0),   p0 (0.1, 0), n0 (3, 0)
#   row 1: a1 (0, 0.2), p1 (0, 0.3), n1 (0, -3)
# In-triplet (Eq. 4, squared): row 0: 0.01 - min(9, 2.9^2 = 8.41) + margin;
#                              row 1: 0.01 - min(3.2^2 = 10.24, 3.3^2 = 10.89) + margin.
# In-batch (HardNet, Euclidean, anchor swap, margin 1): |a_i - p_i| = 0.1 and the hardest
# negative of both rows is |a1 - p0| = sqrt(0.1^2 + 0.2^2) = sqrt(0.05), another row's patch.
CROSS_A = [[0.0, 0.0], [0.0, 0.2]]
CROSS_P = [[0.1, 0.0], [0.0, 0.3]]
CROSS_N = [[3.0, 0.0], [0.0, -3.0]]
SQRT_005 = float(np.sqrt(0.05))


@pytest.mark.parametrize(
    ("distance", "margin", "row0"),
    [("squared", 9.0, 0.01 - 8.41 + 9.0), ("mean_squared", 4.5, (0.01 - 8.41) / 2 + 4.5)],
)
def test_eq4_swap_is_in_triplet_not_in_batch(distance: str, margin: float, row0: float) -> None:
    """HardTripletLoss only looks inside each triplet: the other row's much closer patches are
    ignored (moving them away changes nothing), while HardestNegativeLoss picks them."""
    hard = losses.HardTripletLoss(margin=margin, distance=distance)
    y_pred = _stack(CROSS_A, CROSS_P, CROSS_N)
    np.testing.assert_allclose(_np(hard.call(None, y_pred)), [row0, 0.0], atol=1e-5)
    # Had it used the in-batch negative a1 (squared 0.04 from a0), row 0 would be about margin.
    moved = y_pred.copy()
    moved[1] += 100.0  # row 1's patches far away
    np.testing.assert_allclose(_np(hard.call(None, moved)), [row0, 0.0], atol=1e-5)

    in_batch = losses.HardestNegativeLoss(margin=1.0, anchor_swap=True)
    pairs = _stack(CROSS_A, CROSS_P)
    np.testing.assert_allclose(_np(in_batch.call(None, pairs)), [1 + 0.1 - SQRT_005] * 2, atol=ATOL)
    # Without row 1's patches nearby, row 0's hardest negative is 100+ away: no loss.
    np.testing.assert_allclose(_np(in_batch.call(None, moved[:, :2]))[0], 0.0, atol=ATOL)


def test_hardest_negative_without_swap_on_the_cross_batch() -> None:
    """Without anchor swap row 0's negative is p1 (0.3 away), row 1's is p0 (sqrt(0.05) away)."""
    loss = losses.hardest_negative_loss(margin=1.0, anchor_swap=False)
    np.testing.assert_allclose(
        _np(loss.call(None, _stack(CROSS_A, CROSS_P))), [1 + 0.1 - 0.3, 1 + 0.1 - SQRT_005], atol=ATOL
    )


# Hand-made batch for HardNet's loss: D_ij = |a_i - p_j|.
#   row mins (negatives p_j):    1.1 (p1), 0.9 (p0), sqrt(1.01) = 1.004988 (p0)
#   column mins (negatives a_j): 0.9 (a1), 1.1 (a0), 1.2 (a0)
#   positives: 0.1, 0.1, 0.2
HARD_ANCHORS = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
HARD_POSITIVES = [[0.1, 0.0], [1.1, 0.0], [0.0, 1.2]]
SQRT_101 = float(np.sqrt(1.01))


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
def test_hardest_negative_loss_values(anchor_swap: bool, per_row: list[float]) -> None:
    """Anchor swap changes row 0 from max(0, 1 + 0.1 - 1.1) = 0 to 1 + 0.1 - 0.9 = 0.2."""
    y_pred = _stack(HARD_ANCHORS, HARD_POSITIVES)
    loss = losses.hardest_negative_loss(margin=1.0, anchor_swap=anchor_swap)
    assert isinstance(loss, losses.HardestNegativeLoss)
    np.testing.assert_allclose(_np(loss.call(None, y_pred)), per_row, atol=ATOL)
    np.testing.assert_allclose(float(_np(loss(_zeros(y_pred), y_pred))), np.mean(per_row), atol=ATOL)


def test_hardest_negative_masks_near_duplicates() -> None:
    """p1 == a0 (distance < 0.008) is not row 0's negative; without the mask it would be."""
    anchors = np.asarray([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], "float32")
    positives = np.asarray([[0.1, 0.0], [0.0, 0.0], [0.0, 1.2]], "float32")
    _, masked = losses.hardest_negative_distances(anchors, positives, anchor_swap=False)
    _, unmasked = losses.hardest_negative_distances(anchors, positives, anchor_swap=False, duplicate_threshold=0.0)
    assert abs(float(_np(masked)[0]) - 1.2) < ATOL  # next nearest: p2 at 1.2
    assert float(_np(unmasked)[0]) < 2e-3  # the duplicate itself, sqrt(eps)


def test_hardest_negative_loss_matches_numpy_reference() -> None:
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
    got = float(_np(losses.hardest_negative_loss()(np.zeros(6), _stack(a, p))))
    np.testing.assert_allclose(got, expected, atol=ATOL)


def test_negative_margin_rejected() -> None:
    """Margins must be >= 0."""
    with pytest.raises(ValueError, match="margin"):
        losses.triplet_loss(-1.0)
    with pytest.raises(ValueError, match="margin"):
        losses.hard_triplet_loss(-0.5)
    with pytest.raises(ValueError, match="margin"):
        losses.hardest_negative_loss(-0.5)


def test_loss_config_roundtrip() -> None:
    """Registered losses serialize and deserialize with their settings."""
    loss = losses.hardest_negative_loss(margin=0.5, anchor_swap=False, duplicate_threshold=0.01)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, losses.HardestNegativeLoss)
    assert (again.margin, again.anchor_swap, again.duplicate_threshold) == (0.5, False, 0.01)
    again = keras.losses.deserialize(keras.losses.serialize(losses.triplet_loss(0.7, "squared")))
    assert isinstance(again, losses.TripletLoss) and (again.margin, again.distance) == (0.7, "squared")
    again = keras.losses.deserialize(keras.losses.serialize(losses.hard_triplet_loss(0.3, "euclidean")))
    assert isinstance(again, losses.HardTripletLoss) and (again.margin, again.distance) == (0.3, "euclidean")


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
    ("loss", "count"),
    [
        (losses.triplet_loss(margin=100.0, distance="euclidean"), 3),
        (losses.hard_triplet_loss(margin=100.0, distance="euclidean"), 3),
        (losses.hardest_negative_loss(margin=100.0), 2),
    ],
)
def test_gradients_finite_when_positive_equals_anchor(loss: keras.losses.Loss, count: int) -> None:
    """A fit step through a zero Euclidean anchor-positive distance (under a square root, hinge
    active) leaves finite, changed weights."""
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


def test_hardest_negative_masks_the_diagonal_at_any_scale() -> None:
    """With distances far above HardNet's mask offset of 10, a row's own positive is still not a negative."""
    anchor = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]], np.float32)
    positive = anchor + np.array([30.0, 0.0], np.float32)  # d(a_i, p_i) = 30
    _, hardest = losses.hardest_negative_distances(anchor, positive, anchor_swap=False)
    brute = [min(np.linalg.norm(anchor[i] - positive[j]) for j in range(3) if j != i) for i in range(3)]
    np.testing.assert_allclose(np.asarray(hardest), brute, rtol=1e-5)
    assert min(brute) > 30
