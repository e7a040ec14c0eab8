"""XLA on or off: training speed of the descriptors with ``jit_compile`` False and True, in one run.

This is the measurement behind the ``cpu`` profile's ``jit_compile="auto"`` (on TensorFlow, XLA
off on a CPU) and the release recipe's: for each model, two trainers are built and warmed up, then
timed in alternation (off, on, off, on, ...) on the same batches, so a load change on shared cores
hits both alike. It prints patches per second and the ratio on / off.

    python benchmarks/bench_jit.py [--repeats 3] [--steps 5] [--threads INTER,INTRA]
    KERAS_BACKEND=jax python benchmarks/bench_jit.py   # JAX always compiles: prints its speed alone
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import nhpatches  # noqa: F401  (quiets TensorFlow before Keras loads it)

#: (descriptor of nets.specs, triplets or pairs per batch, label)
CASES = (
    ("baseline", 50, "baseline, batch 50"),
    ("hardnet", 50, "hardnet, batch 50"),
    ("release", 512, "release, 512 pairs"),
)


def trainer_for(name: str, jit: bool):
    """A compiled trainer of the study's spec, or of the release recipe's."""
    from nhpatches.nets import specs
    from nhpatches.pretrained import recipe
    from nhpatches.train import training

    spec = recipe.release_spec(recipe.RECIPES["cpu"]) if name == "release" else specs.DESCRIPTORS[name]
    return training.build_descriptor_trainer(spec, jit_compile=training.resolve_jit_compile(jit))[1]


def main(argv: list[str] | None = None) -> int:
    """Time every case with XLA off and on, alternating, and print the table."""
    import keras

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="alternating timed rounds per setting")
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed round")
    parser.add_argument(
        "--threads",
        metavar="INTER,INTRA",
        help="TensorFlow's inter- and intra-op thread counts for this process (default: TensorFlow's own choice)",
    )
    args = parser.parse_args(argv)
    threads = "default"
    if args.threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        inter, intra = (int(value) for value in args.threads.split(","))
        tf.config.threading.set_inter_op_parallelism_threads(inter)
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        threads = f"inter {inter}, intra {intra}"
    settings = (False, True) if keras.backend.backend() == "tensorflow" else (True,)
    rng = np.random.default_rng(0)
    print(f"backend {keras.backend.backend()}, threads {threads}; patches/s (anchor, positive and negative all count)")
    print(f"{'model':24s} " + " ".join(f"{'xla ' + ('on' if s else 'off'):>10s}" for s in settings) + "   on/off")
    for name, batch, label in CASES:
        inputs = 2 if name in ("hardnet", "release") else 3
        x = [rng.integers(0, 256, (batch, 32, 32, 1)).astype("float32") for _ in range(inputs)]
        y = np.zeros(batch, "float32")
        trainers = {jit: trainer_for(name, jit) for jit in settings}
        for trainer in trainers.values():
            for _ in range(3):
                trainer.train_on_batch(x, y)
        best = {jit: float("inf") for jit in settings}
        for _ in range(args.repeats):
            for jit, trainer in trainers.items():
                started = time.perf_counter()
                for _ in range(args.steps):
                    trainer.train_on_batch(x, y)
                best[jit] = min(best[jit], (time.perf_counter() - started) / args.steps)
        speeds = {jit: batch * inputs / seconds for jit, seconds in best.items()}
        ratio = f"{speeds[True] / speeds[False]:8.2f}x" if len(speeds) == 2 else ""
        print(f"{label:24s} " + " ".join(f"{speeds[s]:10.0f}" for s in settings) + f" {ratio}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
