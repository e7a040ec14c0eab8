"""Training batches drawn on the device, inside the compiled step; bf16, jit and data parallel.

On a GPU the host samplers of :mod:`nhpatches.train.batches` (a numpy fancy index, a float32 cast
and a host-to-device copy per batch, plus Keras' per-item Python overhead) can cost more than
the step itself. Here the patch bank lives on the device as a non-trainable uint8 variable
and every batch is drawn and gathered with ``keras.random`` and ``keras.ops`` in the compiled
training step, so the same code runs under ``jit`` on JAX, TensorFlow and PyTorch:

- :class:`DeviceTripletSampler` draws exactly what :class:`~nhpatches.train.batches.TripletBatches`
  defines: B distinct 3-D points per batch (unique classes), anchor and positive the same point
  in two different images (first random, second = (first + randint(1, 16)) % 16), the negative
  another point ((point + randint(1, points)) % points) in a random image, flips "none",
  "random" (anchor and positive share one code, the negative has its own) or "rot180".
  Its random stream is its own (a ``keras.random.SeedGenerator``), not numpy's: the same seed
  gives the same batches on one backend, not the host sampler's batches.
- :class:`DeviceDenoisingSampler` draws (noisy, clean) pairs as
  :class:`~nhpatches.train.batches.DenoisingBatches`: random (point, image) patches, or with
  ``steps=None`` one shuffled pass over every patch per epoch (the permutation is drawn on the
  host once per epoch with the host sampler's generator, so the order is the host sampler's).
- :class:`SampledTrainer` wraps a network and a sampler for ``Model.fit``: its training input is
  a placeholder (:class:`DeviceSteps`), its validation input real host batches (frozen, as on
  the host path), so validation losses are comparable across the two paths.

The other accelerator settings of a :class:`~nhpatches.core.config.Profile` (``precision_policy``,
``resolve_jit_compile``, ``data_parallel``) are in :mod:`.accelerator`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from nhpatches.core.config import IMAGE_TYPES
from nhpatches.nets import losses
from nhpatches.train.batches import DenoisingBatches, check_batch_settings

#: Images per sequence (the second axis of a bank).
NUM_IMAGES = len(IMAGE_TYPES)
#: Profile.mixed_precision values and the Keras dtype policy each one sets while building.


def _check_bank(patches: np.ndarray, what: str) -> np.ndarray:
    """A (points, 16, P, P) uint8 bank flattened to (points * 16, P, P) (row = point * 16 + image)."""
    patches = np.asarray(patches)
    if patches.ndim != 4 or patches.shape[1] != NUM_IMAGES or patches.dtype != np.uint8:
        raise ValueError(
            f"{what} must be uint8 of shape (points, {NUM_IMAGES}, P, P), got {patches.dtype} {patches.shape}"
        )
    return np.ascontiguousarray(patches.reshape((-1, *patches.shape[2:])))


def flip_table(patch_size: int) -> np.ndarray:
    """Pixel permutations of the 4 flip codes: row c maps output pixel k to input pixel table[c, k].

    Shape: (4, P * P) int32, pixels in row-major order.
    """
    r = np.arange(patch_size)
    tables = []
    for code in range(4):
        rows = r[::-1] if code & 2 else r
        cols = r[::-1] if code & 1 else r
        tables.append((rows[:, None] * patch_size + cols[None, :]).ravel())
    return np.stack(tables).astype(np.int32)


def flip_tensor(patches, codes):
    """``batches.flip_patches`` with keras.ops: code 0 none, 1 left-right, 2 up-down, 3 both (180°).

    One gather of each patch's pixels through its code's permutation (see flip_table): XLA on
    CPU recomputes a ``where`` of two flipped copies per pixel, 30 times slower.
    Shape: (B, P, P) any dtype, (B,) int -> (B, P, P)
    """
    size = int(patches.shape[1])
    if patches.shape[2] != size:
        raise ValueError(f"patches must be square (B, P, P), got {tuple(patches.shape)}")
    index = ops.take(ops.convert_to_tensor(flip_table(size)), codes, axis=0)
    flat = ops.reshape(patches, (-1, size * size))
    return ops.reshape(ops.take_along_axis(flat, index, axis=1), (-1, size, size))


def _to_model_input(patches):
    """uint8 patches to the models' float32 0..255 input with a channel axis. (B, P, P) -> (B, P, P, 1)."""
    return ops.expand_dims(ops.cast(patches, "float32"), -1)


