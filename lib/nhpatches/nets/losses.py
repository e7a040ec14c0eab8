"""Losses of the study, written with keras.ops only (TensorFlow, PyTorch and JAX backends).

Denoisers: mean_absolute_error / mean_squared_error (R Eq. 1 and Eq. 3; Keras' "mae"/"mse").
Descriptors, the report's:

- ``TripletLoss`` (R Eq. 2): max(d(a, p) - d(a, n) + margin, 0) on a (B, 3, D) triplet batch, with
  the **squared** distance d. The coursework computes it as ``mean(square(a - p), axis=-1)``,
  i.e. the squared Euclidean distance divided by D: ``distance="mean_squared"`` (the default).
  ``"squared"`` is the plain ||a - p||^2 and ``"euclidean"`` the unsquared ||a - p||.
- ``HardTripletLoss`` (R Eq. 4, Balntas et al. BMVC 2016): the same with d(a, n) replaced by
  min(d(a, n), d(p, n)), the **in-triplet anchor swap**.

and the field's stronger one, kept as an extension (notebook 08):

- ``HardestNegativeLoss`` (HardNet, Mishchuk et al. 2017): for (B, 2, D) anchor-positive pairs of
  distinct points, the hardest negative over the whole batch (with or without anchor swap).

The descriptor losses are keras.losses.Loss objects for ``model.fit``: ``y_pred`` stacks the
descriptors along axis 1 (see build_triplet_trainer and build_pair_trainer in nhpatches.nets.models)
and ``y_true`` is ignored (pass dummy zeros). Called directly they return the batch mean, a
scalar; their ``call`` gives the per-sample losses (B,).
"""

from __future__ import annotations

import keras
from keras import ops

#: Added under every square root of a distance, for finite gradients at zero distance.
DISTANCE_EPS = 1e-6
#: Added to masked entries of the distance matrix (HardNet's value; unit-norm distances are <= 2).
MASK_OFFSET = 10.0
#: Off-diagonal pairs closer than this are near-duplicates, not negatives (HardNet's value).
DUPLICATE_THRESHOLD = 0.008


def _per_sample_mean(values):
    """Mean over every axis but the first. Shape: (B, ...) -> (B,)."""
    return ops.mean(ops.reshape(values, (ops.shape(values)[0], -1)), axis=1)


def mean_absolute_error(y_true, y_pred):
    """Per-patch MAE for the denoisers. Shape: (B, ...) x 2 -> (B,)."""
    return _per_sample_mean(ops.abs(ops.convert_to_tensor(y_pred) - y_true))


def mean_squared_error(y_true, y_pred):
    """Per-patch MSE for the denoisers. Shape: (B, ...) x 2 -> (B,)."""
    return _per_sample_mean(ops.square(ops.convert_to_tensor(y_pred) - y_true))


def _check_stacked(y_pred, count: int) -> None:
    """Raise ValueError unless y_pred has static shape (B, count, D)."""
    shape = tuple(y_pred.shape)
    if len(shape) != 3 or shape[1] != count:
        raise ValueError(f"y_pred must have shape (B, {count}, D), got {shape}")


#: Distances a triplet loss can use (see the module docstring).
DISTANCES: tuple[str, ...] = ("mean_squared", "squared", "euclidean")


def euclidean_distance(a, b):
    """Row-wise eps-stabilised Euclidean distance. Shape: (B, D) x 2 -> (B,)."""
    return ops.sqrt(ops.sum(ops.square(a - b), axis=-1) + DISTANCE_EPS)


def pair_distance(a, b, distance: str = "mean_squared"):
    """Row-wise distance of the named kind. Shape: (B, D) x 2 -> (B,).

    "mean_squared": mean((a - b)^2) over D (the coursework's); "squared": sum((a - b)^2);
    "euclidean": sqrt(sum((a - b)^2) + eps).
    """
    if distance == "mean_squared":
        return ops.mean(ops.square(a - b), axis=-1)
    if distance == "squared":
        return ops.sum(ops.square(a - b), axis=-1)
    if distance == "euclidean":
        return euclidean_distance(a, b)
    raise ValueError(f"unknown distance {distance!r}; expected one of {DISTANCES}")


