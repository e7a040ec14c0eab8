"""Training batches: unique classes, matching pairs, flips, determinism."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from nhpatches.batches import DenoisingBatches, TripletBatches, bank_from_sequences, flip_patches


def make_bank(points_per_seq: tuple[int, ...] = (12, 9)):
    """A bank whose patch pixels encode (point id, image): pixel[0,0] = point, pixel[0,1] = image."""
    sequences, start = {}, 0
    for s, count in enumerate(points_per_seq):
        clean = np.zeros((16, count, 8, 8), np.uint8)
        clean[:, :, 0, 0] = np.arange(start, start + count)[None, :]
        clean[:, :, 0, 1] = np.arange(16)[:, None]
        clean[:, :, 7, 7] = 200  # marks the corner, to see flips
        sequences[f"i_s{s}"] = SimpleNamespace(clean=clean, noisy=(clean + 1).astype(np.uint8))
        start += count
    return bank_from_sequences(sequences)


def test_bank_stacks_points_of_all_sequences() -> None:
    """Points are concatenated; sequence ids follow."""
    bank = make_bank()
    assert bank.clean.shape == (21, 16, 8, 8) and bank.num_points == 21
    np.testing.assert_array_equal(bank.clean[:, 0, 0, 0], np.arange(21))
    assert list(np.bincount(bank.sequence_ids)) == [12, 9]


def test_triplets_have_unique_classes_and_true_matches() -> None:
    """Anchors of a batch are distinct points; positives match anchors in another image; negatives differ."""
    bank = make_bank()
    batches = TripletBatches(bank, batch_size=8, steps=5, seed=3)
    for index in range(len(batches)):
        (anchor, positive, negative), target = batches[index]
        assert anchor.shape == (8, 8, 8, 1) and anchor.dtype == np.float32 and target.shape == (8,)
        ids = anchor[:, 0, 0, 0]
        assert len(set(ids)) == 8
        np.testing.assert_array_equal(positive[:, 0, 0, 0], ids)
        assert np.all(anchor[:, 0, 1, 0] != positive[:, 0, 1, 0])
        assert np.all(negative[:, 0, 0, 0] != ids)


def test_pair_mode_and_epoch_redraw() -> None:
    """Pair mode yields two inputs; a new epoch draws new batches, a frozen set keeps them."""
    bank = make_bank()
    batches = TripletBatches(bank, 6, 2, seed=1, mode="pair")
    inputs, _ = batches[0]
    assert len(inputs) == 2
    before = inputs[0].copy()
    batches.on_epoch_end()
    assert not np.array_equal(before, batches[0][0][0])
    frozen = TripletBatches(bank, 6, 2, seed=1, mode="pair", frozen=True)
    first = frozen[0][0][0].copy()
    frozen.on_epoch_end()
    np.testing.assert_array_equal(first, frozen[0][0][0])


def test_same_seed_same_batches() -> None:
    """Two datasets with one seed give identical batches."""
    a, b = TripletBatches(make_bank(), 8, 3, seed=5), TripletBatches(make_bank(), 8, 3, seed=5)
    for x, y in zip(a[2][0], b[2][0]):
        np.testing.assert_array_equal(x, y)


def test_flip_codes() -> None:
    """Code 1 flips left-right, 2 up-down, 3 both."""
    patch = np.arange(9, dtype=np.uint8).reshape(1, 3, 3)
    stacked = np.repeat(patch, 4, axis=0)
    out = flip_patches(stacked, np.array([0, 1, 2, 3]))
    np.testing.assert_array_equal(out[0], patch[0])
    np.testing.assert_array_equal(out[1], patch[0, :, ::-1])
    np.testing.assert_array_equal(out[2], patch[0, ::-1, :])
    np.testing.assert_array_equal(out[3], patch[0, ::-1, ::-1])


def test_flipped_pairs_share_the_flip() -> None:
    """With flips on, anchor and positive are flipped the same way."""
    batches = TripletBatches(make_bank(), 8, 4, seed=2, flip=True)
    corners = set()
    for index in range(4):
        (anchor, positive, _), _ = batches[index]
        marks_a = anchor[..., 0] == 200
        np.testing.assert_array_equal(marks_a, positive[..., 0] == 200)
        corners.update(tuple(np.argwhere(m)[0]) for m in marks_a)
    assert len(corners) > 1  # some patches were flipped


def test_denoising_batches_pair_noisy_with_clean() -> None:
    """Inputs are the noisy versions of the targets."""
    inputs, targets = DenoisingBatches(make_bank(), 5, 2, seed=0)[1]
    np.testing.assert_array_equal(inputs, targets + 1)


def test_bad_sizes_are_rejected() -> None:
    """A batch larger than the number of points, or an unknown mode, raises ValueError."""
    with pytest.raises(ValueError, match="distinct points"):
        TripletBatches(make_bank((3,)), 8, 1)
    with pytest.raises(ValueError, match="mode"):
        TripletBatches(make_bank(), 4, 1, mode="quad")