def _shard_batch(tensor):
    """Lay a batch out along the data axis of the active distribution (no-op without one)."""
    distribution = keras.distribution.distribution()
    if distribution is None:
        return tensor
    return keras.distribution.distribute_tensor(tensor, distribution.get_data_layout(tuple(tensor.shape)))


class DeviceTripletSampler(keras.layers.Layer):
    """Descriptor batches drawn on the device, as :class:`~nhpatches.train.batches.TripletBatches` defines them.

    ``patches`` is one source of a bank (clean, noisy or denoised), uint8 (points, 16, P, P); it
    becomes a non-trainable device variable. mode "triplet" gives (anchor, positive, negative),
    "pair" (anchor, positive). Calling the layer (its input is ignored) draws one batch.
    Shape: call -> 3 (or 2) x (B, P, P, 1) float32 in 0..255.
    """

    def __init__(
        self, patches: np.ndarray, batch_size: int, mode: str = "triplet", flip: str = "none", seed: int = 0, **kwargs
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        flat = _check_bank(patches, "patches")
        points = flat.shape[0] // NUM_IMAGES
        check_batch_settings(mode, flip, batch_size, points)
        if flip == "d4":
            raise ValueError(
                "flip 'd4' (the 8 symmetries of the square) is drawn on the host only; use device_sampling=False"
            )
        self.num_points, self.batch_size, self.mode, self.flip = points, batch_size, mode, flip
        self.patch_shape = tuple(flat.shape[1:])
        self.bank = keras.Variable(flat, dtype="uint8", trainable=False, name="bank")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True  # all state exists from here on

    def _randint(self, low: int, high: int):
        """(B,) int32 uniform in [low, high)."""
        return keras.random.randint((self.batch_size,), low, high, dtype="int32", seed=self.seed_generator)

    def _flip_codes(self):
        """(B,) int32 flip codes: random 0..3, all 3 (rot180) or all 0."""
        if self.flip == "random":
            return self._randint(0, 4)
        return ops.full((self.batch_size,), 3 if self.flip == "rot180" else 0, dtype="int32")

    def draw(self) -> dict:
        """One batch's indices, each (B,) int32: point, first, second, negative, negative_image, flip, negative_flip.

        The B points are distinct: the top B of uniform noise over all points (a uniformly random
        B-subset, in random order).
        """
        noise = keras.random.uniform((self.num_points,), seed=self.seed_generator)
        point = ops.cast(ops.top_k(noise, self.batch_size, sorted=False)[1], "int32")
        first = self._randint(0, NUM_IMAGES)
        second = (first + self._randint(1, NUM_IMAGES)) % NUM_IMAGES
        negative = (point + self._randint(1, self.num_points)) % self.num_points
        return {
            "point": point,
            "first": first,
            "second": second,
            "negative": negative,
            "negative_image": self._randint(0, NUM_IMAGES),
            "flip": self._flip_codes(),
            "negative_flip": self._flip_codes(),
        }

    def gather(self, point, image, codes):
        """Patches (point, image) of the bank, flipped by code. Shape: 3 x (B,) -> (B, P, P, 1) float32."""
        patches = ops.take(self.bank, point * NUM_IMAGES + image, axis=0)
        if self.flip != "none":
            patches = flip_tensor(patches, codes)
        return _shard_batch(_to_model_input(patches))

    def sample(self, plan: dict) -> tuple:
        """The batch of a plan from :meth:`draw`. Shape: 3 (or 2) x (B, P, P, 1) float32."""
        out = [
            self.gather(plan["point"], plan["first"], plan["flip"]),
            self.gather(plan["point"], plan["second"], plan["flip"]),
        ]
        if self.mode == "triplet":
            out.append(self.gather(plan["negative"], plan["negative_image"], plan["negative_flip"]))
        return tuple(out)

    def call(self, inputs=None):
        """Draw and gather one batch (``inputs`` is a placeholder and is ignored)."""
        return self.sample(self.draw())

    def compute_output_spec(self, inputs=None):
        """Symbolic batch: 3 (or 2) x (B, P, P, 1) float32."""
        shape = (self.batch_size, *self.patch_shape, 1)
        return tuple(keras.KerasTensor(shape, "float32") for _ in range(3 if self.mode == "triplet" else 2))


class DeviceDenoisingSampler(keras.layers.Layer):
    """(noisy, clean) denoiser batches drawn on the device, as :class:`~nhpatches.train.batches.DenoisingBatches`.

    With ``steps`` an int, each batch is B random (point, image) patches; with ``steps=None`` an
    epoch is one shuffled pass over every patch: call :meth:`start_epoch` before each epoch (the
    :class:`EpochPlan` callback does) to draw its permutation, with the host sampler's generator.
    Shape: call -> 2 x (B, P, P, 1) float32 in 0..255.
    """

    def __init__(
        self, noisy: np.ndarray, clean: np.ndarray, batch_size: int, steps: int | None, seed: int = 0, **kwargs
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        noisy_flat, clean_flat = _check_bank(noisy, "noisy patches"), _check_bank(clean, "clean patches")
        if noisy_flat.shape != clean_flat.shape:
            raise ValueError(f"noisy and clean banks differ in shape: {noisy.shape} vs {clean.shape}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        total = noisy_flat.shape[0]
        self.full_pass = steps is None
        if self.full_pass:
            steps = total // batch_size
            if steps < 1:
                raise ValueError(f"one pass over the bank's {total} patches is less than one batch of {batch_size}")
        assert steps is not None
        self.batch_size, self.steps, self.seed, self.total = batch_size, int(steps), seed, total
        self.patch_shape = tuple(noisy_flat.shape[1:])
        self.noisy = keras.Variable(noisy_flat, dtype="uint8", trainable=False, name="noisy")
        self.clean = keras.Variable(clean_flat, dtype="uint8", trainable=False, name="clean")
        self.seed_generator = keras.random.SeedGenerator(seed)
        if self.full_pass:
            self.order = keras.Variable(
                np.zeros(self.steps * batch_size, np.int32), dtype="int32", trainable=False, name="order"
            )
            self.position = keras.Variable(0, dtype="int32", trainable=False, name="position")
            self.start_epoch(0)
        self.built = True  # all state exists from here on

    def start_epoch(self, epoch: int) -> None:
        """Full-pass mode: draw epoch ``epoch``'s permutation (host, once per epoch) and restart it."""
        if self.full_pass:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.total)[: self.steps * self.batch_size]
            self.order.assign(order.astype(np.int32))
            self.position.assign(0)

    def call(self, inputs=None):
        """Draw and gather one batch (``inputs`` is a placeholder and is ignored)."""
        if self.full_pass:
            start = (self.position % self.steps) * self.batch_size
            index = ops.take(self.order, start + ops.arange(self.batch_size, dtype="int32"), axis=0)
            self.position.assign(self.position + 1)
        else:
            index = keras.random.randint((self.batch_size,), 0, self.total, dtype="int32", seed=self.seed_generator)
        return tuple(_shard_batch(_to_model_input(ops.take(bank, index, axis=0))) for bank in (self.noisy, self.clean))

    def compute_output_spec(self, inputs=None):
        """Symbolic batch: 2 x (B, P, P, 1) float32."""
        shape = (self.batch_size, *self.patch_shape, 1)
        return keras.KerasTensor(shape, "float32"), keras.KerasTensor(shape, "float32")


class EpochPlan(keras.callbacks.Callback):
    """Calls ``sampler.start_epoch(epoch)`` before each epoch (full-pass denoiser sampling)."""

    def __init__(self, sampler: DeviceDenoisingSampler) -> None:
        super().__init__()
        self.sampler = sampler

    def on_epoch_begin(self, epoch, logs=None) -> None:
        """Plan the sampler's epoch."""
        self.sampler.start_epoch(epoch)


class SampledTrainer(keras.Model):
    """Training wrapper whose batches come from a device sampler; validation takes host batches.

    kind "triplet" / "pair": the shared descriptor on each patch, outputs stacked (B, 3|2, D) for
    the losses of :mod:`nhpatches.nets.losses`. kind "denoise": (B, P, P, 2), the denoised patch and
    its clean target along the channel axis, for :class:`StackedTargetLoss`.
    Input: a (rows, 1) placeholder (training; the sampler draws the batch) or a tuple of
    (B, P, P, 1) patch batches: (anchor, positive[, negative]) or (noisy, clean) (validation).
    Outputs are float32 whatever the network's dtype policy.
    """

    def __init__(self, network: keras.Model, sampler: keras.layers.Layer, kind: str, **kwargs) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if kind not in ("triplet", "pair", "denoise"):
            raise ValueError(f"kind must be 'triplet', 'pair' or 'denoise', got {kind!r}")
        self.network, self.sampler, self.kind = network, sampler, kind

    def call(self, inputs, training=False):
        """Draw (or take) a batch and run the network on it."""
        patches = tuple(inputs) if isinstance(inputs, (list, tuple)) else self.sampler(inputs)
        if self.kind == "denoise":
            noisy, clean = patches
            return ops.concatenate(
                [ops.cast(self.network(noisy, training=training), "float32"), ops.cast(clean, "float32")], axis=-1
            )
        return ops.stack([ops.cast(self.network(p, training=training), "float32") for p in patches], axis=1)


class DeviceSteps(keras.utils.PyDataset):
    """``steps`` placeholder items per epoch for a :class:`SampledTrainer` (the sampler draws the batch).

    ``batch_size`` is the size of the batch drawn on the device (for the patch counts);
    ``rows`` the placeholder's rows (the data-parallel device count, so it shards).
    Shape: item ((rows, 1) float32 zeros, (rows,) float32 zeros).
    """

    def __init__(self, steps: int, batch_size: int, rows: int = 1) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        if steps < 1 or batch_size < 1 or rows < 1:
            raise ValueError(f"steps, batch_size and rows must be >= 1, got {steps}, {batch_size}, {rows}")
        self.steps, self.batch_size = steps, batch_size
        self._item = (np.zeros((rows, 1), np.float32), np.zeros(rows, np.float32))

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self._item


class TargetsAsInputs(keras.utils.PyDataset):
    """Host denoiser batches as a :class:`SampledTrainer` validates on: ((noisy, clean), zeros).

    Shape: item (((B, P, P, 1), (B, P, P, 1)), (B,)).
    """

    def __init__(self, batches: DenoisingBatches) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.batches, self.batch_size = batches, batches.batch_size

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int):
        noisy, clean = self.batches[index]
        return (noisy, clean), np.zeros(len(clean), np.float32)

    def on_epoch_end(self) -> None:
        """Let the wrapped batches draw their next epoch."""
        self.batches.on_epoch_end()


def _split_stacked(y_pred):
    """(prediction, target) of a denoise SampledTrainer's output. (B, P, P, 2) -> 2 x (B, P, P, 1)."""
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) != 4 or y_pred.shape[-1] != 2:
        raise ValueError(f"y_pred must have shape (B, P, P, 2) (prediction, target), got {tuple(y_pred.shape)}")
    return y_pred[..., :1], y_pred[..., 1:]


