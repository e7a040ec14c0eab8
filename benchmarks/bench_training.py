"""Training throughput of every model, the input pipeline's own rate, and one evaluation's time.

For each model this times a few epochs of ``fit`` on synthetic patches (after one
warm-up epoch that compiles the graph) and, separately, the sampler alone drawing
batches of the same kind with no model. It prints patches fed per second (anchor,
positive and negative all count), the sampler's patches per second and their ratio,
which must stay far above 1 (the target is 20x) so training runs at the compute bound.

The profile chooses the sampler and the precision: ``cpu``/``smoke`` use the host samplers
(nhpatches.batches) in float32; ``gpu`` draws batches on the device inside the compiled step
(nhpatches.device_sampling), in bf16 with jit_compile. ``--sampler``, ``--precision`` and
``--jit`` override them. A device sampler is timed by a compiled function that draws 10
batches per call and reads every patch (a sum), so Keras' per-call overhead is amortised.

``--reference`` also times a faithful re-implementation of the coursework's descriptor
training loop (MatchLab-Imperial/keras_triplet_descriptor, Baseline_code.ipynb: a Sequence
building each batch patch by patch in float64, triplets regenerated in Python each epoch,
the loss as a Lambda layer fitted with MAE against zeros, SGD 0.1) and prints the baseline's
speed relative to it.

Against the hardware: each model's FLOPs per training step come from its layer shapes
(:mod:`nhpatches.nets.cost`: conv and dense MACs x 2 forward, the backward pass counted as 2x the
forward, so a step is 3x the forward FLOPs of the patches it feeds; batch norm, activations and the
loss are left out). Divided by the measured step time this gives the achieved GFLOP/s; the last
lines give its share of the machine's peak: the best rate of a 2048 x 2048 x 2048 float32 matrix
product timed in the same run (at its start and at its end, through numpy and through the backend's
``keras.ops.matmul``; the best of the four). ``release`` is the shipped
descriptor's training (``nhpatches.pretrained.recipe``: the HardNet network on pairs with the
hardest-negative loss, batch 512 unless ``--batch``); it is not in the default model list.

It ends with the time of one pipeline evaluation (all three HPatches tasks) at the
profile's test-set scale, on random descriptors; `bench_evaluation.py` covers the full
split-a scale against a reference-style loop. ``--json PATH`` writes every figure.

    python benchmarks/bench_training.py [--steps 20] [--models unet dncnn baseline hard release] [--batch 50]
        [--profile cpu|gpu|smoke] [--sampler host|device] [--precision float32|bf16] [--reference] [--json F]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from pathlib import Path
from types import SimpleNamespace

from nhpatches.core.backend import quiet_tensorflow  # isort: skip

quiet_tensorflow()  # before Keras loads TensorFlow: no C++ start-up lines

import keras
import numpy as np
from keras import ops

from nhpatches import evaluation
from nhpatches.core import config
from nhpatches.data import tasks
from nhpatches.nets import cost, specs
from nhpatches.pretrained import recipe as release_recipe
from nhpatches.train import training
from nhpatches.train.accelerator import precision_policy, resolve_jit_compile
from nhpatches.train.batches import (
    DenoisingBatches,
    PatchBank,
    TripletBatches,
    bank_from_sequences,
)
from nhpatches.train.device import DeviceSteps

MODELS = {
    "unet": specs.DENOISERS["unet"],
    "dncnn": specs.DENOISERS["dncnn_adam"],
    "baseline": specs.DESCRIPTORS["baseline"],
    "updated": specs.DESCRIPTORS["updated"],
    "deep": specs.DESCRIPTORS["deep"],
    "hard": specs.DESCRIPTORS["hard"],
    "hardnet": specs.DESCRIPTORS["hardnet_flip"],
    "release": release_recipe.release_spec(release_recipe.RECIPES["cpu"]),
}
#: Batch sizes that do not come from the profile: the release recipe's pairs per step.
MODEL_BATCH = {"release": release_recipe.RECIPES["cpu"].batch_size}
#: Models timed unless --models names others (release takes minutes per epoch on a small CPU).
DEFAULT_MODELS = [name for name in MODELS if name != "release"]
#: Side of the square float32 matrix product whose best rate stands for the machine's peak.
PEAK_MATMUL_SIZE = 2048


def synthetic_bank(points: int, seed: int = 0) -> PatchBank:
    """A bank of random-texture patches (content does not change the speed)."""
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 256, (16, points, config.PATCH_SIZE, config.PATCH_SIZE), dtype=np.uint8)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    return bank_from_sequences({"v_synthetic": SimpleNamespace(clean=clean, noisy=noisy)})


def make_data(spec: object, bank: PatchBank, profile: config.Profile, steps: int, batch: int | None = None):
    """(trainer, batches, patches per item) for one spec under the profile's sampler, precision and jit.

    ``batch`` overrides the profile's batch size. With device sampling ``batches`` is a
    DeviceSteps placeholder and the trainer (a SampledTrainer) holds the sampler.
    """
    jit = resolve_jit_compile(profile.jit_compile)
    with precision_policy(profile.mixed_precision):
        if isinstance(spec, specs.DenoiserSpec):
            size = batch or (profile.dncnn_batch_size if spec.architecture == "dncnn" else profile.denoiser_batch_size)
            if profile.device_sampling:
                _, trainer = training.build_sampled_denoiser_trainer(spec, bank, size, steps, 0, jit)
                return trainer, DeviceSteps(steps, size), 1
            return training.build_denoiser(spec, jit), DenoisingBatches(bank, size, steps), 1
        mode = specs.descriptor_mode(spec)
        size = batch or profile.batch_size
        per_item = 3 if mode == "triplet" else 2
        if profile.device_sampling:
            _, trainer = training.build_sampled_descriptor_trainer(spec, bank.clean, size, 0, jit_compile=jit)
            return trainer, DeviceSteps(steps, size), per_item
        _, trainer = training.build_descriptor_trainer(spec, jit_compile=jit)
        return trainer, TripletBatches(bank, size, steps, mode=mode, flip=spec.flip), per_item


class SamplerProbe(keras.Model):
    """A device sampler alone: each call draws ``repeat`` batches and sums every patch (so none is skipped).

    Shape: (rows, 1) placeholder -> (rows,) float32.
    """

    def __init__(self, sampler: keras.layers.Layer, repeat: int = 10) -> None:
        super().__init__(dtype="float32")
        self.sampler, self.repeat = sampler, repeat

    def call(self, inputs):
        """Draw ``repeat`` batches and return their pixel sum broadcast over the rows (keeps them computed)."""
        total = ops.zeros((), "float32")
        for _ in range(self.repeat):
            for patches in self.sampler(inputs):
                total = total + ops.sum(patches)
        return ops.zeros_like(inputs[:, 0]) + total


def time_device_sampler(trainer, batches: DeviceSteps, per_item: int, epochs: int, jit) -> float:
    """Patches per second of a SampledTrainer's sampler alone (as many batches as ``epochs`` epochs, at least 200)."""
    probe = SamplerProbe(trainer.sampler)
    probe.compile(jit_compile=jit)
    calls = max(20, epochs * len(batches) // probe.repeat)  # at least 200 batches: per-call overhead amortised
    probe.predict(DeviceSteps(1, batches.batch_size), verbose=0)  # warm-up: compilation
    start = time.perf_counter()
    probe.predict(DeviceSteps(calls, batches.batch_size), verbose=0)
    seconds = time.perf_counter() - start
    return calls * probe.repeat * batches.batch_size * per_item / seconds


def network_of(trainer: keras.Model) -> keras.Model:
    """The network a trainer trains: the shared descriptor inside a pair / triplet trainer, else the model itself."""
    nested = [layer for layer in trainer.layers if isinstance(layer, keras.Model)]
    return nested[0] if len(nested) == 1 else trainer


def matmul_peak(size: int = PEAK_MATMUL_SIZE, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a (size x size) @ (size x size) float32 product, best of ``repeats`` after a warm-up.

    Measured through numpy (its BLAS threads, and one BLAS thread when threadpoolctl is there: on cores shared
    with other jobs, BLAS threads that wait for each other can be slower than one), and through the
    backend's keras.ops.matmul (its result reduced to one number before it is read, so the
    device-to-host copy does not count).
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    x, y = ops.convert_to_tensor(a), ops.convert_to_tensor(b)
    calls = {
        "numpy": lambda: a @ b,
        keras.backend.backend(): lambda: ops.convert_to_numpy(ops.sum(ops.matmul(x, y))),
    }
    try:
        from threadpoolctl import threadpool_limits

        def one_thread() -> None:
            with threadpool_limits(limits=1, user_api="blas"):
                a @ b

        calls["numpy, 1 BLAS thread"] = one_thread
    except ImportError:
        pass
    rates = {}
    for name, call in calls.items():
        call()
        best = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
        rates[name] = 2 * size**3 / best / 1e9
    return rates


def time_pipeline(batches, epochs: int) -> float:
    """Seconds to draw every batch of ``epochs`` epochs with no model."""
    start = time.perf_counter()
    for _ in range(epochs):
        for index in range(len(batches)):
            batches[index]
        batches.on_epoch_end()
    return time.perf_counter() - start


def reference_generate_triplets(labels: np.ndarray, num_triplets: int, batch_size: int) -> np.ndarray:
    """The coursework's read_data.generate_triplets, as written (Python loop, np.random), tqdm left out."""

    def create_indices(_labels):
        inds = {}
        for idx, ind in enumerate(_labels):
            if ind not in inds:
                inds[ind] = []
            inds[ind].append(idx)
        return inds

    triplets = []
    indices = create_indices(np.asarray(labels))
    n_classes = np.unique(np.asarray(labels)).shape[0]
    already_idxs = set()
    for _ in range(num_triplets):
        if len(already_idxs) >= batch_size:
            already_idxs = set()
        c1 = np.random.randint(0, n_classes)
        while c1 in already_idxs:
            c1 = np.random.randint(0, n_classes)
        already_idxs.add(c1)
        c2 = np.random.randint(0, n_classes)
        while c1 == c2:
            c2 = np.random.randint(0, n_classes)
        if len(indices[c1]) == 2:
            n1, n2 = 0, 1
        else:
            n1 = np.random.randint(0, len(indices[c1]))
            n2 = np.random.randint(0, len(indices[c1]))
            while n1 == n2:
                n2 = np.random.randint(0, len(indices[c1]))
        n3 = np.random.randint(0, len(indices[c2]))
        triplets.append([indices[c1][n1], indices[c1][n2], indices[c2][n3]])
    return np.array(triplets)


class ReferenceTriplets(keras.utils.PyDataset):
    """The coursework's DataGeneratorDesc: per-patch float64 copies into dict inputs {'a','p','n'}, y zeros (B, 1)."""

    def __init__(self, data: np.ndarray, labels: np.ndarray, num_triplets: int, batch_size: int = 50) -> None:
        super().__init__()
        self.data, self.labels, self.num_triplets, self.batch_size = data, labels, num_triplets, batch_size
        self.dim, self.n_channels = (32, 32), 1
        self.on_epoch_end()

    def get_image(self, t):
        """The three patches of triplet ``t`` as float (32, 32, 1) arrays."""
        img_a = np.expand_dims(self.data[t[0]].astype(float), -1)
        img_p = np.expand_dims(self.data[t[1]].astype(float), -1)
        img_n = np.expand_dims(self.data[t[2]].astype(float), -1)
        return img_a, img_p, img_n

    def __len__(self) -> int:
        return int(np.floor(len(self.triplets) / self.batch_size))

    def __getitem__(self, index: int):
        y = np.zeros((self.batch_size, 1))
        img_a = np.empty((self.batch_size, *self.dim, self.n_channels))
        img_p = np.empty((self.batch_size, *self.dim, self.n_channels))
        img_n = np.empty((self.batch_size, *self.dim, self.n_channels))
        for i in range(self.batch_size):
            t = self.triplets[self.batch_size * index + i]
            img_a[i], img_p[i], img_n[i] = self.get_image(t)
        return {"a": img_a, "p": img_p, "n": img_n}, y

    def on_epoch_end(self) -> None:
        """Draw a new epoch of triplets, as the coursework's generator does."""
        self.triplets = reference_generate_triplets(self.labels, self.num_triplets, 32)


def reference_trainer() -> keras.Model:
    """The coursework's get_descriptor_model + Lambda(triplet_loss) trainer, compiled with MAE and SGD 0.1."""
    layers = keras.layers
    init = keras.initializers.HeNormal()
    model = keras.Sequential([keras.Input((32, 32, 1))])
    for filters, stride in [(32, 1), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1)]:
        model.add(layers.Conv2D(filters, 3, padding="same", strides=stride, use_bias=True, kernel_initializer=init))
        model.add(layers.BatchNormalization(axis=-1))
        model.add(layers.Activation("relu"))
    model.add(layers.Dropout(0.3))
    model.add(layers.Conv2D(128, 8, padding="valid", use_bias=True, kernel_initializer=init))
    model.add(layers.Reshape((128,)))

    def triplet_loss(x):
        a, p, n = x
        positive_distance = ops.mean(ops.square(a - p), axis=-1)
        negative_distance = ops.mean(ops.square(a - n), axis=-1)
        return ops.expand_dims(ops.maximum(0.0, positive_distance - negative_distance + 1.0), axis=1)

    inputs = [keras.Input((32, 32, 1), name=name) for name in "apn"]
    loss = layers.Lambda(triplet_loss, output_shape=(1,))([model(x) for x in inputs])
    trainer = keras.Model(inputs=inputs, outputs=loss)
    trainer.compile(loss="mean_absolute_error", optimizer=keras.optimizers.SGD(learning_rate=0.1))
    return trainer