def triplet_distances(y_pred, distance: str = "mean_squared") -> tuple:
    """(d(a, p), d(a, n), d(p, n)) of a triplet batch. Shape: (B, 3, D) -> 3 x (B,)."""
    y_pred = ops.convert_to_tensor(y_pred)
    _check_stacked(y_pred, 3)
    anchor, positive, negative = y_pred[:, 0], y_pred[:, 1], y_pred[:, 2]
    return (
        pair_distance(anchor, positive, distance),
        pair_distance(anchor, negative, distance),
        pair_distance(positive, negative, distance),
    )


def descriptor_distance_matrix(a, b):
    """D_ij = sqrt(max(|a_i|^2 + |b_j|^2 - 2 a_i.b_j, 0) + eps). Shape: (N, D), (M, D) -> (N, M)."""
    a, b = ops.convert_to_tensor(a), ops.convert_to_tensor(b)
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise ValueError(f"expected two (N, D) matrices, got shapes {tuple(a.shape)}, {tuple(b.shape)}")
    a_sq = ops.sum(ops.square(a), axis=1)[:, None]
    b_sq = ops.sum(ops.square(b), axis=1)[None, :]
    squared = ops.maximum(a_sq + b_sq - 2.0 * ops.matmul(a, ops.transpose(b)), 0.0)
    return ops.sqrt(squared + DISTANCE_EPS)


def hardest_negative_distances(
    anchor, positive, anchor_swap: bool = True, duplicate_threshold: float = DUPLICATE_THRESHOLD
) -> tuple:
    """(d_pos, d_hardest_neg) as HardNet's loss_HardNet(batch_reduce="min"). Shape: (B, D) x 2 -> ((B,), (B,)).

    Row i's negatives are the positives p_j, j != i (and, with anchor_swap, the anchors a_j, via
    the column min of D_ij = |a_i - p_j|); the diagonal and near-duplicates (distance below
    duplicate_threshold) are masked by adding MASK_OFFSET.
    """
    dist = descriptor_distance_matrix(anchor, positive)
    size = ops.shape(dist)[0]
    eye = ops.eye(size, dtype=dist.dtype)
    # HardNet adds 10 (above any unit-norm distance); adding max(dist) too keeps a masked entry out
    # of the minimum for descriptors of any scale, and changes nothing for unit-norm ones.
    offset = MASK_OFFSET + ops.max(ops.stop_gradient(dist))
    masked = dist + offset * eye
    duplicates = ops.cast(ops.less(masked, duplicate_threshold), dist.dtype)
    masked = masked + offset * duplicates
    hardest = ops.min(masked, axis=1)
    if anchor_swap:
        hardest = ops.minimum(hardest, ops.min(masked, axis=0))
    return ops.diagonal(dist), hardest


def _check_margin_and_distance(margin: float, distance: str) -> None:
    """Raise ValueError for a negative margin or an unknown distance."""
    if float(margin) < 0.0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; expected one of {DISTANCES}")


@keras.saving.register_keras_serializable(package="nhpatches")
class TripletLoss(keras.losses.Loss):
    """R Eq. 2: max(d(a, p) - d(a, n) + margin, 0) per triplet; y_pred (B, 3, D), y_true ignored.

    ``distance`` "mean_squared" (default) is the coursework's mean((a - p)^2) over the D dims.
    """

    def __init__(
        self, margin: float = 1.0, distance: str = "mean_squared", name: str = "triplet_loss", **kwargs
    ) -> None:
        super().__init__(name=name, **kwargs)
        _check_margin_and_distance(margin, distance)
        self.margin, self.distance = float(margin), distance

    def call(self, y_true, y_pred):
        """Per-triplet hinge losses. Shape: (B, 3, D) -> (B,)."""
        d_pos, d_neg, _ = triplet_distances(y_pred, self.distance)
        return ops.relu(d_pos - d_neg + self.margin)

    def get_config(self) -> dict:
        """Config for saving."""
        return {**super().get_config(), "margin": self.margin, "distance": self.distance}


