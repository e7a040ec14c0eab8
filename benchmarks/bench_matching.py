"""Speed of the image pipeline: extract_patches, match_descriptors and detect_and_describe against OpenCV SIFT.

One process, one 1-megapixel photograph (``--image``, or scikit-image's ``motorcycle_left`` resized
to 1224 x 816), ``--keypoints`` OpenCV SIFT keypoints (every orientation kept). Prints, best of
``--repeats`` timings after one warm-up call:

* ``extract_patches``: the Gaussian pyramid, the cut of 65 px samples resized to 32 px (targets:
  20,000 patches/s or more, pyramid included), and the dataset's exact interpolator for comparison;
* ``match_descriptors``: mutual nearest neighbours of two sets of ``--keypoints`` 128-d descriptors;
* ``detect_and_describe`` with each descriptor pipeline, its steps timed apart (noise estimate,
  denoiser, SIFT detection, cut, describe), against ``cv2.SIFT.detectAndCompute`` on the same image
  (target: at most 4x), on the clean image and with Gaussian noise ``--noise`` added (where "auto"
  denoises).

Example: ``python benchmarks/bench_matching.py --repeats 3 --json bench_matching.json``.
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


def best_seconds(call, repeats: int) -> float:
    """Seconds of ``call()``, best of ``repeats`` after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def cpu_seconds(call, repeats: int) -> float:
    """Process CPU seconds (all threads) of ``call()``, best of ``repeats``: less sensitive to a busy machine."""
    call()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        call()
        times.append(time.process_time() - start)
    return min(times)


def write_json(
    path: Path | None, patch_rows: dict, rows: dict, machine: str, count: int, hardware: dict | None = None
) -> None:
    """The timings (seconds) as JSON, and the hardware floor if measured, if a path was given."""
    if path is not None:
        record = {"seconds": {**patch_rows, **rows}, "machine": machine, "keypoints": count, "hardware": hardware}
        path.write_text(json.dumps(record, indent=1) + "\n")


def load_image(path: Path | None) -> np.ndarray:
    """The benchmark photograph as grayscale uint8, about 1 megapixel. Shape: -> (H, W)."""
    import cv2

    if path is not None:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise SystemExit(f"{path}: cannot read an image")
        return image
    import skimage.data

    photo = cv2.cvtColor(skimage.data.stereo_motorcycle()[0], cv2.COLOR_RGB2GRAY)
    return cv2.resize(photo, (1224, 816), interpolation=cv2.INTER_CUBIC)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, time every stage and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=None, help="photograph (default: motorcycle_left at 1 MP)")
    parser.add_argument("--keypoints", type=int, default=2000)
    parser.add_argument("--noise", type=float, default=20.0, help="Gaussian noise std of the noisy runs")
    parser.add_argument("--pipelines", default="default,sift", help="describe() pipelines, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--patches-only", action="store_true", help="time extract_patches and match_descriptors only")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import cv2

    import nhpatches
    from nhpatches.data import add_noise, regions
    from nhpatches.data import photographs as photos
    from nhpatches.pretrained import images

    image = load_image(args.image)
    keypoints = photos.detect_sift(image, args.keypoints)
    count = len(keypoints)
    patch_rows: dict[str, float] = {}

    # extract_patches
    pyramid = regions.ImagePyramid(image)
    patch_rows["pyramid (cv2)"] = best_seconds(lambda: regions.ImagePyramid(image), args.repeats)
    patch_rows["cut 32 px from a built pyramid"] = best_seconds(lambda: pyramid.cut(keypoints), args.repeats)
    patch_rows["extract_patches 32 px, pyramid included"] = best_seconds(
        lambda: nhpatches.extract_patches(image, keypoints), args.repeats
    )
    cpu = cpu_seconds(lambda: nhpatches.extract_patches(image, keypoints), args.repeats)
    exact = regions.ImagePyramid(image, exact=True)
    patch_rows["cut 32 px, exact interpolator (dataset's)"] = best_seconds(lambda: exact.cut(keypoints), 1)

    # match_descriptors
    rng = np.random.default_rng(0)
    first = rng.standard_normal((count, 128)).astype(np.float32)
    second = (first + 0.5 * rng.standard_normal((count, 128))).astype(np.float32)
    patch_rows[f"match_descriptors {count} x {count}, 128-d"] = best_seconds(
        lambda: nhpatches.match_descriptors(first, second), args.repeats
    )

    machine = (
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"load average {os.getloadavg()[0]:.1f}, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)"
    )
    print(f"image {image.shape[1]} x {image.shape[0]}, {count} SIFT keypoints, best of {args.repeats}; {machine}")
    for name, seconds in patch_rows.items():
        rate = f"{count / seconds:9.0f} per s" if "cut" in name or "extract" in name else ""
        print(f"  {name:<62} {seconds * 1e3:9.1f} ms {rate}")
    whole = patch_rows["extract_patches 32 px, pyramid included"]
    print(
        f"extract_patches: {count / whole:.0f} patches/s with the pyramid (target >= 20,000); "
        f"{count / cpu:.0f} patches per CPU-second of the process ({cpu * 1e3:.1f} ms CPU)"
    )
    if args.patches_only:
        write_json(args.json, patch_rows, {}, machine, count)
        return 0

    # detect_and_describe against OpenCV SIFT, clean and noisy
    rows: dict[str, float] = {}
    noisy = add_noise(image, args.noise, np.random.default_rng(1))
    sift = cv2.SIFT_create(nfeatures=args.keypoints)
    for label, picture in (("clean", image), (f"noise {args.noise:g}", noisy)):
        rows[f"[{label}] OpenCV SIFT detectAndCompute"] = best_seconds(
            lambda picture=picture: sift.detectAndCompute(picture, None), args.repeats
        )
        sigma = photos.estimate_noise_sigma(picture)
        rows[f"[{label}]   estimate_noise_sigma"] = best_seconds(
            lambda picture=picture: photos.estimate_noise_sigma(picture), args.repeats
        )
        seen, denoised = images._denoised(picture, images.DEFAULT_DENOISE, sigma, "image")
        if denoised:
            rows[f"[{label}]   denoise_nlm (h = {images.NLM_STRENGTH:g} x {sigma:.1f})"] = best_seconds(
                lambda picture=picture, sigma=sigma: photos.denoise_nlm(picture, images.NLM_STRENGTH * sigma), 1
            )
        rows[f"[{label}]   detect_sift"] = best_seconds(lambda seen=seen: photos.detect_sift(seen, args.keypoints), 1)
        found = photos.detect_sift(seen, args.keypoints)
        rows[f"[{label}]   extract_patches 65 px"] = best_seconds(
            lambda seen=seen, found=found: nhpatches.extract_patches(seen, found, size=65), args.repeats
        )
        patches = nhpatches.extract_patches(seen, found, size=65)
        for pipeline in args.pipelines.split(","):
            rows[f"[{label}]   describe('{pipeline}')"] = best_seconds(
                lambda patches=patches, pipeline=pipeline: nhpatches.describe(patches, pipeline=pipeline),
                args.repeats,
            )
            rows[f"[{label}] detect_and_describe('{pipeline}'), denoise {images.DEFAULT_DENOISE!r}"] = best_seconds(
                lambda picture=picture, pipeline=pipeline: nhpatches.detect_and_describe(
                    picture, args.keypoints, pipeline=pipeline
                ),
                args.repeats,
            )

    import keras

    print(f"load average {os.getloadavg()[0]:.1f}; Keras {keras.__version__} on {keras.backend.backend()}")
    for name, seconds in rows.items():
        rate = f"{count / seconds:9.0f} per s" if "extract" in name else ""
        print(f"  {name:<62} {seconds * 1e3:9.1f} ms {rate}")
    for label in ("clean", f"noise {args.noise:g}"):
        base = rows[f"[{label}] OpenCV SIFT detectAndCompute"]
        for pipeline in args.pipelines.split(","):
            ours = rows[f"[{label}] detect_and_describe('{pipeline}'), denoise {images.DEFAULT_DENOISE!r}"]
            print(
                f"[{label}] detect_and_describe('{pipeline}') / SIFT detectAndCompute: {ours / base:.2f}x (target <= 4)"
            )
    floor = hardware_floor(rows, args, count)
    write_json(args.json, patch_rows, rows, machine, count, floor)
    return 0


