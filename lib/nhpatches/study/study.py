"""The study as one object: data, task files, cached models and evaluated pipelines.

A notebook opens a :class:`Study` with its parameters and asks it for what it needs;
everything expensive (dataset build, training, denoising the test set, evaluation)
is cached on disk under a key of its settings, so later notebooks reuse earlier runs::

    study = Study.open(profile="cpu", data_dir=None, seed=0)
    unet = study.denoiser("unet")                   # trains once, then loads
    results = study.evaluate("unet", "baseline")    # HPatches mAPs, cached
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from nhpatches import data, evaluation
from nhpatches.core import config
from nhpatches.core.cache import RunDir, atomic_path, load_or_compute
from nhpatches.data import embedded, sweep, tasks
from nhpatches.evaluation.quality import denoising_quality
from nhpatches.nets import specs
from nhpatches.nets.inference import denoise_patches, describe_each, describe_patches
from nhpatches.study import report
from nhpatches.train import training
from nhpatches.train.batches import (
    PatchBank,
    bank_from_sequences,
    cap_points,
    with_denoised,
)

#: Table 2 of the study: (denoiser, descriptor) pairs in the report's row order.
TABLE2_PIPELINES: tuple[tuple[str, str], ...] = (
    ("unet", "baseline"),
    ("dncnn_adam", "baseline"),
    ("dncnn_adam", "updated"),
    ("dncnn_adam", "deep"),
    ("unet", "retrained"),
    ("dncnn_adam", "retrained"),
)
#: Beyond the report (notebook 08): the HardNet-style extensions beside the report's baseline rows.
EXTENSION_PIPELINES: tuple[tuple[str, str], ...] = (
    ("none", "hardnet"),
    ("unet", "hardnet"),
    ("unet_adam", "hardnet"),
    ("unet_adam", "hardnet_noswap"),
    ("unet_adam", "hardnet_flip"),
    ("clean", "hardnet"),
)
#: Notebook 08's table: classical baselines, the extensions, the joint pipeline and the report's rows.
BEYOND_PIPELINES: tuple[tuple[str, str], ...] = (
    ("none", "raw"),
    ("none", "sift"),
    ("unet_adam", "sift"),
    ("none", "hardnet_flip"),
    *(pipeline for pipeline in EXTENSION_PIPELINES if pipeline != ("none", "hardnet")),
    ("unet_adam", "hardnet_joint"),
    ("unet", "baseline"),
    ("clean", "baseline"),
)
#: Training-data ablation (notebook 08): one descriptor trained on clean, noisy or denoised patches,
#: each tested on the denoiser's output.
ABLATION_PIPELINES: tuple[tuple[str, str], ...] = (
    ("unet_adam", "hardnet_flip"),
    ("unet_adam", "hardnet_flip_noisy"),
    ("unet_adam", "hardnet_flip_denoised"),
)
#: Joint denoise-and-describe against two-stage training with the same number of steps (notebook 08).
JOINT_PIPELINES: tuple[tuple[str, str], ...] = (
    ("unet_adam", "hardnet_flip"),
    ("unet_adam", "hardnet_two_stage"),
    ("unet_adam", "hardnet_joint"),
)
#: The noise sweep's pipelines (notebook 08).
SWEEP_PIPELINES: tuple[tuple[str, str], ...] = (
    ("none", "raw"),
    ("none", "sift"),
    ("unet", "baseline"),
    ("none", "hardnet_flip"),
    ("unet_adam", "hardnet_flip"),
    ("unet_adam", "hardnet_joint"),
)
def extension_pipelines(pipelines: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """The pipelines whose descriptor is a named extension (not the report's, not classical)."""
    return tuple(p for p in pipelines if p[1] in specs.DESCRIPTORS
                 and specs.DESCRIPTORS[p[1]].family == "extension")


#: Pseudo-denoisers: the noisy patches as they are, and the clean patches (an upper bound).
INPUT_ONLY = ("none", "clean")
#: Descriptors with no training (nhpatches.classical): raw pixels and OpenCV's SIFT.
CLASSICAL_DESCRIPTORS = ("raw", "sift")
#: Bumped when a classical descriptor's computation changes (part of the evaluation cache key).
CLASSICAL_VERSION = 1


@dataclasses.dataclass
class Trained:
    """A trained model with its per-epoch history and run metrics."""

    name: str
    model: keras.Model
    history: pd.DataFrame
    metrics: dict
    run: RunDir


@dataclasses.dataclass
class Study:
    """Data, task files and caches of one profile on one dataset."""

    profile: config.Profile
    data_dir: Path
    seed: int = 0
    split: str = "a"
    force_retrain: bool = False
    results_root: Path = dataclasses.field(default_factory=config.results_dir)
    #: λ of joint denoise-and-describe training (None: the spec's, see specs.DESCRIPTORS["hardnet_joint"]).
    joint_lambda: float | None = None
    #: Seeds of a multi-seed run (None: just ``seed``); see ``studies`` and ``table``.
    seeds: tuple[int, ...] | None = None
    #: Runs already retrained by this study object: with force_retrain, each model trains once per study.
    _retrained: set = dataclasses.field(default_factory=set, init=False, repr=False)

    def _must_train(self, run: RunDir) -> bool:
        """Whether a training run has to (re)run now: missing, or forced and not yet retrained here."""
        return not run.is_complete() or (self.force_retrain and run.key not in self._retrained)

    @classmethod
    def open(cls, profile: str = "cpu", data_dir: str | Path | None = None, seed: int = 0, split: str = "a",
             force_retrain: bool = False, epochs: int | None = None, seeds: "Sequence[int] | None" = None,
             joint_lambda: float | None = None, **overrides) -> "Study":
        """Open a study; with no ``data_dir`` the embedded dataset of the profile is built (once).

        ``seeds`` (e.g. [0, 1, 2]) makes a multi-seed study: every model is trained once per seed
        (and the synthesised noise where the data stores none, e.g. hpatches-release) and ``table`` gives the
        mean and std over the seeds; the study itself, its figures and training curves use the first
        seed (``seed`` is then ignored). ``joint_lambda`` is λ of the joint denoise-and-describe
        training (notebook 08; None: 0.01, the spec's).

        ``epochs`` (when given) replaces the profile's epoch counts of every model (U-Net, DnCNN,
        descriptors; fine-tuning gets round(epochs * 13 / 40), at least 1; DnCNN keeps its last
        epoch); other keyword arguments replace single :class:`~nhpatches.config.Profile`
        fields. Either way the changed settings are part of the cache keys.
        """
        if epochs is not None:
            if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
                raise ValueError(f"epochs must be a positive integer or None, got {epochs!r}")
            # The report's ratio of fine-tuning to training epochs (13 / 40) is kept; DnCNN keeps its last epoch.
            overrides = {"epochs_unet": epochs, "epochs_dncnn": epochs, "epochs_descriptor": epochs,
                         "epochs_retrain": max(1, round(epochs * 13 / 40)), "dncnn_keep_epoch": None,
                         **overrides}
        settings = config.get_profile(profile, **overrides)
        if seeds is not None:
            seeds = tuple(seeds)
            if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds) \
                    or len(set(seeds)) != len(seeds):
                raise ValueError(f"seeds must be distinct non-negative integers, got {seeds!r}")
            seed = seeds[0]
        if joint_lambda is not None and not (isinstance(joint_lambda, (int, float)) and joint_lambda >= 0):
            raise ValueError(f"joint_lambda must be a number >= 0 or None, got {joint_lambda!r}")
        if data_dir is None:
            data_dir = embedded_dataset_dir(settings)
        else:
            data_dir = Path(data_dir).expanduser().resolve()
            data.detect_layout(data_dir)  # fails early, naming the path and the expected layout
        return cls(settings, Path(data_dir), seed, split, force_retrain, joint_lambda=joint_lambda, seeds=seeds)

    # ----- seeds ----------------------------------------------------------------------------
    @property
    def seed_list(self) -> tuple[int, ...]:
        """The seeds of this study: ``seeds``, or just ``seed``."""
        return self.seeds or (self.seed,)

    @functools.cached_property
    def studies(self) -> tuple["Study", ...]:
        """One study per seed (this one for the first), sharing data, caches and settings."""
        return tuple(self if s == self.seed else dataclasses.replace(self, seed=s, seeds=None)
                     for s in self.seed_list)

    @property
    def figures(self) -> str:
        """Name of the figures folder of this run: the profile, plus the seeds when there are several."""
        if len(self.seed_list) == 1:
            return self.profile.name
        return f"{self.profile.name}_seeds_" + "_".join(str(s) for s in self.seed_list)

    def facts(self, denoiser: str, descriptor: str) -> dict:
        """What a pipeline's models are, without training them: the descriptor's training data, loss
        and epochs, the denoiser's kept epoch and the seeds."""
        seeds = ",".join(str(s) for s in self.seed_list)
        den_epochs = "-" if denoiser in INPUT_ONLY else str(training.denoiser_epochs(
            _lookup(specs.DENOISERS, denoiser, "denoiser"), self.profile)[1])
        if descriptor in CLASSICAL_DESCRIPTORS:
            return {"training data": "none (no training)", "loss": "-", "denoiser epochs": den_epochs,
                    "descriptor epochs": "-", "seeds": seeds}
        spec = self.descriptor_spec(descriptor)
        source = self.descriptor_source(descriptor, denoiser)
        data_text = {"denoised": f"denoised by {denoiser}", "clean": "clean", "noisy": "noisy",
                     "joint": f"noisy, through {denoiser} fine-tuned jointly"}[source]
        loss = {"triplet": "triplet (Eq. 2)", "hard_triplet": "hard triplet (Eq. 4)",
                "hardest_negative": "hardest negative (HardNet)"}[spec.loss]
        if source == "joint":
            loss += f" + {spec.joint_weight:g}·MAE"
        epochs, parent = str(training.descriptor_epochs(spec, self.profile)), spec.init_from
        while parent is not None:  # fine-tuned: the parent's epochs first
            parent_spec = self.descriptor_spec(parent)
            epochs = f"{training.descriptor_epochs(parent_spec, self.profile)} ({parent}) + {epochs}"
            parent = parent_spec.init_from
        return {"training data": data_text, "loss": loss, "denoiser epochs": den_epochs,
                "descriptor epochs": epochs, "seeds": seeds}

    def with_facts(self, table: pd.DataFrame) -> pd.DataFrame:
        """A pipeline table with ``facts`` columns inserted after its descriptor column."""
        facts = pd.DataFrame([self.facts(d, s) for d, s in zip(table.denoiser, table.descriptor)])
        position = table.columns.get_loc("descriptor") + 1
        out = table.drop(columns=[c for c in facts.columns if c in table.columns])
        for i, column in enumerate(facts.columns):
            out.insert(position + i, column, facts[column].to_numpy())
        return out

    def results(self, pipelines: tuple[tuple[str, str], ...]) -> list[list[dict]]:
        """Evaluation results of the pipelines, per seed: [seed][pipeline]."""
        return [[study.evaluate(den, desc) for den, desc in pipelines] for study in self.studies]

    def table(self, pipelines: tuple[tuple[str, str], ...]) -> pd.DataFrame:
        """Table 2 style mAPs of the pipelines: the mean over the seeds, their std and the seeds used."""
        return report.seed_summary([report.table2(per_seed) for per_seed in self.results(pipelines)],
                                   self.seed_list)

    # ----- data -----------------------------------------------------------------------------
    @functools.cached_property
    def fingerprint(self) -> str:
        """Fingerprint of the dataset on disk (part of every cache key)."""
        return data.dataset_fingerprint(self.data_dir)

    @functools.cached_property
    def layout(self) -> str:
        """'embedded', 'nhpatches' or 'release'."""
        return data.detect_layout(self.data_dir)

    @functools.cached_property
    def train_sequences(self) -> dict[str, data.Sequence]:
        """Training sequences of the split (capped at profile.train_patches)."""
        return data.load_dataset(self.data_dir, self.split, "train", max_patches=self.profile.train_patches,
                                 noise_seed=self.seed)

    @functools.cached_property
    def test_sequences(self) -> dict[str, data.Sequence]:
        """Test sequences of the split (capped at profile.test_patches)."""
        return data.load_dataset(self.data_dir, self.split, "test", max_patches=self.profile.test_patches,
                                 noise_seed=self.seed)

    @functools.cached_property
    def banks(self) -> tuple[PatchBank, PatchBank]:
        """(train, validation) patch banks; validation holds out about 1 in 6 source scenes."""
        train, validation = hold_out_scenes(self.train_sequences)
        return bank_from_sequences(train), bank_from_sequences(validation)

    @functools.cached_property
    def tasks(self) -> tasks.TaskSet:
        """Verification and retrieval task files for the test sequences (official lists when they apply)."""
        sizes = {name: seq.num_patches for name, seq in self.test_sequences.items()}
        if self.layout != "embedded" and self.profile.test_patches is None:
            return tasks.official_tasks(self.split, sizes, seed=42)
        return self._generated_tasks(sizes)

    def _generated_tasks(self, sizes: Mapping[str, int]) -> tasks.TaskSet:
        """Task files generated (recipes V and R, seed 42) for the first ``sizes[name]`` test points."""
        clean_ref = {name: seq.clean[0, :sizes[name]] for name, seq in self.test_sequences.items()
                     if seq.clean is not None}
        # On a small test set, keep two thirds of the points for distractors (the official ratio is 1:2).
        num_queries = min(self.profile.num_queries, sum(sizes.values()) // 3)
        return tasks.load_or_generate_tasks(
            self._tasks_dir(sizes, num_queries), self.split, sizes, seed=42, clean_ref=clean_ref or None,
            num_pairs=self.profile.num_pairs, num_queries=num_queries,
            num_distractors=self.profile.num_distractors)

    def _tasks_dir(self, sizes: Mapping[str, int], num_queries: int) -> Path:
        """Task files live next to the dataset, or under results/ if the dataset is read-only."""
        sub = (f"split-{self.split}_n{sum(sizes.values())}_p{self.profile.num_pairs}_q{num_queries}"
               f"_d{self.profile.num_distractors}")
        folder = self.data_dir / "tasks" / sub
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            folder = self.results_root / "tasks" / self.fingerprint / sub
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    # ----- models ---------------------------------------------------------------------------
    def _run(self, experiment: str, spec: object, epochs: int, **extra) -> RunDir:
        """The cache folder of a training run (key: spec, schedule, seed, data, and ``extra``)."""
        profile = dataclasses.asdict(self.profile)
        schedule = {k: profile[k] for k in (
            "train_patches", "steps_per_epoch", "validation_steps", "batch_size", "denoiser_batch_size",
            "dncnn_batch_size", "descriptor_steps_per_epoch", "descriptor_validation_steps",
            "descriptor_train_patches")}
        # Accelerator settings change the numbers, so they key the run too; only where they differ from
        # the defaults, so that the cpu and smoke profiles' existing cache keys stay as they were.
        defaults = {f.name: f.default for f in dataclasses.fields(config.Profile)}
        schedule.update({k: profile[k] for k in ("device_sampling", "mixed_precision", "jit_compile", "devices")
                         if profile[k] != defaults[k]})
        # The backend is part of the key: the same seed gives different weights on TensorFlow, JAX and
        # PyTorch, so a run trained on one backend is never silently reused on another.
        settings = {"spec": dataclasses.asdict(spec), "epochs": epochs, "schedule": schedule, "seed": self.seed,
                    "split": self.split, "data": self.fingerprint, "profile": self.profile.name,
                    "backend": keras.backend.backend(), **extra}
        return RunDir(self.results_root, experiment, settings)

    def _denoiser_training_run(self, name: str) -> tuple[specs.DenoiserSpec, RunDir]:
        """(spec, cache folder) of a denoiser's training run."""
        spec = _lookup(specs.DENOISERS, name, "denoiser")
        epochs, keep = training.denoiser_epochs(spec, self.profile)
        return spec, self._run(f"denoiser_{name}", spec, epochs, kept_epoch=keep)

    def denoiser(self, name: str) -> Trained:
        """A trained denoiser of ``specs.DENOISERS`` (trained on first use, then loaded)."""
        spec, run = self._denoiser_training_run(name)
        if self._must_train(run):
            metrics = load_or_compute(run, lambda r: training.train_denoiser(
                spec, *self.banks, self.profile, self.seed, r), force=True)
            self._retrained.add(run.key)
        else:
            metrics = run.metrics()
        return Trained(name, training.load_model(run), training.load_history(run), metrics, run)

    def denoiser_run_key(self, denoiser: str) -> str:
        """Cache key of a denoiser's training run (without training it)."""
        return self._denoiser_training_run(denoiser)[1].key

    def descriptor_spec(self, descriptor: str) -> specs.DescriptorSpec:
        """A descriptor's spec; for joint training with this study's ``joint_lambda`` when that is set."""
        spec = _lookup(specs.DESCRIPTORS, descriptor, "descriptor")
        if spec.train_on == "joint" and self.joint_lambda is not None:
            spec = dataclasses.replace(spec, joint_weight=float(self.joint_lambda))
        return spec

    def descriptor_source(self, descriptor: str, denoiser: str) -> str:
        """Which patches a descriptor of a pipeline trains on: 'clean', 'noisy', 'denoised' or 'joint'."""
        spec = self.descriptor_spec(descriptor)
        if spec.train_on in ("clean", "noisy"):
            return spec.train_on
        if spec.train_on == "joint":
            if denoiser in INPUT_ONLY:
                raise ValueError(f"descriptor {descriptor!r} fine-tunes a denoiser jointly; pipeline "
                                 f"{denoiser!r} has none (expected one of {sorted(specs.DENOISERS)})")
            return "joint"
        if denoiser == "clean":
            return "clean"
        if spec.train_on != "pipeline":
            raise ValueError(f"descriptor {descriptor!r}: train_on must be 'pipeline', 'clean', 'noisy' or "
                             f"'joint', got {spec.train_on!r}")
        return "noisy" if denoiser == "none" else "denoised"

    def _descriptor_training_run(self, descriptor: str, denoiser: str) -> tuple[specs.DescriptorSpec, RunDir, str]:
        """(spec, cache folder, source) of the descriptor trained for a pipeline.

        The key holds the training input (for denoised input, the denoiser's run key) and, for a
        fine-tuned descriptor, the run key of the descriptor it starts from.
        """
        spec = self.descriptor_spec(descriptor)
        if denoiser not in INPUT_ONLY:
            _lookup(specs.DENOISERS, denoiser, "denoiser")
        source = self.descriptor_source(descriptor, denoiser)
        training_input = {"source": source}
        if source in ("denoised", "joint"):
            training_input.update(denoiser=denoiser, denoiser_key=self.denoiser_run_key(denoiser))
        init = None
        if spec.init_from is not None:
            init = self._descriptor_training_run(spec.init_from, denoiser)[1].key
        return spec, self._run(f"descriptor_{descriptor}", spec, training.descriptor_epochs(spec, self.profile),
                               training_input=training_input, init=init), source

    def descriptor_run_key(self, descriptor: str, denoiser: str) -> str:
        """Cache key of the descriptor trained for a pipeline (without training it)."""
        return self._descriptor_training_run(descriptor, denoiser)[1].key

    def descriptor(self, name: str, denoiser: str) -> Trained:
        """The descriptor of ``specs.DESCRIPTORS`` trained for the pipeline ``denoiser + name``.

        A report descriptor trains on its pipeline's own input: the denoiser's output of the noisy
        training patches (clipped and truncated to uint8), the noisy patches for ``denoiser="none"``,
        or the clean ones for ``"clean"``. An extension with ``train_on="clean"`` trains on clean
        patches and is shared by every pipeline. Trained on first use, then loaded.
        """
        spec, run, source = self._descriptor_training_run(name, denoiser)
        if self._must_train(run):
            initial = self.descriptor(spec.init_from, denoiser).model if spec.init_from else None
            if source == "joint":
                train, validation = self.descriptor_banks()
                start = self.denoiser(denoiser).model
                compute = lambda r: training.train_joint(spec, start, initial, train, validation,  # noqa: E731
                                                         self.profile, self.seed, r)
            else:
                train, validation = self.descriptor_banks(denoiser if source == "denoised" else None)
                compute = lambda r: training.train_descriptor(  # noqa: E731
                    spec, train, validation, self.profile, self.seed, r, source, initial)
            metrics = load_or_compute(run, compute, force=True)
            self._retrained.add(run.key)
        else:
            metrics = run.metrics()
        return Trained(name, training.load_model(run), training.load_history(run), metrics, run)

    def pipeline_denoiser(self, denoiser: str, descriptor: str | None = None) -> tuple[keras.Model, str]:
        """(model, cache key) of the denoiser a pipeline runs: its own fine-tuned copy when the
        descriptor was trained jointly with it, else the trained ``denoiser``."""
        if descriptor is not None and self._is_joint(descriptor, denoiser):
            trained = self.descriptor(descriptor, denoiser)
            return training.load_joint_denoiser(trained.run), trained.run.key
        return self.denoiser(denoiser).model, self.denoiser_run_key(denoiser)

    def descriptor_banks(self, denoiser: str | None = None) -> tuple[PatchBank, PatchBank]:
        """(train, validation) banks the descriptors see: ``profile.descriptor_train_patches`` points
        per sequence; with a denoiser, its output of their noisy patches attached as ``denoised``
        (cached)."""
        cap = self.profile.descriptor_train_patches
        train, validation = (cap_points(bank, cap) for bank in self.banks)
        if denoiser is None:
            return train, validation
        run = RunDir(self.results_root, "denoised_train", {
            "denoiser": denoiser, "model": self.denoiser_run_key(denoiser), "train_patches": self.profile.train_patches,
            "descriptor_train_patches": cap, "split": self.split, "data": self.fingerprint, "noise_seed": self.seed})
        load_or_compute(run, lambda r: self._denoise_banks(denoiser, (train, validation), r))
        with np.load(run.path / "patches.npz") as stored:
            return with_denoised(train, stored["train"]), with_denoised(validation, stored["validation"])

    def _denoise_banks(self, denoiser: str, banks: tuple[PatchBank, PatchBank], run: RunDir) -> dict:
        """Denoise the noisy patches of the descriptor banks and store them; return the timing."""
        model = self.denoiser(denoiser).model
        start = time.perf_counter()
        outputs = {role: denoise_patches(model, bank.noisy, self.profile.predict_batch_size)
                   for role, bank in zip(("train", "validation"), banks)}
        seconds = time.perf_counter() - start
        with atomic_path(run.file("patches.npz")) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **outputs)
        count = sum(array.size // array[0, 0].size for array in outputs.values())
        return {"seconds": seconds, "patches": count, "patches_per_second": count / seconds}

    # ----- pipelines ------------------------------------------------------------------------
    def test_patches(self, denoiser: str, descriptor: str | None = None) -> dict[str, np.ndarray]:
        """Test patches as the descriptor sees them: 'clean', 'none' (noisy) or denoised (by the
        pipeline's own fine-tuned denoiser when ``descriptor`` was trained jointly with it).

        Shape: per sequence (16, N, P, P) uint8.
        """
        if denoiser in INPUT_ONLY:
            attribute = "clean" if denoiser == "clean" else "noisy"
            return {name: getattr(seq, attribute) for name, seq in self.test_sequences.items()}
        run = self._denoised_run(denoiser, self._pipeline_denoiser_key(denoiser, descriptor))
        load_or_compute(run, lambda r: self._denoise_test(self.pipeline_denoiser(denoiser, descriptor)[0], r))
        with np.load(run.path / "patches.npz") as stored:
            return {name: stored[name] for name in self.test_sequences}

    def _is_joint(self, descriptor: str, denoiser: str) -> bool:
        """Whether a pipeline's descriptor was trained jointly with (a copy of) its denoiser."""
        return descriptor not in CLASSICAL_DESCRIPTORS and self.descriptor_source(descriptor, denoiser) == "joint"

    def _pipeline_denoiser_key(self, denoiser: str, descriptor: str | None) -> str | None:
        """Cache key of the denoiser a pipeline runs (None for the 'none' and 'clean' inputs)."""
        if denoiser in INPUT_ONLY:
            return None
        if descriptor is not None and self._is_joint(descriptor, denoiser):
            return self.descriptor_run_key(descriptor, denoiser)
        return self.denoiser_run_key(denoiser)

    def _denoised_run(self, denoiser: str, model_key: str) -> RunDir:
        """Cache folder of a denoiser's output on the test set (``model_key``: the model's run key)."""
        return RunDir(self.results_root, "denoised_test", {
            "denoiser": denoiser, "model": model_key,
            "test_patches": self.profile.test_patches, "split": self.split, "data": self.fingerprint,
            "noise_seed": self.seed})

    def _denoise_test(self, model: keras.Model, run: RunDir) -> dict:
        """Denoise every test patch and store them; return the timing."""
        start = time.perf_counter()
        outputs = {name: denoise_patches(model, seq.noisy, self.profile.predict_batch_size)
                   for name, seq in self.test_sequences.items()}
        seconds = time.perf_counter() - start
        with atomic_path(run.file("patches.npz")) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **outputs)
        count = sum(array.shape[0] * array.shape[1] for array in outputs.values())
        return {"seconds": seconds, "patches": count, "patches_per_second": count / seconds}

    def denoising_quality(self, denoiser: str) -> pd.DataFrame:
        """MAE and PSNR against the clean patches, per noise level, on the first profile.quality_points
        points of every test sequence (all 16 images), for the noisy input and the denoiser's output."""
        points = self.profile.quality_points
        run = RunDir(self.results_root, "denoising_quality", {
            "denoiser": denoiser, "model": self.denoiser_run_key(denoiser), "quality_points": points,
            "test_patches": self.profile.test_patches, "split": self.split, "data": self.fingerprint,
            "noise_seed": self.seed})
        metrics = load_or_compute(run, lambda r: self._quality(denoiser, points))
        return pd.DataFrame(metrics["quality"])

    def _quality(self, denoiser: str, points: int | None) -> dict:
        """Denoise the quality subset and measure it."""
        model = self.denoiser(denoiser).model
        cut = slice(None, points)
        clean = {name: seq.clean[:, cut] for name, seq in self.test_sequences.items()}
        noisy = {name: seq.noisy[:, cut] for name, seq in self.test_sequences.items()}
        denoised = {name: denoise_patches(model, array, self.profile.predict_batch_size)
                    for name, array in noisy.items()}
        count = sum(array.shape[0] * array.shape[1] for array in clean.values())
        return {"patches": count, "quality": denoising_quality(clean, noisy, denoised).to_dict(orient="records")}

    def evaluate(self, denoiser: str, descriptor: str) -> dict:
        """HPatches verification / matching / retrieval of one pipeline (cached).

        ``descriptor`` is a name of ``specs.DESCRIPTORS`` or a classical one ('raw', 'sift').
        """
        settings = {"denoiser": denoiser, "descriptor": descriptor,
                    "denoiser_key": self._pipeline_denoiser_key(denoiser, descriptor),
                    "descriptor_key": self._descriptor_key(descriptor, denoiser),
                    "tasks": self.tasks.provenance, "test_patches": self.profile.test_patches,
                    "split": self.split, "data": self.fingerprint, "noise_seed": self.seed}
        run = RunDir(self.results_root, "pipelines", settings)
        return load_or_compute(run, lambda r: self._evaluate(denoiser, descriptor))

    def _descriptor_key(self, descriptor: str, denoiser: str) -> str:
        """Cache key of a pipeline's descriptor: its training run, or the classical method's name."""
        if descriptor in CLASSICAL_DESCRIPTORS:
            return f"classical:{descriptor}:{CLASSICAL_VERSION}"
        return self.descriptor_run_key(descriptor, denoiser)

    def describer(self, descriptor: str, denoiser: str) -> tuple[object, dict]:
        """(function (K, P, P) uint8 -> (K, D) float32, provenance) of a pipeline's descriptor."""
        if descriptor in CLASSICAL_DESCRIPTORS:
            from nhpatches.nets import classical

            return classical.CLASSICAL[descriptor], {"descriptor_source": "none (classical)", "descriptor_epochs": 0}
        trained = self.descriptor(descriptor, denoiser)
        model, batch = trained.model, self.profile.predict_batch_size
        describe = lambda flat: describe_patches(model, flat[None], batch)[0]  # noqa: E731
        return describe, {"descriptor_source": trained.metrics.get("source"),
                          "descriptor_epochs": trained.metrics["epochs"]}

    def _evaluate(self, denoiser: str, descriptor: str) -> dict:
        """Describe the (denoised) test patches and run the three tasks."""
        patches = self.test_patches(denoiser, descriptor)
        describe, provenance = self.describer(descriptor, denoiser)
        start = time.perf_counter()
        descriptors = {name: describe_each(describe, array) for name, array in patches.items()}
        describe_seconds = time.perf_counter() - start
        results = evaluation.evaluate(descriptors, self.tasks)
        results["pipeline"] = {"denoiser": denoiser, "descriptor": descriptor, "profile": self.profile.name,
                               **provenance, "seed": self.seed,
                               "describe_seconds": describe_seconds, "data_dir": str(self.data_dir),
                               "layout": self.layout}
        return results

    def noise_sweep(self, pipelines: tuple[tuple[str, str], ...],
                    sigmas: tuple[float, ...] = sweep.SWEEP_SIGMAS) -> pd.DataFrame:
        """mAPs of pipelines on the test set re-noised at each σ (see nhpatches.sweep).

        Uses the first ``profile.sweep_points`` points of every test sequence (all when None), all 16
        images at the same σ, with task files generated for that subset; every pipeline sees the same
        draw. Each (σ, pipeline) is cached. One row per σ and pipeline.
        """
        points = self.profile.sweep_points
        clean = {name: seq.clean[:, :points] for name, seq in self.test_sequences.items()}
        if any(array is None for array in clean.values()):
            raise ValueError(f"{self.data_dir}: the noise sweep needs the clean test patches")
        sweep_tasks = self._generated_tasks({name: array.shape[1] for name, array in clean.items()})
        for denoiser, _ in pipelines:
            if denoiser == "clean":
                raise ValueError("the noise sweep re-noises the clean patches: pipeline 'clean' has no meaning "
                                 "there (use 'none' for no denoiser)")
        rows = []
        for sigma in sigmas:
            noisy = {name: sweep.renoise(array, sigma, data.sequence_noise_seed(self.seed, f"sweep:{name}"))
                     for name, array in clean.items()}
            denoised: dict[str | None, dict[str, np.ndarray]] = {None: noisy}
            for denoiser, descriptor in pipelines:
                key = self._pipeline_denoiser_key(denoiser, descriptor)
                run = RunDir(self.results_root, "sweep", {
                    "sigma": float(sigma), "denoiser": denoiser, "descriptor": descriptor, "denoiser_key": key,
                    "descriptor_key": self._descriptor_key(descriptor, denoiser), "points": points,
                    "tasks": sweep_tasks.provenance, "split": self.split, "data": self.fingerprint,
                    "noise_seed": self.seed, "sweep_noise": sweep.__name__})

                def compute(r: RunDir, denoiser=denoiser, descriptor=descriptor, key=key) -> dict:
                    if key not in denoised:
                        model = self.pipeline_denoiser(denoiser, descriptor)[0]
                        denoised[key] = {name: denoise_patches(model, array, self.profile.predict_batch_size)
                                         for name, array in noisy.items()}
                    describe = self.describer(descriptor, denoiser)[0]
                    descriptors = {name: describe_each(describe, array) for name, array in denoised[key].items()}
                    return {"summary": evaluation.evaluate(descriptors, sweep_tasks)["summary"]}

                summary = load_or_compute(run, compute)["summary"]
                rows.append({"sigma": float(sigma), "denoiser": denoiser, "descriptor": descriptor,
                             "verification": summary["verification_mAP"], "matching": summary["matching_mAP"],
                             "retrieval": summary["retrieval_mAP"], "mean": summary["mean_mAP"],
                             "task_files": report.task_files_label(sweep_tasks.provenance)})
        return pd.DataFrame(rows)

    def evaluate_many(self, pipelines: tuple[tuple[str, str], ...] = TABLE2_PIPELINES) -> pd.DataFrame:
        """Summary mAPs of several pipelines, one row each."""
        return report.table_mean_map([self.evaluate(den, desc) for den, desc in pipelines])

    # ----- views for the notebooks ----------------------------------------------------------
    def dataset_summary(self) -> pd.DataFrame:
        """One row per sequence: kind, patches loaded and role (train / validation / test)."""
        train, validation = hold_out_scenes(self.train_sequences)
        roles = [("train", train), ("validation", validation), ("test", self.test_sequences)]
        return pd.DataFrame([{"sequence": name, "kind": seq.kind, "patches": seq.num_patches, "role": role}
                             for role, group in roles for name, seq in group.items()])

    def example_patches(self, columns: int = 8, sequence: str | None = None) -> dict[str, np.ndarray]:
        """Clean and noisy patches of one test sequence for the reference and one image per level."""
        seq = self.test_sequences[sequence or next(iter(self.test_sequences))]
        rows = {}
        for image in ("ref", "e1", "h1", "t1"):
            index = config.image_index(image)
            rows[f"{image} clean"] = seq.clean[index, :columns]
            rows[f"{image} noisy"] = seq.noisy[index, :columns]
        return rows

    def denoised_examples(self, denoiser: str, columns: int = 8, descriptor: str | None = None) -> dict[str, np.ndarray]:
        """Noisy, denoised and clean versions of the same test patches, cycling easy / hard / tough.

        With a jointly trained ``descriptor``, the denoised row is its fine-tuned denoiser's output.
        """
        name = next(iter(self.test_sequences))
        seq, denoised = self.test_sequences[name], self.test_patches(denoiser, descriptor)[name]
        images = [config.image_index(f"{'eht'[c % 3]}{1 + (c // 3) % 5}") for c in range(columns)]
        points = np.arange(columns) % seq.num_patches
        label = denoiser if descriptor is None or not self._is_joint(descriptor, denoiser) else \
            f"{denoiser} (tuned with {descriptor})"
        return {"noisy": seq.noisy[images, points], label: denoised[images, points],
                "clean": seq.clean[images, points]}

    def joint_examples(self, denoiser: str, descriptor: str, columns: int = 8) -> dict[str, np.ndarray]:
        """Noisy, ``denoiser``'s output, its copy tuned jointly with ``descriptor``, and clean patches."""
        before = self.denoised_examples(denoiser, columns)
        after = self.denoised_examples(denoiser, columns, descriptor)
        tuned = next(label for label in after if label not in before)
        return {"noisy": before["noisy"], denoiser: before[denoiser], tuned: after[tuned], "clean": before["clean"]}

    def compare_denoisers(self, names: tuple[str, ...]) -> pd.DataFrame:
        """Test-set MAE and PSNR per noise level for several denoisers (noisy input listed once)."""
        frames = []
        for i, name in enumerate(names):
            quality = self.denoising_quality(name)
            if i > 0:
                quality = quality[quality.input == "denoised"]
            frames.append(quality.assign(denoiser=np.where(quality.input == "noisy", "none", name)))
        columns = ["denoiser", "input", "noise_level", "mae", "psnr_db"]
        return pd.concat(frames, ignore_index=True)[columns]

    def realism(self) -> pd.DataFrame:
        """Trivial-descriptor figures per level on the test sequences (clean patches)."""
        return embedded.measure_realism(self.test_sequences).reset_index()

    def noise_summary(self) -> pd.DataFrame:
        """Noise std per level and the measured noisy/clean correlation and std ratio on the test patches."""
        rows = []
        for level, images in config.LEVEL_IMAGES.items():
            images = list(images)
            clean = np.concatenate([s.clean[images].reshape(-1, s.clean[0, 0].size) for s in self.test_sequences.values()])
            noisy = np.concatenate([s.noisy[images].reshape(-1, s.noisy[0, 0].size) for s in self.test_sequences.values()])
            rows.append({"noise_level": level, "noise_std": data.NOISE_STD[level],
                         "median_patch_std": float(np.median(clean.std(axis=1))),
                         "median_correlation": float(np.median(_row_correlation(clean, noisy)))})
        return pd.DataFrame(rows)

    def table1(self, pipelines: tuple[tuple[str, str], ...] = TABLE2_PIPELINES) -> pd.DataFrame:
        """Table 1: epochs of each pipeline's denoiser and descriptor beside the report's, with costs."""
        rows = []
        for denoiser, descriptor in pipelines:
            den = self.denoiser(denoiser).metrics if denoiser not in INPUT_ONLY else None
            desc = self.descriptor(descriptor, denoiser).metrics
            rows.append({"denoiser": denoiser, "descriptor": descriptor, "descriptor_metrics": desc,
                         "denoiser_metrics": den})
        return report.table1_pipelines(rows)

    def model_costs(self, pipelines: tuple[tuple[str, str], ...] = TABLE2_PIPELINES) -> pd.DataFrame:
        """Training cost of every model behind the pipelines (one row per trained model)."""
        runs: dict[str, Mapping] = {}
        for denoiser, descriptor in pipelines:
            if denoiser not in INPUT_ONLY:
                runs[denoiser] = self.denoiser(denoiser).metrics
            runs[report.pipeline_label(denoiser, descriptor)] = self.descriptor(descriptor, denoiser).metrics
        return report.table1_epochs(runs)