@keras.saving.register_keras_serializable(package="nhpatches")
class HardTripletLoss(TripletLoss):
    """R Eq. 4 (Balntas et al. 2016): max(d(a, p) - min(d(a, n), d(p, n)) + margin, 0) per triplet.

    The in-triplet anchor swap: the negative is compared with the anchor and with the positive,
    and the closer of the two counts. y_pred (B, 3, D), y_true ignored; margin and distance as
    TripletLoss.
    """

    def __init__(
        self, margin: float = 1.0, distance: str = "mean_squared", name: str = "hard_triplet_loss", **kwargs
    ) -> None:
        super().__init__(margin=margin, distance=distance, name=name, **kwargs)

    def call(self, y_true, y_pred):
        """Per-triplet hinge losses against the harder of the two negative distances. (B, 3, D) -> (B,)."""
        d_pos, d_an, d_pn = triplet_distances(y_pred, self.distance)
        return ops.relu(d_pos - ops.minimum(d_an, d_pn) + self.margin)


@keras.saving.register_keras_serializable(package="nhpatches")
class HardestNegativeLoss(keras.losses.Loss):
    """Extension (HardNet): max(0, margin + d(a_i, p_i) - hardest in-batch negative); y_pred (B, 2, D).

    Euclidean distances on (unit-norm) descriptors, as HardNet's loss_HardNet(batch_reduce="min").
    """

    def __init__(
        self,
        margin: float = 1.0,
        anchor_swap: bool = True,
        duplicate_threshold: float = DUPLICATE_THRESHOLD,
        name: str = "hardest_negative_loss",
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if float(margin) < 0.0:
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        self.margin = float(margin)
        self.anchor_swap = bool(anchor_swap)
        self.duplicate_threshold = float(duplicate_threshold)

    def call(self, y_true, y_pred):
        """Per-row hinge losses against the hardest negative. Shape: (B, 2, D) -> (B,)."""
        y_pred = ops.convert_to_tensor(y_pred)
        _check_stacked(y_pred, 2)
        d_pos, d_neg = hardest_negative_distances(
            y_pred[:, 0], y_pred[:, 1], self.anchor_swap, self.duplicate_threshold
        )
        return ops.relu(self.margin + d_pos - d_neg)

    def get_config(self) -> dict:
        """Config for saving."""
        extra = {
            "margin": self.margin,
            "anchor_swap": self.anchor_swap,
            "duplicate_threshold": self.duplicate_threshold,
        }
        return {**super().get_config(), **extra}


def triplet_loss(margin: float = 1.0, distance: str = "mean_squared") -> TripletLoss:
    """Keras loss of R Eq. 2 for a triplet trainer's (B, 3, D) output; batch mean when called."""
    return TripletLoss(margin=margin, distance=distance)


def hard_triplet_loss(margin: float = 1.0, distance: str = "mean_squared") -> HardTripletLoss:
    """Keras loss of R Eq. 4 (in-triplet anchor swap) for a triplet trainer's (B, 3, D) output."""
    return HardTripletLoss(margin=margin, distance=distance)


def hardest_negative_loss(
    margin: float = 1.0, anchor_swap: bool = True, duplicate_threshold: float = DUPLICATE_THRESHOLD
) -> HardestNegativeLoss:
    """Extension: HardNet's in-batch hardest-negative loss for a pair trainer's (B, 2, D) output."""
    return HardestNegativeLoss(margin=margin, anchor_swap=anchor_swap, duplicate_threshold=duplicate_threshold)