def hardware_floor(rows: dict[str, float], args: argparse.Namespace, count: int) -> dict[str, float]:
    """How close describe() runs to the machine's float32 peak, and the ratio to SIFT that peak allows.

    The network's FLOPs per patch come from its layer shapes (:func:`nhpatches.nets.cost.forward_flops`);
    the peak is the best 2048^3 float32 matmul of this run (``bench_training.matmul_peak``). At that
    peak the network alone would take count x FLOPs / peak seconds; with the other steps as measured,
    that is the least ``detect_and_describe`` / SIFT this machine allows for the shipped network.
    """
    from bench_training import matmul_peak

    from nhpatches.nets import cost
    from nhpatches.pretrained.images import image_weights
    from nhpatches.pretrained.load import load_pipeline

    flops = cost.forward_flops(load_pipeline(image_weights()).descriptor)
    peak = max(matmul_peak().values())
    at_peak = count * flops / (peak * 1e9)
    print(
        f"against the hardware: the photographs descriptor is {flops / 1e6:.1f} MFLOP per patch; "
        f"float32 matmul peak of this run {peak:.0f} GFLOP/s"
    )
    for label in ("clean", f"noise {args.noise:g}"):
        described = rows[f"[{label}]   describe('default')"]
        base = rows[f"[{label}] OpenCV SIFT detectAndCompute"]
        ours = rows[f"[{label}] detect_and_describe('default'), denoise 'auto'"]
        floor = (ours - described + at_peak) / base
        print(
            f"[{label}] describe('default'): {count * flops / described / 1e9:.0f} GFLOP/s = "
            f"{count * flops / described / 1e9 / peak:.0%} of peak; the network at peak would take "
            f"{at_peak * 1e3:.0f} ms, so detect_and_describe / SIFT >= {floor:.2f}x on this machine"
        )
    return {"describe_network_seconds_at_peak": at_peak, "peak_gflops": peak, "network_mflop_per_patch": flops / 1e6}


if __name__ == "__main__":
    sys.exit(main())
