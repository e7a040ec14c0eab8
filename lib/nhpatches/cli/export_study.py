"""Export a trained pipeline of the study for ``describe(weights=...)`` (``scripts/export_pretrained.py``).

:func:`export_study_pipeline` opens ``Study.open(profile=...)`` (which builds the dataset and trains
the two models on first use, then reuses its cache under results/), and writes ``weights.npz``
(both networks, kernels as float16) and ``manifest.json`` (specs, settings, sha256, an export
check and the pipeline's HPatches mAPs) into a folder of the caller's choice. It refuses the
package's own ``resources/pretrained`` (the descriptor ``describe()`` ships) unless forced.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

#: Largest weights file the package ships.
MAX_BYTES = 5 * 1024 * 1024
#: Test patches compared between the exported and the original models.
CHECK_PATCHES = 1024


def is_shipped_folder(out: Path) -> bool:
    """Whether ``out`` is the package's ``resources/pretrained`` (this install's, or any checkout's)."""
    from nhpatches.pretrained import pretrained_dir

    resolved = Path(out).expanduser().resolve()
    return resolved == pretrained_dir().resolve() or resolved.parts[-3:] == ("nhpatches", "resources", "pretrained")


def check_output_folder(out: Path, force: bool) -> None:
    """Raise ValueError when ``out`` is the shipped descriptor's folder and ``force`` is not set."""
    if is_shipped_folder(out) and not force:
        raise ValueError(
            f"{Path(out).expanduser().resolve()} holds the descriptor that nhpatches.describe() ships; "
            "exporting there would replace it. Choose another --out, or pass --force to replace it on purpose"
        )


def check_patches(study) -> np.ndarray:
    """CHECK_PATCHES noisy test patches of the study drawn with a fixed seed. Shape: -> (K, 32, 32) uint8."""
    pool = np.concatenate([seq.noisy.reshape(-1, *seq.noisy.shape[-2:]) for seq in study.test_sequences.values()])
    pick = np.random.default_rng(0).choice(len(pool), size=min(CHECK_PATCHES, len(pool)), replace=False)
    return pool[np.sort(pick)]


def export_study_pipeline(
    out: Path,
    denoiser_name: str,
    descriptor_name: str,
    profile: str = "cpu",
    data_dir: str | None = None,
    seed: int = 0,
    split: str = "a",
    epochs: int | None = None,
    evaluate: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Train (or load from the cache) a study pipeline, export it to ``out``, check the export.

    ``denoiser_name`` is a name of ``specs.DENOISERS`` or "none" (the descriptor alone, trained as
    the study's "none" pipeline); ``descriptor_name`` a name of ``specs.DESCRIPTORS``. A jointly
    trained descriptor is exported with its own fine-tuned copy of the denoiser. Returns the
    manifest written to ``out/manifest.json`` (with ``export_check``; with ``evaluation`` when
    ``evaluate``).
    """
    check_output_folder(out, force)
    from nhpatches import pretrained
    from nhpatches.nets import specs
    from nhpatches.study import Study

    study = Study.open(profile=profile, data_dir=data_dir, seed=seed, split=split, epochs=epochs)
    denoiser = None if denoiser_name == "none" else study.denoiser(denoiser_name)
    descriptor = study.descriptor(denoiser_name, descriptor_name)
    if denoiser is not None and study.descriptor_source(denoiser_name, descriptor_name) == "joint":
        model, key = study.pipeline_denoiser(denoiser_name, descriptor_name)
        denoiser = dataclasses.replace(denoiser, model=model, metrics={**denoiser.metrics, "joint_run_key": key})
    info: dict[str, Any] = {
        "profile": profile,
        "profile_settings": dataclasses.asdict(study.profile),
        "seed": seed,
        "epochs_override": epochs,
        "training_data": {
            "layout": study.layout,
            "dataset": study.data_dir.name,
            "fingerprint": study.fingerprint,
            "split": split,
            "subset": "train",
            "train_sequences": len(study.train_sequences),
            "train_patches_per_sequence": study.profile.train_patches,
            "descriptor_source": descriptor.metrics.get("source"),
        },
        "descriptor": {"run_key": descriptor.run.key, "metrics": descriptor.metrics},
    }
    if denoiser is not None:
        info["denoiser"] = {"run_key": denoiser.run.key, "metrics": denoiser.metrics}
    if evaluate:
        results = study.evaluate(denoiser_name, descriptor_name)
        info["evaluation"] = {
            "summary": results["summary"],
            "split": split,
            "subset": "test",
            "test_patches_per_sequence": study.profile.test_patches,
            "tasks": results.get("tasks", {}).get("source"),
        }
    denoiser_model = None if denoiser is None else denoiser.model
    manifest_path = pretrained.export_pipeline(
        out,
        descriptor.model,
        specs.DESCRIPTORS[descriptor_name],
        denoiser_model,
        None if denoiser is None else specs.DENOISERS[denoiser_name],
        info,
    )
    manifest = pretrained.read_manifest(manifest_path)
    manifest["export_check"] = pretrained.check_export(
        manifest_path, check_patches(study), descriptor.model, denoiser_model
    )
    manifest["export_check"]["input"] = "noisy test patches of the study (fixed seed 0)"
    pretrained.write_manifest(manifest_path, manifest)
    return manifest
