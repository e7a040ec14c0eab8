"""Training batches: unique classes, matching pairs, flips (random, 180 degrees), sources
(clean, noisy, denoised), capped banks, full denoising passes, determinism."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from nhpatches.train.batches import (
    FLIP_MODES,
    DenoisingBatches,
    TripletBatches,
    bank_from_sequences,
    cap_points,
    flip_patches,
    with_denoised,
)


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
    for x, y in zip(a[2][0], b[2][0], strict=True):
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
    batches = TripletBatches(make_bank(), 8, 4, seed=2, flip="random")
    corners, own_flip = set(), False
    for index in range(4):
        (anchor, positive, negative), _ = batches[index]
        marks_a = anchor[..., 0] == 200
        np.testing.assert_array_equal(marks_a, positive[..., 0] == 200)
        corners.update(tuple(np.argwhere(m)[0]) for m in marks_a)
        own_flip |= not np.array_equal(marks_a, negative[..., 0] == 200)
    assert len(corners) == 4  # all four flips (none, left-right, up-down, both) occur
    assert own_flip  # the negative's flip is drawn separately


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


@pytest.mark.parametrize("flip", [True, False, "hflip", "rot90"])
def test_unknown_flip_modes_are_rejected(flip: object) -> None:
    """flip is one of FLIP_MODES (the old boolean is no longer accepted)."""
    assert FLIP_MODES == ("none", "random", "rot180", "d4")
    with pytest.raises(ValueError, match="flip must be one of"):
        TripletBatches(make_bank(), 4, 1, flip=flip)


@pytest.mark.parametrize("mode", ["triplet", "pair"])
def test_rot180_turns_every_patch(mode: str) -> None:
    """flip="rot180" gives the flip="none" batches (same seed, same draw) turned by 180 degrees,
    anchor, positive and negative alike."""
    bank = make_bank()
    plain = TripletBatches(bank, 8, 3, seed=4, mode=mode, flip="none")
    turned = TripletBatches(bank, 8, 3, seed=4, mode=mode, flip="rot180")
    for index in range(3):
        (plain_inputs, _), (turned_inputs, _) = plain[index], turned[index]
        assert len(turned_inputs) == (3 if mode == "triplet" else 2)
        for x, y in zip(plain_inputs, turned_inputs, strict=True):
            np.testing.assert_array_equal(y, np.rot90(x, 2, axes=(1, 2)))
            assert not np.array_equal(x, y)
            assert np.all(y[:, 0, 0, 0] == 200)  # the marked corner (7, 7) moved to (0, 0)


def test_sources_read_their_bank_field() -> None:
    """source="noisy"/"denoised" read bank.noisy / bank.denoised with the same draw as "clean"."""
    bank = make_bank()
    bank = with_denoised(bank, (bank.clean + 2).astype(np.uint8))
    clean = TripletBatches(bank, 8, 2, seed=6)
    for source, offset in (("noisy", 1), ("denoised", 2)):
        other = TripletBatches(bank, 8, 2, seed=6, source=source)
        for index in range(2):
            for x, y in zip(clean[index][0], other[index][0], strict=True):
                np.testing.assert_array_equal(y, x + offset)


def test_denoised_source_needs_denoised_patches() -> None:
    """Without with_denoised the bank has no denoised patches: source="denoised" is refused."""
    bank = make_bank()
    assert bank.denoised is None
    with pytest.raises(ValueError, match="source"):
        TripletBatches(bank, 4, 1, source="denoised")
    with pytest.raises(ValueError, match="source"):
        TripletBatches(bank, 4, 1, source="restored")


def test_with_denoised_validates_shape_and_dtype() -> None:
    """The denoised array must be uint8 and shaped like the clean patches; the bank is not mutated."""
    bank = make_bank()
    good = np.zeros_like(bank.clean)
    attached = with_denoised(bank, good)
    assert attached.denoised is good and bank.denoised is None
    assert attached.clean is bank.clean and attached.noisy is bank.noisy
    with pytest.raises(ValueError, match=r"uint8 of shape \(21, 16, 8, 8\).*float32"):
        with_denoised(bank, good.astype(np.float32))
    with pytest.raises(ValueError, match=r"got uint8 \(20, 16, 8, 8\)"):
        with_denoised(bank, good[:20])
    with pytest.raises(ValueError, match="uint8 of shape"):
        with_denoised(bank, good[:, :, :4])


def test_cap_points_keeps_the_first_points_of_every_sequence() -> None:
    """cap_points(bank, 5) keeps points 0-4 of sequence 0 and 12-16 of sequence 1, in every field."""
    bank = make_bank()
    bank = with_denoised(bank, (bank.clean + 2).astype(np.uint8))
    capped = cap_points(bank, 5)
    expected = np.r_[0:5, 12:17]
    assert capped.num_points == 10 and capped.sequence_names == bank.sequence_names
    np.testing.assert_array_equal(capped.clean[:, 0, 0, 0], expected)
    np.testing.assert_array_equal(capped.noisy, bank.noisy[expected])
    np.testing.assert_array_equal(capped.denoised, bank.denoised[expected])
    np.testing.assert_array_equal(capped.sequence_ids, [0] * 5 + [1] * 5)
    # A cap above a sequence's size keeps all of it; None leaves the bank as it is.
    assert list(np.bincount(cap_points(bank, 10).sequence_ids)) == [10, 9]
    assert cap_points(bank, None) is bank
    assert cap_points(make_bank(), 3).denoised is None


def test_denoising_full_pass_covers_every_patch_once() -> None:
    """steps=None: an epoch is a shuffled pass over all 21 x 16 (point, image) patches, each once;
    the next epoch is another full pass in another order."""
    bank = make_bank()
    batches = DenoisingBatches(bank, 8, None, seed=0)
    assert len(batches) == 21 * 16 // 8
    orders = []
    for _ in range(2):
        seen = []
        for index in range(len(batches)):
            inputs, targets = batches[index]
            np.testing.assert_array_equal(inputs, targets + 1)
            seen += [(int(t[0, 0, 0]), int(t[0, 1, 0])) for t in targets]
        assert sorted(seen) == [(point, image) for point in range(21) for image in range(16)]
        orders.append(seen)
        batches.on_epoch_end()
    assert orders[0] != orders[1]
    assert orders[0][:16] != [(0, image) for image in range(16)]  # shuffled, not in bank order


def test_denoising_random_steps_are_not_a_full_pass() -> None:
    """With a step count the patches are drawn at random with repeats: 60 batches of 8 (480 draws) from
    21 x 16 = 336 patches repeat some and miss others, yet reach every point and image; each input is the
    noisy copy of its target (same point, same image); a seed gives the same draw, a new epoch another."""
    bank = make_bank()
    batches = DenoisingBatches(bank, 8, 60, seed=0)
    assert len(batches) == 60 and not batches.full_pass

    def drawn(source: DenoisingBatches) -> list[tuple[int, int]]:
        pairs = []
        for index in range(len(source)):
            inputs, targets = source[index]
            assert inputs.shape == targets.shape == (8, 8, 8, 1)
            np.testing.assert_array_equal(inputs, targets + 1)
            pairs += [(int(t[0, 0, 0]), int(t[0, 1, 0])) for t in targets]
        return pairs

    first = drawn(batches)
    assert len(first) == 480 and len(set(first)) < 336  # repeats, so not one pass
    assert {point for point, _ in first} == set(range(21)) and {image for _, image in first} == set(range(16))
    assert drawn(DenoisingBatches(bank, 8, 60, seed=0)) == first
    batches.on_epoch_end()
    assert drawn(batches) != first


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_cap_points_rejects_bad_counts(bad) -> None:
    """cap_points takes a positive int or None."""
    from nhpatches.train.batches import cap_points

    bank = bank_from_sequences({"i_a": SimpleNamespace(clean=np.zeros((16, 3, 4, 4), np.uint8), noisy=None)})
    assert cap_points(bank, None) is bank
    with pytest.raises(ValueError, match="positive int"):
        cap_points(bank, bad)
