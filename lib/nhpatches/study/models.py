"""The study's model store: every denoiser and descriptor, trained once under a key of its settings, then loaded.

A run's key holds its spec, schedule, seed, split, dataset fingerprint, profile and Keras backend
(and, for a descriptor, its training input and the run it starts from), so a changed setting
trains a new model and an unchanged one is never trained twice.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np
import pandas as pd

from nhpatches.core import config
from nhpatches.core.cache import RunDir, atomic_path, load_or_compute
from nhpatches.nets import specs
from nhpatches.nets.inference import denoise_patches
from nhpatches.study.dataset import StudyData
from nhpatches.study.pipelines import CLASSICAL_DESCRIPTORS, CLASSICAL_VERSION, INPUT_ONLY, Pipeline, lookup
from nhpatches.train import training
from nhpatches.train.batches import PatchBank, cap_points, with_denoised


@dataclasses.dataclass
class Trained:
    """A trained model with its per-epoch history and run metrics."""

    name: str
    model: keras.Model
    history: pd.DataFrame
    metrics: dict
    run: RunDir


@dataclasses.dataclass
class ModelStore:
    """Trains a study's models on first use and loads them afterwards."""

    data: StudyData
    force_retrain: bool = False
    #: λ of joint denoise-and-describe training (None: the spec's, see specs.DESCRIPTORS["hardnet_joint"]).
    joint_lambda: float | None = None
    #: Runs already retrained by this store: with force_retrain, each model trains once per study.
    _retrained: set = dataclasses.field(default_factory=set, init=False, repr=False)

    @property
    def profile(self) -> config.Profile:
        return self.data.profile

    def _must_train(self, run: RunDir) -> bool:
        """Whether a training run has to (re)run now: missing, or forced and not yet retrained here."""
        return not run.is_complete() or (self.force_retrain and run.key not in self._retrained)

    def _train(self, run: RunDir, compute) -> dict:
        """Run ``compute`` into ``run`` when it must train, else read its metrics."""
        if not self._must_train(run):
            return run.metrics()
        metrics = load_or_compute(run, compute, force=True)
        self._retrained.add(run.key)
        return metrics

    def run(self, experiment: str, spec: object, epochs: int, **extra) -> RunDir:
        """The cache folder of a training run (key: spec, schedule, seed, data, and ``extra``)."""
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
        # Accelerator settings change the numbers, so they key the run too; only where they differ from
        # the defaults, so that the cpu and smoke profiles' existing cache keys stay as they were.
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

    def descriptor_source(self, pipeline: Pipeline) -> str:
        """Which patches a pipeline's descriptor trains on: 'clean', 'noisy', 'denoised' or 'joint'."""
        denoiser, descriptor = pipeline
        spec = self.descriptor_spec(descriptor)
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

    def descriptor_training_run(self, pipeline: Pipeline) -> tuple[specs.DescriptorSpec, RunDir, str]:
        """(spec, cache folder, source) of the descriptor trained for a pipeline.

        The key holds the training input (for denoised input, the denoiser's run key) and, for a
        fine-tuned descriptor, the run key of the descriptor it starts from.
        """
        denoiser, descriptor = pipeline
        spec = self.descriptor_spec(descriptor)
        if denoiser not in INPUT_ONLY:
            lookup(specs.DENOISERS, denoiser, "denoiser")
        source = self.descriptor_source(pipeline)
        training_input = {"source": source}
        if source in ("denoised", "joint"):
            training_input.update(denoiser=denoiser, denoiser_key=self.denoiser_run_key(denoiser))
        init = None
        if spec.init_from is not None:
            init = self.descriptor_training_run(Pipeline(denoiser, spec.init_from))[1].key
        return (
            spec,
            self.run(
                f"descriptor_{descriptor}",
                spec,
                training.descriptor_epochs(spec, self.profile),
                training_input=training_input,
                init=init,
            ),
            source,
        )

    def descriptor_run_key(self, pipeline: Pipeline) -> str:
        """Cache key of the descriptor trained for a pipeline (without training it)."""
        return self.descriptor_training_run(pipeline)[1].key

    def descriptor(self, pipeline: Pipeline) -> Trained:
        """The descriptor of ``specs.DESCRIPTORS`` trained for ``pipeline``.

        A report descriptor trains on its pipeline's own input: the denoiser's output of the noisy
        training patches (clipped and truncated to uint8), the noisy patches for denoiser "none",
        or the clean ones for "clean". An extension with ``train_on="clean"`` trains on clean
        patches and is shared by every pipeline. Trained on first use, then loaded.
        """
        denoiser, name = pipeline
        spec, run, source = self.descriptor_training_run(pipeline)

        def compute(r: RunDir) -> dict:
            initial = self.descriptor(Pipeline(denoiser, spec.init_from)).model if spec.init_from else None
            if source == "joint":
                train, validation = self.descriptor_banks()
                return training.train_joint(
                    spec, self.denoiser(denoiser).model, initial, train, validation, self.profile, self.data.seed, r
                )
            train, validation = self.descriptor_banks(denoiser if source == "denoised" else None)
            return training.train_descriptor(spec, train, validation, self.profile, self.data.seed, r, source, initial)

        metrics = self._train(run, compute)
        return Trained(name, training.load_model(run), training.load_history(run), metrics, run)

    def descriptor_banks(self, denoiser: str | None = None) -> tuple[PatchBank, PatchBank]:
        """(train, validation) banks the descriptors see: ``profile.descriptor_train_patches`` points
        per sequence; with a denoiser, its output of their noisy patches attached as ``denoised``
        (cached)."""
        cap = self.profile.descriptor_train_patches
        train, validation = (cap_points(bank, cap) for bank in self.data.banks)
        if denoiser is None:
            return train, validation
        run = RunDir(
            self.data.results_root,
            "denoised_train",
            {
                "denoiser": denoiser,
                "model": self.denoiser_run_key(denoiser),
                "train_patches": self.profile.train_patches,
                "descriptor_train_patches": cap,
                "split": self.data.split,
                "data": self.data.fingerprint,
                "noise_seed": self.data.seed,
            },
        )
        noisy = {"train": train.noisy, "validation": validation.noisy}
        load_or_compute(
            run, lambda r: store_denoised(r, self.denoiser(denoiser).model, noisy, self.profile.predict_batch_size)
        )
        with np.load(run.path / "patches.npz") as stored:
            return with_denoised(train, stored["train"]), with_denoised(validation, stored["validation"])

    # ----- pipelines ------------------------------------------------------------------------
    def is_joint(self, pipeline: Pipeline) -> bool:
        """Whether a pipeline's descriptor was trained jointly with (a copy of) its denoiser."""
        return pipeline.descriptor not in CLASSICAL_DESCRIPTORS and self.descriptor_source(pipeline) == "joint"

    def pipeline_denoiser(self, pipeline: Pipeline) -> tuple[keras.Model, str]:
        """(model, cache key) of the denoiser a pipeline runs: its own fine-tuned copy when the
        descriptor was trained jointly with it, else the trained denoiser."""
        if self.is_joint(pipeline):
            trained = self.descriptor(pipeline)
            return training.load_joint_denoiser(trained.run), trained.run.key
        return self.denoiser(pipeline.denoiser).model, self.denoiser_run_key(pipeline.denoiser)

    def pipeline_denoiser_key(self, pipeline: Pipeline) -> str | None:
        """Cache key of the denoiser a pipeline runs (None for the 'none' and 'clean' inputs)."""
        if pipeline.denoiser in INPUT_ONLY:
            return None
        if self.is_joint(pipeline):
            return self.descriptor_run_key(pipeline)
        return self.denoiser_run_key(pipeline.denoiser)

    def descriptor_key(self, pipeline: Pipeline) -> str:
        """Cache key of a pipeline's descriptor: its training run, or the classical method's name."""
        if pipeline.descriptor in CLASSICAL_DESCRIPTORS:
            return f"classical:{pipeline.descriptor}:{CLASSICAL_VERSION}"
        return self.descriptor_run_key(pipeline)


def store_denoised(run: RunDir, model: keras.Model, noisy: dict[str, np.ndarray], batch_size: int) -> dict:
    """Denoise each array of ``noisy`` into ``run``'s patches.npz (same keys); return the timing."""
    start = time.perf_counter()
    outputs = {name: denoise_patches(model, array, batch_size) for name, array in noisy.items()}
    seconds = time.perf_counter() - start
    with atomic_path(run.file("patches.npz")) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **outputs)
    count = sum(array.size // (array.shape[-1] * array.shape[-2]) for array in outputs.values())
    return {"seconds": seconds, "patches": count, "patches_per_second": count / seconds}
