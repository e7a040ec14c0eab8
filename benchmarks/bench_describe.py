"""Speed of ``nhpatches.describe()``: each shipped pipeline against its networks alone, and SIFT.

One process, one run: the model is built once, then batches of ``--batch`` uint8 patches go through

* ``describe()``: the whole user call (input checks, 65 -> 32 px resize when given 65 px, the
  networks, float32 rows), once through the backend's compiled (XLA) function and once through
  ``predict_on_batch`` (``nhpatches.nets.inference.COMPILED_BACKENDS`` says which is the default);
* the networks alone, on the same patches already as float32 (N, 32, 32, 1): the floor describe()
  can reach, through ``predict_on_batch`` and through the compiled function;
* OpenCV SIFT through ``describe(pipeline="sift")`` (32 px and 65 px) and raw pixels.

Each row's first call (compilation, tracing) is not timed but printed. Prints patches per second
(best of ``--repeats`` timings), compiled over predict_on_batch, and describe()'s cost over its
networks (target: at most +10 %), e.g. ``python benchmarks/bench_describe.py --batch 1000 --repeats 5``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORMHOLE = ROOT / "tests" / "fixtures" / "hpatches-sample" / "v_wormhole"


def best_rates(calls: dict, count: int, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Patches per second of each ``call()`` (count patches each), best of ``repeats``.

    Also the seconds of each first, untimed call. The timed calls are interleaved (one of each per round), so a load
    that comes and goes on a shared machine touches every row alike.
    """
    first, times = {}, {name: [] for name in calls}
    for name, call in calls.items():
        start = time.perf_counter()
        call()
        first[name] = time.perf_counter() - start
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: count / min(t) for name, t in times.items()}, first


@contextlib.contextmanager
def inference_mode(compiled: bool):
    """Context: describe() runs its networks through the compiled function, or through predict_on_batch.

    Whichever is the backend's default (``nhpatches.nets.inference.COMPILED_BACKENDS``).
    """
    import keras

    from nhpatches.nets import inference

    saved = inference.COMPILED_BACKENDS
    inference.COMPILED_BACKENDS = (keras.backend.backend(),) if compiled else ()
    try:
        yield
    finally:
        inference.COMPILED_BACKENDS = saved


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, time every row and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1000, help="patches per call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import keras  # isort: skip  (after nhpatches, which quiets TensorFlow's start-up logs)

    import nhpatches
    from nhpatches import data
    from nhpatches.nets import inference
    from nhpatches.pretrained import load_pipeline  # quiets TensorFlow before Keras loads it

    native = data.read_strip_set([WORMHOLE / f"{t}.png" for t in ("ref", "e1", "h1", "t1", "e5", "h5", "t5")], None)
    native = np.resize(native.reshape(-1, 65, 65), (args.batch, 65, 65))  # real patches, repeated to the batch
    patches = data.resize_patches(native, 32)
    pipeline = load_pipeline()
    nets = [net for net in (pipeline.denoiser, pipeline.descriptor) if net is not None]
    as_input = patches.astype(np.float32)[..., None]

    def networks_alone(compiled: bool) -> None:
        x = as_input
        for net in nets:
            runner = inference.compiled_runner(net, compiled=True) if compiled else None
            x = runner(x) if runner is not None else net.predict_on_batch(x)
            if net is pipeline.denoiser:
                x = np.clip(np.asarray(x), 0, 255).astype(np.uint8).astype(np.float32)

    def describe_in(compiled: bool, array: np.ndarray) -> None:
        with inference_mode(compiled):
            nhpatches.describe(array, batch_size=args.batch)

    names = " + ".join(n.name for n in nets)
    calls = {
        f"describe() {pipeline.name}, 32 px, compiled": lambda: describe_in(True, patches),
        f"describe() {pipeline.name}, 32 px, predict_on_batch": lambda: describe_in(False, patches),
        f"describe() {pipeline.name}, 65 px, compiled": lambda: describe_in(True, native),
        f"describe() {pipeline.name}, 65 px, predict_on_batch": lambda: describe_in(False, native),
        f"networks alone ({names}), compiled": lambda: networks_alone(True),
        f"networks alone ({names}), predict_on_batch": lambda: networks_alone(False),
        "describe(pipeline='sift'), 32 px": lambda: nhpatches.describe(patches, pipeline="sift"),
        "describe(pipeline='sift'), 65 px": lambda: nhpatches.describe(native, pipeline="sift"),
        "describe(pipeline='raw'), 32 px": lambda: nhpatches.describe(patches, pipeline="raw"),
    }
    rows, first_calls = best_rates(calls, args.batch, args.repeats)
    machine = (
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Keras {keras.__version__} on {keras.backend.backend()}"
    )
    print(f"batches of {args.batch} patches, best of {args.repeats}; {machine}")
    print(f"  {'':<66} {'patches/s':>10} {'first call s':>13}")
    for name, rate in rows.items():
        print(f"  {name:<66} {rate:10.0f} {first_calls[name]:13.2f}")
    keys = list(rows)
    speedup = {
        "describe() 32 px": rows[keys[0]] / rows[keys[1]],
        "describe() 65 px": rows[keys[2]] / rows[keys[3]],
        "networks alone": rows[keys[4]] / rows[keys[5]],
    }
    default = "compiled" if keras.backend.backend() in inference.COMPILED_BACKENDS else "predict_on_batch"
    print(
        "compiled / predict_on_batch: "
        + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in speedup.items())
        + f"; describe() uses {default} on {keras.backend.backend()} (nhpatches.nets.inference.COMPILED_BACKENDS)"
    )
    overhead = rows[keys[4]] / rows[keys[0]] - 1
    print(
        f"describe() costs {overhead:+.1%} over its networks alone (32 px input, both compiled; target <= +10 %); "
        f"describe() / SIFT at 32 px: {rows[keys[0]] / rows[keys[6]]:.2f}x"
    )
    if args.json:
        result = {"rows": rows, "first_call_s": first_calls, "compiled_over_predict_on_batch": speedup}
        result.update(overhead=overhead, machine=machine, batch=args.batch)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
