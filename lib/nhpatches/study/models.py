"""The study's model store: every denoiser and descriptor, trained once under a key of its settings, then loaded.

A run's key holds its spec, schedule, seed, split, dataset fingerprint, profile and Keras backend
(and, for a descriptor, its training input and the run it starts from), so a changed setting
trains a new model and an unchanged one is never trained twice.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pandas as pd

from nhpatches.core import config
from nhpatches.core.cache import RunDir, atomic_path, load_or_compute
from nhpatches.nets import specs
from nhpatches.nets.inference import denoise_patches
from nhpatches.study.dataset import StudyData
from nhpatches.study.pipelines import CLASSICAL_DESCRIPTORS, CLASSICAL_VERSION, INPUT_ONLY, Pipeline, lookup
from nhpatches.train import joint, training
from nhpatches.train.batches import PatchBank, cap_points, with_denoised


@dataclasses.dataclass
class Trained:
    """A trained model with its per-epoch history and run metrics."""

    name: str
    model: keras.Model
    history: pd.DataFrame
    metrics: dict[str, Any]
    run: RunDir


@dataclasses.dataclass(frozen=True)
class ResolvedPipeline:
    """A pipeline with its specs, training runs and cache keys worked out once (see ModelStore.resolve).

    The denoiser fields are None for the inputs 'none' and 'clean'; the descriptor fields are None
    for a classical descriptor ('raw', 'sift'). ``source`` is what the descriptor trains on
    ('clean', 'noisy', 'denoised' or 'joint'); ``init`` the pipeline whose descriptor it fine-tunes.
    """

    pipeline: Pipeline
    denoiser_spec: specs.DenoiserSpec | None
    denoiser_run: RunDir | None
    descriptor_spec: specs.DescriptorSpec | None
    descriptor_run: RunDir | None
    source: str | None
    init: ResolvedPipeline | None

    @property
    def is_joint(self) -> bool:
        """Whether the descriptor was trained jointly with (a copy of) the denoiser."""
        return self.source == "joint"

    @property
    def denoiser_key(self) -> str | None:
        """Cache key of the denoiser the pipeline runs (None for the 'none' and 'clean' inputs).

        For a joint descriptor that is the joint run (it holds the fine-tuned copy), else the
        denoiser's training run.
        """
        if self.denoiser_run is None:
            return None
        if self.is_joint and self.descriptor_run is not None:
            return self.descriptor_run.key
        return self.denoiser_run.key

    @property
    def descriptor_key(self) -> str:
        """Cache key of the descriptor: its training run, or the classical method's name and version."""
        if self.descriptor_run is None:
            return f"classical:{self.pipeline.descriptor}:{CLASSICAL_VERSION}"
        return self.descriptor_run.key


