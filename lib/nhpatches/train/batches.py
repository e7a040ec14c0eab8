"""Training batches: denoising pairs and descriptor triplets, drawn on the fly.

Patches stay uint8 in one array of shape (points, 16, P, P); a batch is a fancy
index plus a float32 cast, far cheaper than a training step, so the input
pipeline never limits the 2-core throughput. Every draw comes from a
``numpy.random.Generator`` seeded by (seed, epoch), so a run is reproducible.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from nhpatches.core.config import IMAGE_TYPES
from nhpatches.nets.specs import FLIP_MODES
from nhpatches.train.augment import NoiseAugment, add_noise, square_symmetry


@dataclasses.dataclass(frozen=True)
class PatchBank:
    """Patches of many sequences, indexed by 3-D point.

    Shape: clean and noisy (points, 16, P, P) uint8; sequence_ids (points,).
    """

    clean: np.ndarray
    noisy: np.ndarray | None
    sequence_ids: np.ndarray
    sequence_names: tuple[str, ...]
    denoised: np.ndarray | None = None  # a denoiser's output for ``noisy`` (see with_denoised)

    @property
    def num_points(self) -> int:
        """Number of 3-D points (classes)."""
        return int(self.clean.shape[0])


def bank_from_sequences(sequences: Mapping[str, Any]) -> PatchBank:
    """Stack loaded sequences (objects with .clean/.noisy of shape (16, N, P, P)) by point."""
    if not sequences:
        raise ValueError("no sequences given to build a training bank from")
    names = tuple(sequences)
    clean = [np.swapaxes(sequences[name].clean, 0, 1) for name in names]
    noisy_parts = [sequences[name].noisy for name in names]
    noisy = None
    if all(part is not None for part in noisy_parts):
        noisy = np.concatenate([np.swapaxes(part, 0, 1) for part in noisy_parts])
    ids = np.concatenate([np.full(len(part), i, dtype=np.int32) for i, part in enumerate(clean)])
    return PatchBank(np.concatenate(clean), noisy, ids, names)


def cap_points(bank: PatchBank, per_sequence: int | None) -> PatchBank:
    """The bank restricted to the first ``per_sequence`` points of every sequence (None: unchanged)."""
    if per_sequence is None:
        return bank
    if isinstance(per_sequence, bool) or not isinstance(per_sequence, int) or per_sequence < 1:
        raise ValueError(f"points per sequence must be a positive int or None, got {per_sequence!r}")
    keep = np.concatenate(
        [np.flatnonzero(bank.sequence_ids == i)[:per_sequence] for i in range(len(bank.sequence_names))]
    )

    def pick(a):
        return None if a is None else a[keep]

    return PatchBank(
        bank.clean[keep], pick(bank.noisy), bank.sequence_ids[keep], bank.sequence_names, pick(bank.denoised)
    )


def with_denoised(bank: PatchBank, denoised: np.ndarray) -> PatchBank:
    """The bank with a denoiser's output of its noisy patches attached as ``denoised``."""
    denoised = np.asarray(denoised)
    if denoised.shape != bank.clean.shape or denoised.dtype != np.uint8:
        raise ValueError(
            f"denoised patches must be uint8 of shape {bank.clean.shape}, got {denoised.dtype} {denoised.shape}"
        )
    return dataclasses.replace(bank, denoised=denoised)


def as_model_input(patches: np.ndarray) -> np.ndarray:
    """uint8 patches to the models' float32 0..255 input with a channel axis.

    Shape: (B, P, P) -> (B, P, P, 1)
    """
    return patches.astype(np.float32)[..., None]


#: Batch modes: "triplet" (anchor, positive, negative) or "pair" (anchor, positive; HardNet).
BATCH_MODES: tuple[str, ...] = ("triplet", "pair")


def check_batch_settings(mode: str, flip: str, batch_size: int, num_points: int) -> None:
    """The checks every descriptor batch source makes (host TripletBatches and the device sampler).

    ``flip`` is one of FLIP_MODES: none, a random flip per pair, every patch turned by 180
    degrees (the report's "flipped patches" / "rotation of 180 degrees", R §4.3, §5), or one of the
    8 symmetries of the square per pair ("d4", the release recipe's).
    """
    if mode not in BATCH_MODES:
        raise ValueError(f"mode must be 'triplet' or 'pair', got {mode!r}")
    if flip not in FLIP_MODES:
        raise ValueError(f"flip must be one of {FLIP_MODES}, got {flip!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be an int >= 2, got {batch_size!r}")
    if num_points < batch_size:
        raise ValueError(
            f"batch_size {batch_size} exceeds the {num_points} training points: a batch needs distinct points"
        )


