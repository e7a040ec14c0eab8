"""Speed of ``nhpatches.describe()``: each shipped pipeline against its networks alone, and SIFT.

One process, one run: the model is built once (the first call, not timed), then batches of
``--batch`` uint8 patches go through

* ``describe()``: the whole user call (input checks, 65 -> 32 px resize when given 65 px, the
  networks, float32 rows);
* the networks alone: ``predict_on_batch`` of the same loaded Keras models on the same patches,
  already as float32 (N, 32, 32, 1): the floor describe() can reach;
* OpenCV SIFT through ``describe(pipeline="sift")`` (32 px and 65 px) and raw pixels.

Prints patches per second (best of ``--repeats`` timings) and describe()'s cost over its networks
(target: at most +10 %), e.g. ``python benchmarks/bench_describe.py --batch 1000 --repeats 5``.

``--also EXPORT ...`` times ``describe(weights=EXPORT)`` of other exports on the same 32 px batch, in
turn with the shipped pipeline (one timing of each per round, best of ``--repeats`` rounds), and
prints the shipped pipeline's speed over each: both speeds come from one run under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORMHOLE = ROOT / "tests" / "fixtures" / "hpatches-sample" / "v_wormhole"


def best_rate(call, count: int, repeats: int) -> float:
    """Patches per second of ``call()`` (count patches), best of ``repeats`` after one warm-up call."""
    return best_rates([call], count, repeats)[0]


def best_rates(calls: list, count: int, repeats: int) -> list[float]:
    """Patches per second of each call, best of ``repeats`` rounds that time every call once in turn."""
    for call in calls:
        call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for call, timings in zip(calls, times):
            start = time.perf_counter()
            call()
            timings.append(time.perf_counter() - start)
    return [count / min(timings) for timings in times]


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, time each pipeline and print patches per second; return 0."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1000, help="patches per call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--also", type=Path, nargs="*", default=[], metavar="EXPORT", help="other exports to time")
    args = parser.parse_args(argv)

    import keras  # isort: skip  (after nhpatches, which quiets TensorFlow's start-up logs)

    import nhpatches
    from nhpatches import data
    from nhpatches.pretrained import load_pipeline  # quiets TensorFlow before Keras loads it

    native = data.read_strip_set([WORMHOLE / f"{t}.png" for t in ("ref", "e1", "h1", "t1", "e5", "h5", "t5")], None)
    native = np.resize(native.reshape(-1, 65, 65), (args.batch, 65, 65))  # real patches, repeated to the batch
    patches = data.resize_patches(native, 32)
    pipeline = load_pipeline()
    nets = [net for net in (pipeline.denoiser, pipeline.descriptor) if net is not None]
    as_input = patches.astype(np.float32)[..., None]

    def networks_alone() -> None:
        x = as_input
        for net in nets:
            x = net.predict_on_batch(x)
            if net is pipeline.denoiser:
                x = np.clip(np.asarray(x), 0, 255).astype(np.uint8).astype(np.float32)

    rows = {
        f"describe() {pipeline.name}, 32 px": best_rate(
            lambda: nhpatches.describe(patches, batch_size=args.batch), args.batch, args.repeats
        ),
        f"describe() {pipeline.name}, 65 px": best_rate(
            lambda: nhpatches.describe(native, batch_size=args.batch), args.batch, args.repeats
        ),
        f"networks alone ({' + '.join(n.name for n in nets)})": best_rate(networks_alone, args.batch, args.repeats),
        "describe(pipeline='sift'), 32 px": best_rate(
            lambda: nhpatches.describe(patches, pipeline="sift"), args.batch, args.repeats
        ),
        "describe(pipeline='sift'), 65 px": best_rate(
            lambda: nhpatches.describe(native, pipeline="sift"), args.batch, args.repeats
        ),
        "describe(pipeline='raw'), 32 px": best_rate(
            lambda: nhpatches.describe(patches, pipeline="raw"), args.batch, args.repeats
        ),
    }
    comparisons = {}
    if args.also:
        others = [load_pipeline(path) for path in args.also]
        calls = [lambda: nhpatches.describe(patches, batch_size=args.batch)] + [
            lambda path=path: nhpatches.describe(patches, weights=path, batch_size=args.batch) for path in args.also
        ]
        rates = best_rates(calls, args.batch, args.repeats)
        rows[f"describe() {pipeline.name}, 32 px, timed in turn with the exports below"] = rates[0]
        for other, path, rate in zip(others, args.also, rates[1:]):
            rows[f"describe(weights={path.name}/) {other.name}, 32 px"] = rate
            comparisons[other.name] = rates[0] / rate
    machine = (
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Keras {keras.__version__} on {keras.backend.backend()}"
    )
    print(f"batches of {args.batch} patches, best of {args.repeats}; {machine}")
    for name, rate in rows.items():
        print(f"  {name:<52} {rate:9.0f} patches/s")
    names = list(rows)
    overhead = rows[names[2]] / rows[names[0]] - 1
    print(
        f"describe() costs {overhead:+.1%} over its networks alone (32 px input; target <= +10 %); "
        f"describe() / SIFT at 32 px: {rows[names[0]] / rows[names[3]]:.2f}x"
    )
    for name, ratio in comparisons.items():
        print(f"describe() {pipeline.name} / describe() {name} at 32 px, timed in turn: {ratio:.2f}x")
    if args.json:
        record = {"rows": rows, "overhead": overhead, "machine": machine, "batch": args.batch}
        if comparisons:
            record["speed_ratio_over"] = comparisons
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
