"""Export a trained pipeline of the study as the package's pretrained descriptor.

Opens ``Study.open(profile=...)`` (which builds the dataset and trains the two models on first use,
then reuses its cache under results/), and writes ``weights.npz`` (both networks, kernels as
float16) and ``manifest.json`` (specs, settings, sha256, an export check and the pipeline's
HPatches mAPs) into ``lib/nhpatches/resources/pretrained/`` of this checkout, or ``--out``::

    python scripts/export_pretrained.py --denoiser unet_adam --descriptor hardnet_flip --profile cpu

``--denoiser`` is any name of ``specs.DENOISERS`` or "none" (the descriptor alone, trained as
the study's "none" pipeline); ``--descriptor`` any name of ``specs.DESCRIPTORS``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "lib" / "nhpatches" / "resources" / "pretrained"
#: Largest weights file the package ships.
MAX_BYTES = 5 * 1024 * 1024
#: Test patches compared between the exported and the original models.
CHECK_PATCHES = 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    from nhpatches.nets import specs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--denoiser", required=True, choices=sorted(specs.DENOISERS) + ["none"])
    parser.add_argument("--descriptor", required=True, choices=sorted(specs.DESCRIPTORS))
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--data-dir", default=None, help="hpatches-release or N-HPatches folder (default: embedded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="a")
    parser.add_argument("--epochs", type=int, default=None, help="train every model for this many epochs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--no-evaluate", action="store_true", help="skip the HPatches evaluation of the pipeline")
    return parser.parse_args(argv)


def check_patches(study) -> np.ndarray:
    """CHECK_PATCHES noisy test patches drawn with a fixed seed. Shape: -> (K, 32, 32) uint8."""
    pool = np.concatenate([seq.noisy.reshape(-1, *seq.noisy.shape[-2:]) for seq in study.test_sequences.values()])
    pick = np.random.default_rng(0).choice(len(pool), size=min(CHECK_PATCHES, len(pool)), replace=False)
    return pool[np.sort(pick)]


def main(argv: list[str] | None = None) -> int:
    """Train (or load) the pipeline, export it, check the export and record the results."""
    from nhpatches import pretrained
    from nhpatches.nets import specs
    from nhpatches.study import Study

    import keras  # isort: skip  (after nhpatches, which quiets TensorFlow's start-up logs)

    args = parse_args(argv)
    start = time.perf_counter()
    study = Study.open(
        profile=args.profile, data_dir=args.data_dir, seed=args.seed, split=args.split, epochs=args.epochs
    )
    denoiser = None if args.denoiser == "none" else study.denoiser(args.denoiser)
    descriptor = study.descriptor(args.denoiser, args.descriptor)
    if denoiser is not None and study.descriptor_source(args.denoiser, args.descriptor) == "joint":
        # a jointly trained descriptor runs behind its own fine-tuned copy of the denoiser
        model, key = study.pipeline_denoiser(args.denoiser, args.descriptor)
        denoiser = dataclasses.replace(denoiser, model=model, metrics={**denoiser.metrics, "joint_run_key": key})
    info = {
        "profile": args.profile,
        "profile_settings": dataclasses.asdict(study.profile),
        "seed": args.seed,
        "epochs_override": args.epochs,
        "training_data": {
            "layout": study.layout,
            "dataset": study.data_dir.name,
            "fingerprint": study.fingerprint,
            "split": args.split,
            "subset": "train",
            "train_sequences": len(study.train_sequences),
            "train_patches_per_sequence": study.profile.train_patches,
            "descriptor_source": descriptor.metrics.get("source"),
        },
        "descriptor": {"run_key": descriptor.run.key, "metrics": descriptor.metrics},
    }
    if denoiser is not None:
        info["denoiser"] = {"run_key": denoiser.run.key, "metrics": denoiser.metrics}
    if not args.no_evaluate:
        results = study.evaluate(args.denoiser, args.descriptor)
        info["evaluation"] = {
            "summary": results["summary"],
            "split": args.split,
            "subset": "test",
            "test_patches_per_sequence": study.profile.test_patches,
            "tasks": results.get("tasks", {}).get("source"),
        }
    manifest_path = pretrained.export_pipeline(
        args.out,
        descriptor.model,
        specs.DESCRIPTORS[args.descriptor],
        None if denoiser is None else denoiser.model,
        None if denoiser is None else specs.DENOISERS[args.denoiser],
        info,
    )
    manifest = pretrained.read_manifest(manifest_path)
    manifest["export_check"] = pretrained.check_export(
        manifest_path, check_patches(study), descriptor.model, None if denoiser is None else denoiser.model
    )
    manifest["export_check"]["input"] = "noisy test patches of the study (fixed seed 0)"
    pretrained.write_manifest(manifest_path, manifest)
    size = manifest["weights_bytes"]
    print(
        f"exported {manifest['name']} ({args.profile} profile, {keras.backend.backend()}) to {args.out}: "
        f"{manifest['weights_file']} {size / 1e6:.2f} MB sha256 {manifest['sha256']}; "
        f"export check {manifest['export_check']}; {time.perf_counter() - start:.0f} s"
    )
    if "evaluation" in info:
        print(f"HPatches mAPs of the pipeline: {info['evaluation']['summary']}")
    if size > MAX_BYTES:
        print(
            f"error: {manifest_path.parent / manifest['weights_file']} is {size} bytes, over the "
            f"{MAX_BYTES}-byte limit of shipped weights",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
