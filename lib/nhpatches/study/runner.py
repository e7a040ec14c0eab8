"""The study's pipeline runner: test patches through a pipeline, HPatches evaluation, the noise sweep.

Every result is cached under a key of what produced it (the models' run keys, the task files,
the data), so rerunning a notebook reads results back instead of recomputing them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nhpatches import data, evaluation
from nhpatches.core.cache import RunDir, load_or_compute
from nhpatches.data import sweep
from nhpatches.data.tasks import TaskSet
from nhpatches.evaluation.quality import denoising_quality
from nhpatches.nets.inference import denoise_patches, describe_each, describe_patches
from nhpatches.study import report
from nhpatches.study.dataset import StudyData
from nhpatches.study.models import ModelStore, ResolvedPipeline, store_denoised
from nhpatches.study.pipelines import CLASSICAL_DESCRIPTORS, INPUT_ONLY, Pipeline

if TYPE_CHECKING:
    import keras

#: A descriptor as a function: (K, P, P) uint8 -> (K, D) float32.
Describe = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class PipelineRunner:
    """Runs pipelines of a study's models on its test set (and re-noised copies of it)."""

    data: StudyData
    models: ModelStore

    def _run(self, experiment: str, settings: dict[str, Any]) -> RunDir:
        """The cache folder of a result: its settings plus the split and the dataset's fingerprint."""
        return RunDir(
            self.data.results_root, experiment, {**settings, "split": self.data.split, "data": self.data.fingerprint}
        )

    def test_patches(self, pipeline: Pipeline | ResolvedPipeline | tuple[str, str] | str) -> dict[str, np.ndarray]:
        """Test patches as a pipeline's descriptor sees them: 'clean', 'none' (noisy) or denoised.

        Denoised means by the pipeline's own fine-tuned denoiser when its descriptor was trained
        jointly with it, else by the trained denoiser. ``pipeline`` may be a denoiser name alone (its
        plain output). Shape: per sequence (16, N, P, P) uint8.
        """
        sequences = self.data.test_sequences
        denoiser = pipeline if isinstance(pipeline, str) else _pipeline_of(pipeline).denoiser
        if denoiser in INPUT_ONLY:
            return {name: _stored(seq, "clean" if denoiser == "clean" else "noisy") for name, seq in sequences.items()}
        resolved = None if isinstance(pipeline, str) else self.models.resolve(pipeline)
        key = self.models.denoiser_run_key(denoiser) if resolved is None else resolved.denoiser_key

        def model() -> keras.Model:
            """The denoiser the patches go through (trained or loaded on a cache miss only)."""
            if resolved is None:
                return self.models.denoiser(denoiser).model
            return self.models.pipeline_denoiser(resolved)[0]

        run = self._run(
            "denoised_test",
            {
                "denoiser": denoiser,
                "model": key,
                "test_patches": self.data.profile.test_patches,
                "noise_seed": self.data.seed,
            },
        )
        noisy = {name: _stored(seq, "noisy") for name, seq in sequences.items()}
        load_or_compute(run, lambda r: store_denoised(r, model(), noisy, self.data.profile.predict_batch_size))
        with np.load(run.path / "patches.npz") as stored:
            return {name: stored[name] for name in sequences}

    def denoising_quality(self, denoiser: str) -> pd.DataFrame:
        """MAE and PSNR against the clean patches, per noise level, of the noisy input and the denoiser's output.

        Measured on the first ``profile.quality_points`` points of every test sequence (all 16 images).
        """
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

        def compute(r: RunDir) -> dict[str, Any]:
            model, cut = self.models.denoiser(denoiser).model, slice(None, points)
            clean = {name: _stored(seq, "clean")[:, cut] for name, seq in self.data.test_sequences.items()}
            noisy = {name: _stored(seq, "noisy")[:, cut] for name, seq in self.data.test_sequences.items()}
            denoised = {
                name: denoise_patches(model, array, self.data.profile.predict_batch_size)
                for name, array in noisy.items()
            }
            count = sum(array.shape[0] * array.shape[1] for array in clean.values())
            return {"patches": count, "quality": denoising_quality(clean, noisy, denoised).to_dict(orient="records")}

        return pd.DataFrame(load_or_compute(run, compute)["quality"])

    def describer(self, pipeline: Pipeline | ResolvedPipeline) -> tuple[Describe, dict[str, Any]]:
        """(describe function, provenance) of a pipeline's descriptor."""
        if _pipeline_of(pipeline).descriptor in CLASSICAL_DESCRIPTORS:
            from nhpatches.nets import classical

            return classical.CLASSICAL[_pipeline_of(pipeline).descriptor], {
                "descriptor_source": "none (classical)",
                "descriptor_epochs": 0,
            }
        trained = self.models.descriptor(pipeline)
        model, batch = trained.model, self.data.profile.predict_batch_size
        return (lambda flat: describe_patches(model, flat, batch)), {
            "descriptor_source": trained.metrics.get("source"),
            "descriptor_epochs": trained.metrics["epochs"],
        }

    def evaluate(self, pipeline: Pipeline) -> dict[str, Any]:
        """HPatches verification / matching / retrieval of one pipeline (cached).

        The pipeline is resolved once (:meth:`ModelStore.resolve`); its cache keys, test patches and
        descriptor all come from that one resolution.
        """
        resolved = self.models.resolve(pipeline)
        denoiser, descriptor = resolved.pipeline
        run = self._run(
            "pipelines",
            {
                "denoiser": denoiser,
                "descriptor": descriptor,
                "denoiser_key": resolved.denoiser_key,
                "descriptor_key": resolved.descriptor_key,
                "tasks": self.data.tasks.provenance,
                "test_patches": self.data.profile.test_patches,
                "noise_seed": self.data.seed,
            },
        )

        def compute(r: RunDir) -> dict[str, Any]:
            patches = self.test_patches(resolved)
            describe, provenance = self.describer(resolved)
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
        """Task mAPs of pipelines on the test set re-noised at each σ (see nhpatches.data.sweep).

        Uses the first ``profile.sweep_points`` points of every test sequence (all when None), all 16
        images at the same σ, with task files generated for that subset; every pipeline sees the same
        draw. Each (σ, pipeline) is cached. ``extra`` adds descriptors given as functions (e.g.
        ``{"release": nhpatches.describe}``), run on the noisy patches and not cached. One row per σ
        and pipeline.
        """
        points = self.data.profile.sweep_points
        clean: dict[str, np.ndarray] = {}
        for name, seq in self.data.test_sequences.items():
            if seq.clean is None:
                raise ValueError(f"{self.data.data_dir}: the noise sweep needs the clean test patches")
            clean[name] = seq.clean[:, :points]
        resolved = tuple(self.models.resolve(Pipeline.of(p)) for p in pipelines)
        if any(r.pipeline.denoiser == "clean" for r in resolved):
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
            rows += self._sweep_rows(float(sigma), noisy, resolved, sweep_tasks)
            for name, describe in (extra or {}).items():
                summary = _summary(describe, noisy, sweep_tasks)
                rows.append(_sweep_row(sigma, Pipeline("none", name), summary, sweep_tasks))
        return pd.DataFrame(rows)

    def _sweep_rows(
        self,
        sigma: float,
        noisy: dict[str, np.ndarray],
        pipelines: tuple[ResolvedPipeline, ...],
        sweep_tasks: TaskSet,
    ) -> list[dict[str, Any]]:
        """The sweep's rows at one σ: each pipeline's summary, cached per (σ, pipeline).

        Pipelines running the same denoiser share its output of the noisy patches (computed on the
        first cache miss that needs it).
        """
        denoised: dict[str | None, dict[str, np.ndarray]] = {None: noisy}
        rows = []
        for resolved in pipelines:
            run = self._run(
                "sweep",
                {
                    "sigma": sigma,
                    "denoiser": resolved.pipeline.denoiser,
                    "descriptor": resolved.pipeline.descriptor,
                    "denoiser_key": resolved.denoiser_key,
                    "descriptor_key": resolved.descriptor_key,
                    "points": self.data.profile.sweep_points,
                    "tasks": sweep_tasks.provenance,
                    "noise_seed": self.data.seed,
                    "sweep_noise": sweep.SWEEP_NOISE_VERSION,
                },
            )

            def compute(r: RunDir, resolved: ResolvedPipeline = resolved) -> dict[str, Any]:
                key = resolved.denoiser_key
                if key not in denoised:
                    model = self.models.pipeline_denoiser(resolved)[0]
                    denoised[key] = {
                        name: denoise_patches(model, array, self.data.profile.predict_batch_size)
                        for name, array in noisy.items()
                    }
                return {"summary": _summary(self.describer(resolved)[0], denoised[key], sweep_tasks)}

            rows.append(_sweep_row(sigma, resolved.pipeline, load_or_compute(run, compute)["summary"], sweep_tasks))
        return rows


def _pipeline_of(pipeline: Pipeline | ResolvedPipeline | tuple[str, str]) -> Pipeline:
    """The Pipeline a resolved pipeline, a Pipeline or a (denoiser, descriptor) pair names."""
    return pipeline.pipeline if isinstance(pipeline, ResolvedPipeline) else Pipeline.of(pipeline)


def _stored(sequence: data.Sequence, kind: str) -> np.ndarray:
    """A test sequence's 'clean' or 'noisy' patches, or an error naming the sequence if it has none."""
    patches = sequence.clean if kind == "clean" else sequence.noisy
    if patches is None:
        raise ValueError(f"test sequence {sequence.name!r} has no {kind} patches")
    return patches


def _summary(describe: Describe, patches: dict[str, np.ndarray], tasks: TaskSet) -> dict[str, Any]:
    """The HPatches summary (task mAPs) of a descriptor on the given patches."""
    descriptors = {name: describe_each(describe, array) for name, array in patches.items()}
    return evaluation.evaluate(descriptors, tasks)["summary"]


def _sweep_row(sigma: float, pipeline: Pipeline, summary: dict[str, Any], sweep_tasks: TaskSet) -> dict[str, Any]:
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
