"""The study's pipeline runner: test patches through a pipeline, HPatches evaluation, the noise sweep.

Every result is cached under a key of what produced it (the models' run keys, the task files,
the data), so rerunning a notebook reads results back instead of recomputing them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from nhpatches import data, evaluation
from nhpatches.core.cache import RunDir, load_or_compute
from nhpatches.data import sweep
from nhpatches.evaluation.quality import denoising_quality
from nhpatches.nets.inference import denoise_patches, describe_each, describe_patches
from nhpatches.study import report
from nhpatches.study.dataset import StudyData
from nhpatches.study.models import ModelStore, store_denoised
from nhpatches.study.pipelines import CLASSICAL_DESCRIPTORS, INPUT_ONLY, Pipeline

#: A descriptor as a function: (K, P, P) uint8 -> (K, D) float32.
Describe = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class PipelineRunner:
    """Runs pipelines of a study's models on its test set (and re-noised copies of it)."""

    data: StudyData
    models: ModelStore

    def _run(self, experiment: str, settings: dict) -> RunDir:
        return RunDir(
            self.data.results_root, experiment, {**settings, "split": self.data.split, "data": self.data.fingerprint}
        )

    def test_patches(self, pipeline: Pipeline | tuple[str, str] | str) -> dict[str, np.ndarray]:
        """Test patches as a pipeline's descriptor sees them: 'clean', 'none' (noisy) or denoised (by the
        pipeline's own fine-tuned denoiser when its descriptor was trained jointly with it).

        ``pipeline`` may be a denoiser name alone (its plain output). Shape: per sequence (16, N, P, P) uint8.
        """
        denoiser = pipeline if isinstance(pipeline, str) else pipeline[0]
        if denoiser in INPUT_ONLY:
            attribute = "clean" if denoiser == "clean" else "noisy"
            return {name: getattr(seq, attribute) for name, seq in self.data.test_sequences.items()}
        if isinstance(pipeline, str):
            key, model = self.models.denoiser_run_key(denoiser), (lambda: self.models.denoiser(denoiser).model)
        else:
            pipeline = Pipeline.of(pipeline)
            key, model = (
                self.models.pipeline_denoiser_key(pipeline),
                (lambda: self.models.pipeline_denoiser(pipeline)[0]),
            )
        run = self._run(
            "denoised_test",
            {
                "denoiser": denoiser,
                "model": key,
                "test_patches": self.data.profile.test_patches,
                "noise_seed": self.data.seed,
            },
        )
        noisy = {name: seq.noisy for name, seq in self.data.test_sequences.items()}
        load_or_compute(run, lambda r: store_denoised(r, model(), noisy, self.data.profile.predict_batch_size))
        with np.load(run.path / "patches.npz") as stored:
            return {name: stored[name] for name in self.data.test_sequences}

    def denoising_quality(self, denoiser: str) -> pd.DataFrame:
        """MAE and PSNR against the clean patches, per noise level, on the first profile.quality_points
        points of every test sequence (all 16 images), for the noisy input and the denoiser's output."""
        points = self.data.profile.quality_points
        run = self._run(
            "denoising_quality",
            {
                "denoiser": denoiser,
                "model": self.models.denoiser_run_key(denoiser),
                "quality_points": points,
                "test_patches": self.data.profile.test_patches,
                "noise_seed": self.data.seed,
            },
        )

        def compute(r: RunDir) -> dict:
            model, cut = self.models.denoiser(denoiser).model, slice(None, points)
            clean = {name: seq.clean[:, cut] for name, seq in self.data.test_sequences.items()}
            noisy = {name: seq.noisy[:, cut] for name, seq in self.data.test_sequences.items()}
            denoised = {
                name: denoise_patches(model, array, self.data.profile.predict_batch_size)
                for name, array in noisy.items()
            }
            count = sum(array.shape[0] * array.shape[1] for array in clean.values())
            return {"patches": count, "quality": denoising_quality(clean, noisy, denoised).to_dict(orient="records")}

        return pd.DataFrame(load_or_compute(run, compute)["quality"])

    def describer(self, pipeline: Pipeline) -> tuple[Describe, dict]:
        """(describe function, provenance) of a pipeline's descriptor."""
        if pipeline.descriptor in CLASSICAL_DESCRIPTORS:
            from nhpatches.nets import classical

            return classical.CLASSICAL[pipeline.descriptor], {
                "descriptor_source": "none (classical)",
                "descriptor_epochs": 0,
            }
        trained = self.models.descriptor(pipeline)
        model, batch = trained.model, self.data.profile.predict_batch_size
        return (lambda flat: describe_patches(model, flat, batch)), {
            "descriptor_source": trained.metrics.get("source"),
            "descriptor_epochs": trained.metrics["epochs"],
        }

    def evaluate(self, pipeline: Pipeline) -> dict:
        """HPatches verification / matching / retrieval of one pipeline (cached)."""
        denoiser, descriptor = pipeline
        run = self._run(
            "pipelines",
            {
                "denoiser": denoiser,
                "descriptor": descriptor,
                "denoiser_key": self.models.pipeline_denoiser_key(pipeline),
                "descriptor_key": self.models.descriptor_key(pipeline),
                "tasks": self.data.tasks.provenance,
                "test_patches": self.data.profile.test_patches,
                "noise_seed": self.data.seed,
            },
        )

        def compute(r: RunDir) -> dict:
            patches = self.test_patches(pipeline)
            describe, provenance = self.describer(pipeline)
            start = time.perf_counter()
            descriptors = {name: describe_each(describe, array) for name, array in patches.items()}
            describe_seconds = time.perf_counter() - start
            results = evaluation.evaluate(descriptors, self.data.tasks)
            results["pipeline"] = {
                "denoiser": denoiser,
                "descriptor": descriptor,
                "profile": self.data.profile.name,
                **provenance,
                "seed": self.data.seed,
                "describe_seconds": describe_seconds,
                "data_dir": str(self.data.data_dir),
                "layout": self.data.layout,
            }
            return results

        return load_or_compute(run, compute)

    def noise_sweep(
        self,
        pipelines: tuple[Pipeline, ...],
        sigmas: tuple[float, ...] = sweep.SWEEP_SIGMAS,
        extra: dict[str, Describe] | None = None,
    ) -> pd.DataFrame:
        """mAPs of pipelines on the test set re-noised at each σ (see nhpatches.data.sweep).

        Uses the first ``profile.sweep_points`` points of every test sequence (all when None), all 16
        images at the same σ, with task files generated for that subset; every pipeline sees the same
        draw. Each (σ, pipeline) is cached. ``extra`` adds descriptors given as functions (e.g.
        ``{"release": nhpatches.describe}``), run on the noisy patches and not cached. One row per σ
        and pipeline.
        """
        points = self.data.profile.sweep_points
        clean = {name: seq.clean[:, :points] for name, seq in self.data.test_sequences.items()}
        if any(array is None for array in clean.values()):
            raise ValueError(f"{self.data.data_dir}: the noise sweep needs the clean test patches")
        pipelines = tuple(map(Pipeline.of, pipelines))
        if any(p.denoiser == "clean" for p in pipelines):
            raise ValueError(
                "the noise sweep re-noises the clean patches: pipeline 'clean' has no meaning "
                "there (use 'none' for no denoiser)"
            )
        sweep_tasks = self.data.generated_tasks({name: array.shape[1] for name, array in clean.items()})
        rows = []
        for sigma in sigmas:
            noisy = {
                name: sweep.renoise(array, sigma, data.sequence_noise_seed(self.data.seed, f"sweep:{name}"))
                for name, array in clean.items()
            }
            denoised: dict[str | None, dict[str, np.ndarray]] = {None: noisy}

            def summary_of(describe: Describe, patches: dict[str, np.ndarray]) -> dict:
                descriptors = {name: describe_each(describe, array) for name, array in patches.items()}
                return evaluation.evaluate(descriptors, sweep_tasks)["summary"]

            for pipeline in pipelines:
                key = self.models.pipeline_denoiser_key(pipeline)
                run = self._run(
                    "sweep",
                    {
                        "sigma": float(sigma),
                        "denoiser": pipeline.denoiser,
                        "descriptor": pipeline.descriptor,
                        "denoiser_key": key,
                        "descriptor_key": self.models.descriptor_key(pipeline),
                        "points": points,
                        "tasks": sweep_tasks.provenance,
                        "noise_seed": self.data.seed,
                        "sweep_noise": "nhpatches.sweep",
                    },
                )  # the noise model's tag, unchanged since its first run

                def compute(r: RunDir, pipeline=pipeline, key=key) -> dict:
                    if key not in denoised:
                        model = self.models.pipeline_denoiser(pipeline)[0]
                        denoised[key] = {
                            name: denoise_patches(model, array, self.data.profile.predict_batch_size)
                            for name, array in noisy.items()
                        }
                    return {"summary": summary_of(self.describer(pipeline)[0], denoised[key])}

                rows.append(_sweep_row(sigma, pipeline, load_or_compute(run, compute)["summary"], sweep_tasks))
            for name, describe in (extra or {}).items():
                rows.append(_sweep_row(sigma, Pipeline("none", name), summary_of(describe, noisy), sweep_tasks))
        return pd.DataFrame(rows)


def _sweep_row(sigma: float, pipeline: Pipeline, summary: dict, sweep_tasks) -> dict:
    """One row of the sweep table."""
    return {
        "sigma": float(sigma),
        "denoiser": pipeline.denoiser,
        "descriptor": pipeline.descriptor,
        "verification": summary["verification_mAP"],
        "matching": summary["matching_mAP"],
        "retrieval": summary["retrieval_mAP"],
        "mean": summary["mean_mAP"],
        "task_files": report.task_files_label(sweep_tasks.provenance),
    }