def _row_correlation(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows.

    Shape: (K, M), (K, M) -> (K,)
    """
    a = first - first.mean(axis=1, keepdims=True)
    b = second - second.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.maximum(np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1)), 1e-12)


def _lookup(registry: Mapping[str, object], name: str, kind: str) -> object:
    """A registry entry, or a ValueError listing the known names."""
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; expected one of {sorted(registry)}")
    return registry[name]


def embedded_dataset_dir(profile: config.Profile, seed: int = 0) -> Path:
    """Build (once) and return the embedded dataset a profile uses."""
    images = None
    if profile.embedded_images is not None:
        images = embedded.DEFAULT_IMAGES[:profile.embedded_images]
    tag = f"embedded_p{profile.embedded_patches}_i{profile.embedded_images or 'all'}_s{seed}"
    return embedded.ensure_embedded_dataset(config.data_root() / tag, seed=seed,
                                            max_patches_per_sequence=profile.embedded_patches, images=images)


def hold_out_scenes(sequences: Mapping[str, data.Sequence], every: int = 6) -> tuple[dict, dict]:
    """Split sequences into (train, validation) by scene name (i_x and v_x stay together)."""
    scenes = sorted({name[2:] for name in sequences})
    held = set(scenes[every // 2::every]) or {scenes[-1]}
    if len(held) == len(scenes):
        raise ValueError(f"need at least two scenes to hold one out for validation, got {scenes}")
    train = {name: seq for name, seq in sequences.items() if name[2:] not in held}
    validation = {name: seq for name, seq in sequences.items() if name[2:] in held}
    return train, validation