def flip_patches(patches: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Flip each patch by its code: 0 none, 1 left-right, 2 up-down, 3 both (= 180° turn).

    Shape: (B, P, P), (B,) -> (B, P, P)
    """
    out = patches.copy()
    lr = (codes & 1).astype(bool)
    ud = (codes & 2).astype(bool)
    out[lr] = out[lr][:, :, ::-1]
    out[ud] = out[ud][:, ::-1, :]
    return out


class _EpochBatches(keras.utils.PyDataset):
    """Base: a fixed number of batches per epoch, redrawn each epoch unless frozen."""

    def __init__(self, bank: PatchBank, batch_size: int, steps: int, seed: int, frozen: bool) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        if batch_size < 2 or steps < 1:
            raise ValueError(f"batch_size must be >= 2 and steps >= 1, got {batch_size} and {steps}")
        self.bank, self.batch_size, self.steps = bank, batch_size, steps
        self.seed, self.frozen, self.epoch = seed, frozen, 0
        self._plan = self._draw(np.random.default_rng([seed, 0]))

    def __len__(self) -> int:
        return self.steps

    def on_epoch_end(self) -> None:
        """Draw the next epoch's batches (a frozen validation set keeps its draw)."""
        if not self.frozen:
            self.epoch += 1
            self._plan = self._draw(np.random.default_rng([self.seed, self.epoch]))

    def at(self, epoch: int, index: int):
        """Batch ``index`` of ``epoch``: a function of (seed, epoch, index) alone, whatever was drawn before.

        ``keras.Model.fit`` walks the batches through ``__getitem__`` and ``on_epoch_end``;
        :class:`nhpatches.train.resumable.ResumableRun` asks for each batch by (epoch, step).
        """
        if self.frozen:
            epoch = 0
        if epoch != self.epoch:
            self.epoch, self._plan = epoch, self._draw(np.random.default_rng([self.seed, epoch]))
        return self[index]

    def _draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        raise NotImplementedError


class DenoisingBatches(_EpochBatches):
    """(noisy, clean) batches of random (point, image) patches for a denoiser.

    With ``steps=None`` an epoch is one shuffled pass over every (point, image) patch of the bank,
    as the coursework's DenoiseHPatches; otherwise ``steps`` batches of random patches.
    Shape: each item ((B, P, P, 1), (B, P, P, 1)) float32 in 0..255.
    """

    def __init__(
        self, bank: PatchBank, batch_size: int, steps: int | None, seed: int = 0, frozen: bool = False
    ) -> None:
        if bank.noisy is None:
            raise ValueError("denoiser training needs noisy patches; the bank has none")
        self.full_pass = steps is None
        if self.full_pass:
            steps = bank.num_points * len(IMAGE_TYPES) // batch_size
            if steps < 1:
                raise ValueError(
                    f"one pass over the bank's {bank.num_points * len(IMAGE_TYPES)} patches "
                    f"is less than one batch of {batch_size}"
                )
        assert steps is not None
        super().__init__(bank, batch_size, steps, seed, frozen)

    def _draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        total = self.steps * self.batch_size
        if self.full_pass:
            order = rng.permutation(self.bank.num_points * len(IMAGE_TYPES))[:total]
            return {"point": order // len(IMAGE_TYPES), "image": order % len(IMAGE_TYPES)}
        return {
            "point": rng.integers(0, self.bank.num_points, total),
            "image": rng.integers(0, len(IMAGE_TYPES), total),
        }

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        point, image = self._plan["point"][rows], self._plan["image"][rows]
        noisy = self.bank.noisy
        assert noisy is not None  # checked in __init__
        return as_model_input(noisy[point, image]), as_model_input(self.bank.clean[point, image])


class TripletBatches(_EpochBatches):
    """Descriptor batches with B distinct 3-D points per batch (unique classes).

    mode "triplet": inputs (anchor, positive, negative); mode "pair": (anchor, positive),
    the in-batch negatives being the other points (HardNet's loss).
    Anchor and positive are the same point in two different images of its sequence;
    the negative is another point in a random image. ``flip`` is one of FLIP_MODES: with
    "random" the anchor and positive share one random flip (a flipped point is still a matching
    pair) and the negative gets its own; with "rot180" every patch is turned by 180 degrees.
    Patches come from ``source``: "clean", "noisy" or "denoised" (see with_denoised). With
    ``noise`` (a :class:`~nhpatches.train.augment.NoiseAugment`) every patch gets Gaussian noise of
    its own σ after the flip, drawn from (seed, epoch, batch index). A bank may hold any number
    (>= 2) of images per point; HPatches has 16.
    Shape: inputs each (B, P, P, 1) float32 0..255; targets (B,) zeros (unused by the losses).
    """

    def __init__(
        self,
        bank: PatchBank,
        batch_size: int,
        steps: int,
        seed: int = 0,
        mode: str = "triplet",
        flip: str = "none",
        source: str = "clean",
        frozen: bool = False,
        noise: NoiseAugment | None = None,
    ) -> None:
        check_batch_settings(mode, flip, batch_size, bank.num_points)
        if source not in ("clean", "noisy", "denoised") or getattr(bank, source) is None:
            raise ValueError(f"source must be 'clean', 'noisy' or 'denoised' and present in the bank, got {source!r}")
        self.mode, self.flip, self.source, self.noise = mode, flip, source, noise
        super().__init__(bank, batch_size, steps, seed, frozen)

    def _flip_codes(self, rng: np.random.Generator, total: int) -> np.ndarray:
        """Flip code per patch: random 0..3, all 3 (180 degrees), all 0, or a symmetry 0..7 ("d4")."""
        if self.flip == "random":
            return rng.integers(0, 4, total)
        if self.flip == "d4":
            return rng.integers(0, 8, total)
        return np.full(total, 3 if self.flip == "rot180" else 0, np.int64)

    def _transform(self, patches: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Flip (or turn and mirror, "d4") each patch by its code. Shape: (B, P, P) -> (B, P, P)."""
        return square_symmetry(patches, codes) if self.flip == "d4" else flip_patches(patches, codes)

    def _input(self, patches: np.ndarray, sigmas: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """Model input of transformed uint8 patches, with their noise when the batches add noise."""
        return as_model_input(patches) if sigmas is None else add_noise(patches, sigmas, rng)

    def _draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        num_points, size, steps = self.bank.num_points, self.batch_size, self.steps
        views = self.bank.clean.shape[1]  # 16 images per point in HPatches
        points = np.stack([rng.choice(num_points, size, replace=False) for _ in range(steps)]).ravel()
        total = points.size
        first = rng.integers(0, views, total)
        second = (first + rng.integers(1, views, total)) % views
        negative = (points + rng.integers(1, num_points, total)) % num_points
        return {
            "point": points,
            "first": first,
            "second": second,
            "negative": negative,
            "negative_image": rng.integers(0, views, total),
            "flip": self._flip_codes(rng, total),
            "negative_flip": self._flip_codes(rng, total),
        }

    def _batch_plan(self, index: int) -> dict[str, np.ndarray]:
        """The drawn points, images and flip codes of batch ``index``."""
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return {name: values[rows] for name, values in self._plan.items()}

    def __getitem__(self, index: int) -> tuple[tuple[np.ndarray, ...], Any]:
        plan = self._batch_plan(index)
        patches = getattr(self.bank, self.source)
        chosen = [patches[plan["point"], plan["first"]], patches[plan["point"], plan["second"]]]
        codes = [plan["flip"], plan["flip"]]
        if self.mode == "triplet":
            chosen.append(patches[plan["negative"], plan["negative_image"]])
            codes.append(plan["negative_flip"])
        # The noise of batch ``index`` depends only on (seed, epoch, index): prefetching never changes it.
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        sigmas = None if self.noise is None else self.noise.sigmas(rng, len(chosen) * self.batch_size)
        inputs = tuple(
            self._input(self._transform(part, code), None if sigmas is None else sigmas[k :: len(chosen)], rng)
            for k, (part, code) in enumerate(zip(chosen, codes, strict=False))
        )
        return inputs, np.zeros(self.batch_size, np.float32)


class JointBatches(TripletBatches):
    """Noisy anchor-positive pairs with their clean patches, for denoise-and-describe training.

    The draw is TripletBatches' "pair" mode (distinct points per batch, shared flip per pair); the
    inputs are the noisy patches and the targets the matching clean ones, flipped alike.
    Shape: inputs 2 x (B, P, P, 1) float32 0..255; targets {"descriptors": (B,) zeros (unused),
    "denoised": (B, 2, P, P, 1) float32 clean}.
    """

    def __init__(
        self, bank: PatchBank, batch_size: int, steps: int, seed: int = 0, flip: str = "none", frozen: bool = False
    ) -> None:
        if bank.noisy is None:
            raise ValueError("joint training needs noisy patches; the bank has none")
        super().__init__(bank, batch_size, steps, seed, "pair", flip, "noisy", frozen)

    def __getitem__(self, index: int) -> tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]:
        plan = self._batch_plan(index)
        inputs, clean = [], []
        noisy = self.bank.noisy
        assert noisy is not None  # checked in __init__
        for image in ("first", "second"):
            where = (plan["point"], plan[image])
            inputs.append(as_model_input(self._transform(noisy[where], plan["flip"])))
            clean.append(as_model_input(self._transform(self.bank.clean[where], plan["flip"])))
        targets = {"descriptors": np.zeros(self.batch_size, np.float32), "denoised": np.stack(clean, axis=1)}
        return tuple(inputs), targets


class InterleavedBatches(keras.utils.PyDataset):
    """Batches of several sources in turn: step i is the next batch of source i mod k.

    The sources must have the same batch size and number of steps; each redraws on its own at
    the end of an epoch. The release recipe interleaves HPatches-style pairs with camera pairs.
    """

    def __init__(self, parts: list[TripletBatches]) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        if not parts or len({(len(p), p.batch_size) for p in parts}) != 1:
            raise ValueError("interleaved batches need at least one source, all with the same steps and batch size")
        self.parts, self.batch_size = parts, parts[0].batch_size

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def __getitem__(self, index: int):
        return self.parts[index % len(self.parts)][index // len(self.parts)]

    def at(self, epoch: int, index: int):
        """Batch ``index`` of ``epoch`` (see :meth:`TripletBatches.at`)."""
        return self.parts[index % len(self.parts)].at(epoch, index // len(self.parts))

    def on_epoch_end(self) -> None:
        """Let every source draw its next epoch."""
        for part in self.parts:
            part.on_epoch_end()