def time_reference(bank: PatchBank, steps: int, epochs: int, batch: int) -> float:
    """Patches per second of the coursework's descriptor training loop (after a one-epoch warm-up)."""
    np.random.seed(1234)
    random.seed(1234)
    data = bank.clean.reshape((-1, *bank.clean.shape[2:]))  # every patch, labelled by its 3-D point
    labels = np.repeat(np.arange(bank.num_points), bank.clean.shape[1])
    generator = ReferenceTriplets(data, labels, steps * batch, batch)
    trainer = reference_trainer()
    trainer.fit(generator, epochs=1, verbose=0)
    start = time.perf_counter()
    trainer.fit(generator, epochs=epochs, verbose=0)
    return epochs * len(generator) * batch * 3 / (time.perf_counter() - start)


def time_evaluation(profile: config.Profile, num_sequences: int = 14, seed: int = 0) -> tuple[float, dict]:
    """Seconds to evaluate random 128-d descriptors at the profile's test scale, and the task counts."""
    rng = np.random.default_rng(seed)
    points = profile.test_patches or 1500
    sizes = {f"{'iv'[i % 2]}_scene{i}": points for i in range(num_sequences)}
    taskset = tasks.generate_tasks(
        sizes,
        "a",
        seed,
        profile.num_pairs,
        min(profile.num_queries, num_sequences * points // 3),
        profile.num_distractors,
    )
    descriptors = {}
    for name, count in sizes.items():
        base = rng.standard_normal((1, count, 128)).astype(np.float32)
        descriptors[name] = base + 0.7 * rng.standard_normal((16, count, 128)).astype(np.float32)
    start = time.perf_counter()
    evaluation.evaluate(descriptors, taskset, progress=False)
    return time.perf_counter() - start, taskset.provenance["counts"]


#: One H200's targets (issue 10), reported against by the gpu check: patches per second, bf16.
GPU_TARGETS = {"descriptor": 300_000, "unet": 200_000}


def main() -> None:
    """Print one line per model (and write them to --json)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up epoch)")
    parser.add_argument(
        "--profile", default="cpu", help="batch sizes, sampler, precision and jit come from this profile"
    )
    parser.add_argument("--models", nargs="*", default=DEFAULT_MODELS, choices=list(MODELS))
    parser.add_argument(
        "--batch", type=int, default=None, help="batch size for every model (default: the profile's; release: 512)"
    )
    parser.add_argument("--sampler", choices=("host", "device"), default=None, help="override the profile's sampler")
    parser.add_argument("--precision", choices=("float32", "bf16"), default=None, help="override the profile's")
    parser.add_argument("--jit", choices=("true", "false", "auto"), default=None, help="override the profile's")
    parser.add_argument("--points", type=int, default=2048, help="3-D points in the synthetic bank")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also time the coursework's descriptor training loop (baseline model, same batch)",
    )
    parser.add_argument("--no-evaluation", action="store_true", help="skip the evaluation timing")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = parser.parse_args()
    overrides = {}
    if args.sampler:
        overrides["device_sampling"] = args.sampler == "device"
    if args.precision:
        overrides["mixed_precision"] = None if args.precision == "float32" else "bf16"
    if args.jit:
        overrides["jit_compile"] = {"true": True, "false": False, "auto": "auto"}[args.jit]
    profile = config.get_profile(args.profile, **overrides)
    bank = synthetic_bank(args.points)
    sampler_kind = "device" if profile.device_sampling else "host"
    precision = profile.mixed_precision or "float32"
    print(
        f"backend {keras.backend.backend()}, profile {profile.name}, sampler {sampler_kind}, precision {precision}, "
        f"jit {profile.jit_compile}, {args.steps} steps x {args.epochs} epochs"
    )
    peaks = matmul_peak()
    print(
        f"peak: float32 matmul {PEAK_MATMUL_SIZE}^3, best of 5: "
        + ", ".join(f"{name} {rate:.0f} GFLOP/s" for name, rate in peaks.items())
    )
    print(
        f"{'model':<10}{'batch':>7}{'patches/s':>12}{'step ms':>10}{'GFLOP/step':>12}{'GFLOP/s':>9}"
        f"{'sampler patches/s':>19}{'ratio':>9}"
    )
    rows = []
    result = {
        "backend": keras.backend.backend(),
        "profile": dataclasses.asdict(profile),
        "sampler": sampler_kind,
        "precision": precision,
        "steps": args.steps,
        "epochs": args.epochs,
        "models": rows,
        "peak_gflops": peaks,
        "flops_convention": "conv/dense MACs x 2 forward; training step = 3 x forward (backward = 2 x forward)",
    }

    def write(result: dict) -> None:
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(result, indent=2, default=str))

    for name in args.models:
        model, batches, per_item = make_data(
            MODELS[name], bank, profile, args.steps, args.batch or MODEL_BATCH.get(name)
        )
        model.fit(batches, epochs=1, verbose=0)  # warm-up: graph compilation
        start = time.perf_counter()
        model.fit(batches, epochs=args.epochs, verbose=0)
        seconds = time.perf_counter() - start
        steps = args.epochs * len(batches)
        fed = steps * batches.batch_size * per_item
        if profile.device_sampling:
            sampler_rate = time_device_sampler(
                model, batches, per_item, args.epochs, resolve_jit_compile(profile.jit_compile)
            )
        else:
            sampler_rate = fed / time_pipeline(batches, args.epochs)
        rate = fed / seconds
        step_flops = cost.training_step_flops(network_of(model), batches.batch_size * per_item)
        achieved = step_flops * steps / seconds / 1e9
        rows.append(
            {
                "model": name,
                "batch": batches.batch_size,
                "patches_per_s": rate,
                "step_ms": 1000 * seconds / steps,
                "gflop_per_step": step_flops / 1e9,
                "gflops": achieved,
                "sampler_patches_per_s": sampler_rate,
                "sampler_ratio": sampler_rate / rate,
            }
        )
        print(
            f"{name:<10}{batches.batch_size:>7}{rate:>12.0f}{1000 * seconds / steps:>10.1f}"
            f"{step_flops / 1e9:>12.1f}{achieved:>9.1f}"
            f"{sampler_rate:>19.0f}{sampler_rate / rate:>8.0f}x",
            flush=True,
        )
        write(result)  # after every model, so a run stopped by a time limit keeps what it measured
    if profile.name == "gpu":
        result["targets"] = {}
        for row in rows:
            target = (
                GPU_TARGETS["unet"]
                if row["model"] == "unet"
                else (
                    GPU_TARGETS["descriptor"]
                    if row["model"] in ("baseline", "updated", "deep", "hard", "hardnet")
                    else None
                )
            )
            if target:
                result["targets"][row["model"]] = {"target": target, "met": row["patches_per_s"] >= target}
                print(
                    f"target {row['model']}: {row['patches_per_s']:.0f} patches/s vs {target} "
                    f"({'met' if row['patches_per_s'] >= target else 'NOT met'})"
                )
    if args.reference:
        batch = args.batch or profile.batch_size
        reference = time_reference(bank, args.steps, args.epochs, batch)
        ours = next((row["patches_per_s"] for row in rows if row["model"] == "baseline"), None)
        gflops = reference * cost.TRAINING_STEP_FACTOR * cost.forward_flops(network_of(reference_trainer())) / 1e9
        result["reference"] = {
            "batch": batch,
            "patches_per_s": reference,
            "gflops": gflops,
            "baseline_patches_per_s": ours,
        }
        line = (
            f"coursework reference loop (baseline descriptor, batch {batch}): {reference:.0f} patches/s, "
            f"{gflops:.1f} GFLOP/s"
        )
        if ours is not None:
            result["reference"]["baseline_over_reference"] = ours / reference
            line += f"; baseline here {ours:.0f} patches/s = {ours / reference:.2f}x the reference"
        print(line)
    peaks_end = matmul_peak()
    result["peak_gflops_end"] = peaks_end
    print(
        "peak again at the end: "
        + ", ".join(f"{name} {rate:.0f} GFLOP/s" for name, rate in peaks_end.items())
        + " (a drop means other work shared the cores during the run)"
    )
    best_name, peak = max(((n, r) for p in (peaks, peaks_end) for n, r in p.items()), key=lambda item: item[1])
    result["peak"] = {"gflops": peak, "through": best_name}
    shares = {row["model"]: row["gflops"] for row in rows}
    if "reference" in result:
        shares["coursework reference"] = result["reference"]["gflops"]
    print(
        f"against the hardware (peak {peak:.0f} GFLOP/s: the best {PEAK_MATMUL_SIZE}^3 float32 matmul of the run, "
        f"through {best_name}): "
        + ", ".join(f"{name} {gflops:.1f} GFLOP/s = {gflops / peak:.0%}" for name, gflops in shares.items())
    )
    for row in rows:
        row["share_of_peak"] = row["gflops"] / peak
    if not args.no_evaluation:
        seconds, counts = time_evaluation(profile)
        result["evaluation_seconds"] = seconds
        print(f"evaluation of one pipeline at {args.profile} scale ({counts}): {seconds:.2f} s")
    write(result)


if __name__ == "__main__":
    main()