def stacked_mae(y_true, y_pred):
    """Per-patch MAE of a (prediction, target) stack; y_true ignored. (B, P, P, 2) -> (B,)."""
    prediction, target = _split_stacked(y_pred)
    return losses.mean_absolute_error(target, prediction)


def stacked_mse(y_true, y_pred):
    """Per-patch MSE of a (prediction, target) stack; y_true ignored. (B, P, P, 2) -> (B,)."""
    prediction, target = _split_stacked(y_pred)
    return losses.mean_squared_error(target, prediction)


class StackedTargetLoss(keras.losses.Loss):
    """Denoiser loss ("mae", R Eq. 1, or "mse", R Eq. 3) when the target travels in y_pred (B, P, P, 2)."""

    def __init__(self, kind: str = "mae", name: str | None = None, **kwargs) -> None:
        if kind not in ("mae", "mse"):
            raise ValueError(f"unknown denoiser loss {kind!r}; expected 'mae' or 'mse'")
        super().__init__(name=name or f"stacked_{kind}", **kwargs)
        self.kind = kind

    def call(self, y_true, y_pred):
        """Per-patch losses. Shape: (B, P, P, 2) -> (B,)."""
        return (stacked_mae if self.kind == "mae" else stacked_mse)(y_true, y_pred)


def stacked_metrics() -> list[keras.metrics.Metric]:
    """The denoisers' "mae" and "mse" metrics for a denoise SampledTrainer (same history names)."""
    return [
        keras.metrics.MeanMetricWrapper(stacked_mae, name="mae"),
        keras.metrics.MeanMetricWrapper(stacked_mse, name="mse"),
    ]
