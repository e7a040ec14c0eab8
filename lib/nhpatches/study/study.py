"""The study as one object: a thin facade over its data, its model store and its pipeline runner.

A notebook opens a :class:`Study` with its parameters and asks it for what it needs;
everything expensive (dataset build, training, denoising the test set, evaluation)
is cached on disk under a key of its settings, so later notebooks reuse earlier runs::

    study = Study.open(profile="cpu", data_dir=None, seed=0)
    unet = study.denoiser("unet")                   # trains once, then loads
    results = study.evaluate("unet", "baseline")    # a Pipeline(denoiser, descriptor): HPatches mAPs, cached

Each job has its own collaborator: :class:`~nhpatches.study.dataset.StudyData` (``study.data``:
sequences, banks, task files), :class:`~nhpatches.study.models.ModelStore` (``study.models``:
train or load by key), :class:`~nhpatches.study.runner.PipelineRunner` (``study.runner``: test
patches, evaluation, noise sweep); multi-seed tables live here; the notebook views are the plain
functions of :mod:`nhpatches.study.views`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from nhpatches import data
from nhpatches.core import config
from nhpatches.data import sweep
from nhpatches.study import report
from nhpatches.study.dataset import StudyData, embedded_dataset_dir
from nhpatches.study.models import ModelStore, Trained
from nhpatches.study.pipelines import Pipeline
from nhpatches.study.runner import Describe, PipelineRunner


@dataclasses.dataclass
class Study:
    """Data, models and pipelines of one profile on one dataset, for one seed or several."""

    data: StudyData
    models: ModelStore
    runner: PipelineRunner
    #: Seeds of a multi-seed run (None: just ``data.seed``); see ``studies`` and ``table``.
    seeds: tuple[int, ...] | None = None

    @classmethod
    def open(
        cls,
        profile: str = "cpu",
        data_dir: str | Path | None = None,
        seed: int = 0,
        split: str = "a",
        force_retrain: bool = False,
        epochs: int | None = None,
        seeds: Sequence[int] | None = None,
        joint_lambda: float | None = None,
        results_root: Path | None = None,
        **overrides,
    ) -> Study:
        """Open a study; with no ``data_dir`` the embedded dataset of the profile is built (once).

        ``seeds`` (e.g. [0, 1, 2]) makes a multi-seed study: every model is trained once per seed
        (and the synthesised noise where the data stores none, e.g. hpatches-release) and ``table`` gives the
        mean and std over the seeds; the study itself, its figures and training curves use the first
        seed (``seed`` is then ignored). ``joint_lambda`` is λ of the joint denoise-and-describe
        training (notebook 08; None: 0.01, the spec's).

        ``epochs`` (when given) replaces the profile's epoch counts of every model (U-Net, DnCNN,
        descriptors; fine-tuning gets round(epochs * 13 / 40), at least 1; DnCNN keeps its last
        epoch); other keyword arguments replace single :class:`~nhpatches.core.config.Profile`
        fields. Either way the changed settings are part of the cache keys.
        """
        if epochs is not None:
            if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
                raise ValueError(f"epochs must be a positive integer or None, got {epochs!r}")
            # The report's ratio of fine-tuning to training epochs (13 / 40) is kept; DnCNN keeps its last epoch.
            overrides = {
                "epochs_unet": epochs,
                "epochs_dncnn": epochs,
                "epochs_descriptor": epochs,
                "epochs_retrain": max(1, round(epochs * 13 / 40)),
                "dncnn_keep_epoch": None,
                **overrides,
            }
        settings = config.get_profile(profile, **overrides)
        if seeds is not None:
            seeds = tuple(seeds)
            if (
                not seeds
                or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)
                or len(set(seeds)) != len(seeds)
            ):
                raise ValueError(f"seeds must be distinct non-negative integers, got {seeds!r}")
            seed = seeds[0]
        if joint_lambda is not None and not (isinstance(joint_lambda, (int, float)) and joint_lambda >= 0):
            raise ValueError(f"joint_lambda must be a number >= 0 or None, got {joint_lambda!r}")
        if data_dir is None:
            data_dir = embedded_dataset_dir(settings)
        else:
            data_dir = Path(data_dir).expanduser().resolve()
            data.detect_layout(data_dir)  # fails early, naming the path and the expected layout
        study_data = StudyData(settings, Path(data_dir), seed, split, results_root or config.results_dir())
        return cls.of(study_data, force_retrain, joint_lambda, seeds)

    @classmethod
    def of(
        cls,
        study_data: StudyData,
        force_retrain: bool = False,
        joint_lambda: float | None = None,
        seeds: tuple[int, ...] | None = None,
    ) -> Study:
        """A study over ``study_data`` with its own model store and runner."""
        models = ModelStore(study_data, force_retrain, joint_lambda)
        return cls(study_data, models, PipelineRunner(study_data, models), seeds)

    # ----- the data's facts -----------------------------------------------------------------
    profile = property(lambda self: self.data.profile, doc="The run profile (sizes and schedules).")
    data_dir = property(lambda self: self.data.data_dir, doc="The dataset folder.")
    seed = property(lambda self: self.data.seed, doc="The seed of this study's training and synthesised noise.")
    split = property(lambda self: self.data.split, doc="The HPatches split.")
    layout = property(lambda self: self.data.layout, doc="'embedded', 'nhpatches' or 'release'.")
    fingerprint = property(lambda self: self.data.fingerprint, doc="Fingerprint of the dataset on disk.")
    train_sequences = property(lambda self: self.data.train_sequences, doc="Training sequences of the split.")
    test_sequences = property(lambda self: self.data.test_sequences, doc="Test sequences of the split.")
    tasks = property(lambda self: self.data.tasks, doc="The test sequences' task files.")

    # ----- models and pipelines (each pipeline as Pipeline(denoiser, descriptor) or the two names) -------
    def denoiser(self, name: str) -> Trained:
        """A trained denoiser of ``specs.DENOISERS`` (trained on first use, then loaded)."""
        return self.models.denoiser(name)

    def denoiser_run_key(self, name: str) -> str:
        """Cache key of a denoiser's training run (without training it)."""
        return self.models.denoiser_run_key(name)

    def descriptor(self, *pipeline) -> Trained:
        """The descriptor trained for a pipeline (denoiser, descriptor); see ModelStore.descriptor."""
        return self.models.descriptor(Pipeline.of(*pipeline))

    def descriptor_source(self, *pipeline) -> str:
        """'clean', 'noisy', 'denoised' or 'joint': what a pipeline's descriptor trains on."""
        return self.models.descriptor_source(Pipeline.of(*pipeline))

    def descriptor_run_key(self, *pipeline) -> str:
        """Cache key of the descriptor trained for a pipeline (without training it)."""
        return self.models.descriptor_run_key(Pipeline.of(*pipeline))

    def pipeline_denoiser(self, *pipeline) -> tuple[keras.Model, str]:
        """(model, key) of the denoiser a pipeline runs (a jointly tuned copy for a joint descriptor)."""
        return self.models.pipeline_denoiser(Pipeline.of(*pipeline))

    def test_patches(self, denoiser: str, descriptor: str | None = None) -> dict[str, np.ndarray]:
        """Test patches as the descriptor sees them (see PipelineRunner.test_patches)."""
        return self.runner.test_patches(denoiser if descriptor is None else Pipeline(denoiser, descriptor))

    def evaluate(self, *pipeline) -> dict:
        """HPatches verification / matching / retrieval of one pipeline (cached)."""
        return self.runner.evaluate(Pipeline.of(*pipeline))

    def noise_sweep(
        self,
        pipelines: Sequence[Pipeline],
        sigmas: tuple[float, ...] = sweep.SWEEP_SIGMAS,
        extra: dict[str, Describe] | None = None,
    ) -> pd.DataFrame:
        """Task mAPs of pipelines on the test set re-noised at each σ (see PipelineRunner.noise_sweep)."""
        return self.runner.noise_sweep(tuple(pipelines), sigmas, extra)

    # ----- seeds ----------------------------------------------------------------------------
    @property
    def seed_list(self) -> tuple[int, ...]:
        """The seeds of this study: ``seeds``, or just ``seed``."""
        return self.seeds or (self.seed,)

    @functools.cached_property
    def studies(self) -> tuple[Study, ...]:
        """One study per seed (this one for the first), sharing data files, caches and settings."""
        return tuple(
            self
            if s == self.seed
            else Study.of(dataclasses.replace(self.data, seed=s), self.models.force_retrain, self.models.joint_lambda)
            for s in self.seed_list
        )

    @property
    def figures(self) -> str:
        """Name of the figures folder of this run: the profile, plus the seeds when there are several."""
        if len(self.seed_list) == 1:
            return self.profile.name
        return f"{self.profile.name}_seeds_" + "_".join(str(s) for s in self.seed_list)

    def results(self, pipelines: Sequence[Pipeline]) -> list[list[dict]]:
        """Evaluation results of the pipelines, per seed: [seed][pipeline]."""
        return [[study.evaluate(pipeline) for pipeline in pipelines] for study in self.studies]

    def table(self, pipelines: Sequence[Pipeline]) -> pd.DataFrame:
        """Table 2 style mAPs of the pipelines: the mean over the seeds, their std and the seeds used."""
        return report.seed_summary([report.table2(per_seed) for per_seed in self.results(pipelines)], self.seed_list)