@dataclasses.dataclass
class ModelStore:
    """Trains a study's models on first use and loads them afterwards."""

    data: StudyData
    force_retrain: bool = False
    #: λ of joint denoise-and-describe training (None: the spec's, see specs.DESCRIPTORS["hardnet_joint"]).
    joint_lambda: float | None = None
    #: Runs already retrained by this store: with force_retrain, each model trains once per study.
    _retrained: set[str] = dataclasses.field(default_factory=set, init=False, repr=False)

    @property
    def profile(self) -> config.Profile:
        """The run profile of the study's data."""
        return self.data.profile

    def _must_train(self, run: RunDir) -> bool:
        """Whether a training run has to (re)run now: missing, or forced and not yet retrained here."""
        return not run.is_complete() or (self.force_retrain and run.key not in self._retrained)

    def _train(self, run: RunDir, compute: Callable[[RunDir], dict[str, Any]]) -> dict[str, Any]:
        """Run ``compute`` into ``run`` when it must train, else read its metrics."""
        if not self._must_train(run):
            return run.metrics()
        metrics = load_or_compute(run, compute, force=True)
        self._retrained.add(run.key)
        return metrics

    def run(
        self, experiment: str, spec: specs.DenoiserSpec | specs.DescriptorSpec, epochs: int, **extra: Any
    ) -> RunDir:
        """The cache folder of a training run (key: spec, schedule, seed, data, backend and ``extra``).

        The accelerator settings (``device_sampling``, ``mixed_precision``, ``jit_compile``,
        ``devices``) change the numbers, so they key the run too, but only where they differ from
        :class:`~nhpatches.core.config.Profile`'s defaults. They came after the cpu and smoke runs
        were first cached: written always, they would give every cached run of those profiles a new
        key, and each model (the committed cpu series: hours on 2 cores) would train again to the
        same numbers, since the defaults are what those runs used.
        """
        profile = dataclasses.asdict(self.profile)
        schedule = {
            k: profile[k]
            for k in (
                "train_patches",
                "steps_per_epoch",
                "validation_steps",
                "batch_size",
                "denoiser_batch_size",
                "dncnn_batch_size",
                "descriptor_steps_per_epoch",
                "descriptor_validation_steps",
                "descriptor_train_patches",
            )
        }
        defaults = {f.name: f.default for f in dataclasses.fields(config.Profile)}
        schedule.update(
            {
                k: profile[k]
                for k in ("device_sampling", "mixed_precision", "jit_compile", "devices")
                if profile[k] != defaults[k]
            }
        )
        # The backend is part of the key: the same seed gives different weights on TensorFlow, JAX and
        # PyTorch, so a run trained on one backend is never silently reused on another.
        settings = {
            "spec": dataclasses.asdict(spec),
            "epochs": epochs,
            "schedule": schedule,
            "seed": self.data.seed,
            "split": self.data.split,
            "data": self.data.fingerprint,
            "profile": self.profile.name,
            "backend": keras.backend.backend(),
            **extra,
        }
        return RunDir(self.data.results_root, experiment, settings)

    # ----- denoisers ------------------------------------------------------------------------
    def denoiser_training_run(self, name: str) -> tuple[specs.DenoiserSpec, RunDir]:
        """(spec, cache folder) of a denoiser's training run."""
        spec = lookup(specs.DENOISERS, name, "denoiser")
        epochs, keep = training.denoiser_epochs(spec, self.profile)
        return spec, self.run(f"denoiser_{name}", spec, epochs, kept_epoch=keep)

    def denoiser(self, name: str) -> Trained:
        """A trained denoiser of ``specs.DENOISERS`` (trained on first use, then loaded)."""
        spec, run = self.denoiser_training_run(name)
        return self._trained_denoiser(name, spec, run)

    def _trained_denoiser(self, name: str, spec: specs.DenoiserSpec, run: RunDir) -> Trained:
        """Train the denoiser into ``run`` if it must, then load it."""
        metrics = self._train(
            run, lambda r: training.train_denoiser(spec, *self.data.banks, self.profile, self.data.seed, r)
        )
        return Trained(name, training.load_model(run), training.load_history(run), metrics, run)

    def denoiser_run_key(self, denoiser: str) -> str:
        """Cache key of a denoiser's training run (without training it)."""
        return self.denoiser_training_run(denoiser)[1].key

    # ----- descriptors ----------------------------------------------------------------------
    def descriptor_spec(self, descriptor: str) -> specs.DescriptorSpec:
        """A descriptor's spec; for joint training with this store's ``joint_lambda`` when that is set."""
        spec = lookup(specs.DESCRIPTORS, descriptor, "descriptor")
        if spec.train_on == "joint" and self.joint_lambda is not None:
            spec = dataclasses.replace(spec, joint_weight=float(self.joint_lambda))
        return spec

    def _source(self, denoiser: str, descriptor: str, spec: specs.DescriptorSpec) -> str:
        """Which patches a descriptor trains on in a pipeline: 'clean', 'noisy', 'denoised' or 'joint'."""
        if spec.train_on in ("clean", "noisy"):
            return spec.train_on
        if spec.train_on == "joint":
            if denoiser in INPUT_ONLY:
                raise ValueError(
                    f"descriptor {descriptor!r} fine-tunes a denoiser jointly; pipeline "
                    f"{denoiser!r} has none (expected one of {sorted(specs.DENOISERS)})"
                )
            return "joint"
        if denoiser == "clean":
            return "clean"
        return "noisy" if denoiser == "none" else "denoised"

    def resolve(self, pipeline: Pipeline | ResolvedPipeline | tuple[str, str]) -> ResolvedPipeline:
        """A pipeline's specs, training runs and cache keys, worked out once (nothing is trained).

        The descriptor's run key holds its training input (for denoised input, the denoiser's run
        key) and, for a fine-tuned descriptor, the run key of the descriptor it starts from.
        """
        if isinstance(pipeline, ResolvedPipeline):
            return pipeline
        pipeline = Pipeline.of(pipeline)
        denoiser, descriptor = pipeline
        spec = None if descriptor in CLASSICAL_DESCRIPTORS else self.descriptor_spec(descriptor)
        denoiser_spec, denoiser_run = (None, None) if denoiser in INPUT_ONLY else self.denoiser_training_run(denoiser)
        if spec is None:
            return ResolvedPipeline(pipeline, denoiser_spec, denoiser_run, None, None, None, None)
        source = self._source(denoiser, descriptor, spec)
        training_input: dict[str, Any] = {"source": source}
        if source in ("denoised", "joint") and denoiser_run is not None:  # _source: never 'none' / 'clean' here
            training_input.update(denoiser=denoiser, denoiser_key=denoiser_run.key)
        init = None if spec.init_from is None else self.resolve(Pipeline(denoiser, spec.init_from))
        run = self.run(
            f"descriptor_{descriptor}",
            spec,
            training.descriptor_epochs(spec, self.profile),
            training_input=training_input,
            init=None if init is None else init.descriptor_key,
        )
        return ResolvedPipeline(pipeline, denoiser_spec, denoiser_run, spec, run, source, init)

    def descriptor_source(self, pipeline: Pipeline | ResolvedPipeline) -> str:
        """Which patches a pipeline's descriptor trains on: 'clean', 'noisy', 'denoised' or 'joint'."""
        resolved = self.resolve(pipeline)
        if resolved.source is None:
            raise ValueError(f"descriptor {resolved.pipeline.descriptor!r} is classical: it is not trained")
        return resolved.source

    def descriptor_run_key(self, pipeline: Pipeline | ResolvedPipeline) -> str:
        """Cache key of the descriptor trained for a pipeline (without training it)."""
        return self.resolve(pipeline).descriptor_key

    def descriptor(self, pipeline: Pipeline | ResolvedPipeline) -> Trained:
        """The descriptor of ``specs.DESCRIPTORS`` trained for ``pipeline``.

        A report descriptor trains on its pipeline's own input: the denoiser's output of the noisy
        training patches (clipped and truncated to uint8), the noisy patches for denoiser "none",
        or the clean ones for "clean". An extension with ``train_on="clean"`` trains on clean
        patches and is shared by every pipeline. Trained on first use, then loaded.
        """
        resolved = self.resolve(pipeline)
        spec, run, source = resolved.descriptor_spec, resolved.descriptor_run, resolved.source
        if spec is None or run is None or source is None:
            raise ValueError(f"descriptor {resolved.pipeline.descriptor!r} is classical: there is no trained model")
        denoiser = resolved.pipeline.denoiser

        def compute(r: RunDir) -> dict[str, Any]:
            initial = None if resolved.init is None else self.descriptor(resolved.init).model
            if source == "joint":
                train, validation = self.descriptor_banks()
                return joint.train_joint(
                    spec, self._denoiser_of(resolved).model, initial, train, validation, self.profile, self.data.seed, r
                )
            train, validation = self.descriptor_banks(denoiser if source == "denoised" else None)
            return training.train_descriptor(spec, train, validation, self.profile, self.data.seed, r, source, initial)

        metrics = self._train(run, compute)
        return Trained(resolved.pipeline.descriptor, training.load_model(run), training.load_history(run), metrics, run)

    def descriptor_banks(self, denoiser: str | None = None) -> tuple[PatchBank, PatchBank]:
        """(train, validation) banks the descriptors see: ``profile.descriptor_train_patches`` points per sequence.

        With a denoiser, its output of their noisy patches is attached as ``denoised`` (cached).
        """
        cap = self.profile.descriptor_train_patches
        train, validation = (cap_points(bank, cap) for bank in self.data.banks)
        if denoiser is None:
            return train, validation
        if train.noisy is None or validation.noisy is None:
            raise ValueError(f"{self.data.data_dir}: the training sequences have no noisy patches to denoise")
        spec, denoiser_run = self.denoiser_training_run(denoiser)
        run = RunDir(
            self.data.results_root,
            "denoised_train",
            {
                "denoiser": denoiser,
                "model": denoiser_run.key,
                "train_patches": self.profile.train_patches,
                "descriptor_train_patches": cap,
                "split": self.data.split,
                "data": self.data.fingerprint,
                "noise_seed": self.data.seed,
            },
        )
        noisy = {"train": train.noisy, "validation": validation.noisy}
        load_or_compute(
            run,
            lambda r: store_denoised(
                r, self._trained_denoiser(denoiser, spec, denoiser_run).model, noisy, self.profile.predict_batch_size
            ),
        )
        with np.load(run.path / "patches.npz") as stored:
            return with_denoised(train, stored["train"]), with_denoised(validation, stored["validation"])

    # ----- pipelines ------------------------------------------------------------------------
    def is_joint(self, pipeline: Pipeline | ResolvedPipeline) -> bool:
        """Whether a pipeline's descriptor was trained jointly with (a copy of) its denoiser."""
        return self.resolve(pipeline).is_joint

    def _denoiser_of(self, resolved: ResolvedPipeline) -> Trained:
        """The trained denoiser a resolved pipeline names (not its joint copy)."""
        if resolved.denoiser_spec is None or resolved.denoiser_run is None:
            raise ValueError(f"pipeline {resolved.pipeline.label} has no denoiser")
        return self._trained_denoiser(resolved.pipeline.denoiser, resolved.denoiser_spec, resolved.denoiser_run)

    def pipeline_denoiser(self, pipeline: Pipeline | ResolvedPipeline) -> tuple[keras.Model, str]:
        """(model, cache key) of the denoiser a pipeline runs.

        That is its own fine-tuned copy when the descriptor was trained jointly with it, else the
        trained denoiser.
        """
        resolved = self.resolve(pipeline)
        if resolved.is_joint:
            trained = self.descriptor(resolved)
            return joint.load_joint_denoiser(trained.run), trained.run.key
        trained = self._denoiser_of(resolved)
        return trained.model, trained.run.key

    def pipeline_denoiser_key(self, pipeline: Pipeline | ResolvedPipeline) -> str | None:
        """Cache key of the denoiser a pipeline runs (None for the 'none' and 'clean' inputs)."""
        return self.resolve(pipeline).denoiser_key

    def descriptor_key(self, pipeline: Pipeline | ResolvedPipeline) -> str:
        """Cache key of a pipeline's descriptor: its training run, or the classical method's name."""
        return self.resolve(pipeline).descriptor_key


def store_denoised(run: RunDir, model: keras.Model, noisy: dict[str, np.ndarray], batch_size: int) -> dict:
    """Denoise each array of ``noisy`` into ``run``'s patches.npz (same keys); return the timing."""
    start = time.perf_counter()
    outputs = {name: denoise_patches(model, array, batch_size) for name, array in noisy.items()}
    seconds = time.perf_counter() - start
    with atomic_path(run.file("patches.npz")) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **outputs)  # type: ignore[arg-type]  # numpy's stub: **arrays may not name allow_pickle
    count = sum(array.size // (array.shape[-1] * array.shape[-2]) for array in outputs.values())
    return {"seconds": seconds, "patches": count, "patches_per_second": count / seconds}
