"""Export a trained pipeline of the study for ``nhpatches.describe(weights=...)``.

Opens ``Study.open(profile=...)`` (which builds the dataset and trains the two models on first use,
then reuses its cache under results/), and writes ``weights.npz`` (both networks, kernels as
float16) and ``manifest.json`` (specs, settings, sha256, an export check and the pipeline's
HPatches mAPs) into ``--out`` (required)::

    python scripts/export_pretrained.py --denoiser unet_adam --descriptor hardnet_flip --profile cpu --out my_export/

``--denoiser`` is any name of ``specs.DENOISERS`` or "none" (the descriptor alone, trained as
the study's "none" pipeline); ``--descriptor`` any name of ``specs.DESCRIPTORS``. The package's own
``lib/nhpatches/resources/pretrained`` (the descriptor ``describe()`` ships) is refused unless
``--force`` is given. The work is ``nhpatches.cli.export_study.export_study_pipeline``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    from nhpatches.nets import specs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--denoiser", required=True, choices=[*sorted(specs.DENOISERS), "none"])
    parser.add_argument("--descriptor", required=True, choices=sorted(specs.DESCRIPTORS))
    parser.add_argument("--out", type=Path, required=True, help="output folder (weights.npz, manifest.json)")
    parser.add_argument(
        "--force", action="store_true", help="allow --out to be the package's resources/pretrained (replaces it)"
    )
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--data-dir", default=None, help="hpatches-release or N-HPatches folder (default: embedded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="a")
    parser.add_argument("--epochs", type=int, default=None, help="train every model for this many epochs")
    parser.add_argument("--no-evaluate", action="store_true", help="skip the HPatches evaluation of the pipeline")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Export; 0 on success, 1 when the weights exceed the shipping limit, 2 on bad input."""
    args = parse_args(argv)
    from nhpatches.cli.export_study import MAX_BYTES, check_output_folder, export_study_pipeline

    import keras  # isort: skip  (after nhpatches, which quiets TensorFlow's start-up logs)

    start = time.perf_counter()
    try:
        check_output_folder(args.out, args.force)
        manifest = export_study_pipeline(
            args.out,
            args.denoiser,
            args.descriptor,
            profile=args.profile,
            data_dir=args.data_dir,
            seed=args.seed,
            split=args.split,
            epochs=args.epochs,
            evaluate=not args.no_evaluate,
            force=args.force,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    size = manifest["weights_bytes"]
    print(
        f"exported {manifest['name']} ({args.profile} profile, {keras.backend.backend()}) to {args.out}: "
        f"{manifest['weights_file']} {size / 1e6:.2f} MB sha256 {manifest['sha256']}; "
        f"export check {manifest['export_check']}; {time.perf_counter() - start:.0f} s"
    )
    if "evaluation" in manifest:
        print(f"HPatches mAPs of the pipeline: {manifest['evaluation']['summary']}")
    if size > MAX_BYTES:
        print(
            f"error: {args.out / manifest['weights_file']} is {size} bytes, over the {MAX_BYTES}-byte limit of "
            "shipped weights",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
