"""Training throughput of every model, the input pipeline's share, and one evaluation's time.

For each model this times a few epochs of ``fit`` on synthetic patches (after one
warm-up epoch that compiles the graph) and, separately, drawing the same batches
with no model at all. It prints patches fed per second (anchor, positive and
negative all count) and the share of a step the input pipeline would take: it must
stay a small fraction so training runs at the compute bound.

It ends with the time of one pipeline evaluation (all three HPatches tasks) at the
profile's test-set scale, on random descriptors; `bench_evaluation.py` covers the full
split-a scale against a reference-style loop.

    python benchmarks/bench_training.py [--steps 20] [--models unet dncnn baseline hard] [--batch 50]
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np

from nhpatches import config, evaluation, tasks, training
from nhpatches.batches import DenoisingBatches, PatchBank, TripletBatches, bank_from_sequences

MODELS = {
    "unet": training.DENOISERS["unet"],
    "dncnn": training.DENOISERS["dncnn_adam"],
    "baseline": training.DESCRIPTORS["baseline"],
    "updated": training.DESCRIPTORS["updated"],
    "deep": training.DESCRIPTORS["deep"],
    "hard": training.DESCRIPTORS["hard"],
    "hardnet": training.DESCRIPTORS["hardnet_flip"],
}


def synthetic_bank(points: int, seed: int = 0) -> PatchBank:
    """A bank of random-texture patches (content does not change the speed)."""
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 256, (16, points, config.PATCH_SIZE, config.PATCH_SIZE), dtype=np.uint8)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    return bank_from_sequences({"v_synthetic": SimpleNamespace(clean=clean, noisy=noisy)})


def make_data(spec: object, bank: PatchBank, profile: config.Profile, steps: int, batch: int | None = None):
    """(model, batches, patches per item) for one spec; ``batch`` overrides the profile's batch size."""
    if isinstance(spec, training.DenoiserSpec):
        size = profile.dncnn_batch_size if spec.architecture == "dncnn" else profile.denoiser_batch_size
        return training.build_denoiser(spec), DenoisingBatches(bank, batch or size, steps), 1
    _, trainer = training.build_descriptor_trainer(spec)
    mode = training.descriptor_mode(spec)
    batches = TripletBatches(bank, batch or profile.batch_size, steps, mode=mode, flip=spec.flip)
    return trainer, batches, 3 if mode == "triplet" else 2


def time_pipeline(batches, epochs: int) -> float:
    """Seconds to draw every batch of ``epochs`` epochs with no model."""
    start = time.perf_counter()
    for _ in range(epochs):
        for index in range(len(batches)):
            batches[index]
        batches.on_epoch_end()
    return time.perf_counter() - start


def time_evaluation(profile: config.Profile, num_sequences: int = 14, seed: int = 0) -> tuple[float, dict]:
    """Seconds to evaluate random 128-d descriptors at the profile's test scale, and the task counts."""
    rng = np.random.default_rng(seed)
    points = profile.test_patches or 1500
    sizes = {f"{'iv'[i % 2]}_scene{i}": points for i in range(num_sequences)}
    taskset = tasks.generate_tasks(sizes, "a", seed, profile.num_pairs,
                                   min(profile.num_queries, num_sequences * points // 3), profile.num_distractors)
    descriptors = {}
    for name, count in sizes.items():
        base = rng.standard_normal((1, count, 128)).astype(np.float32)
        descriptors[name] = base + 0.7 * rng.standard_normal((16, count, 128)).astype(np.float32)
    start = time.perf_counter()
    evaluation.evaluate(descriptors, taskset, progress=False)
    return time.perf_counter() - start, taskset.provenance["counts"]


def main() -> None:
    """Print one line per model."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--profile", default="cpu", help="batch sizes come from this profile")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch", type=int, default=None, help="batch size for every model (default: the profile's)")
    args = parser.parse_args()
    profile = config.get_profile(args.profile)
    bank = synthetic_bank(2048)
    print(f"{'model':<10}{'batch':>7}{'patches/s':>12}{'step ms':>10}{'pipeline ms':>13}{'pipeline share':>16}")
    for name in args.models:
        model, batches, per_item = make_data(MODELS[name], bank, profile, args.steps, args.batch)
        model.fit(batches, epochs=1, verbose=0)  # warm-up: graph compilation
        start = time.perf_counter()
        model.fit(batches, epochs=args.epochs, verbose=0)
        seconds = time.perf_counter() - start
        pipeline = time_pipeline(batches, args.epochs)
        steps = args.epochs * len(batches)
        fed = steps * batches.batch_size * per_item
        print(f"{name:<10}{batches.batch_size:>7}{fed / seconds:>12.0f}{1000 * seconds / steps:>10.1f}"
              f"{1000 * pipeline / steps:>13.2f}{pipeline / seconds:>15.1%}")
    seconds, counts = time_evaluation(profile)
    print(f"evaluation of one pipeline at {args.profile} scale ({counts}): {seconds:.2f} s")


if __name__ == "__main__":
    main()
