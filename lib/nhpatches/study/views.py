"""What the notebooks show of a study: plain functions of a ``Study`` that return tables and patch grids."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nhpatches import data
from nhpatches.core import config
from nhpatches.data.realism import measure_realism
from nhpatches.nets import specs
from nhpatches.study import report
from nhpatches.study.dataset import hold_out_scenes
from nhpatches.study.pipelines import CLASSICAL_DESCRIPTORS, INPUT_ONLY, TABLE2_PIPELINES, Pipeline, lookup
from nhpatches.train import training

if TYPE_CHECKING:
    from nhpatches.study.models import Trained
    from nhpatches.study.study import Study


def dataset_summary(study: Study) -> pd.DataFrame:
    """One row per sequence: kind, patches loaded and role (train / validation / test)."""
    train, validation = hold_out_scenes(study.train_sequences)
    roles = [("train", train), ("validation", validation), ("test", study.test_sequences)]
    return pd.DataFrame(
        [
            {"sequence": name, "kind": seq.kind, "patches": seq.num_patches, "role": role}
            for role, group in roles
            for name, seq in group.items()
        ]
    )


def example_patches(study: Study, columns: int = 8, sequence: str | None = None) -> dict[str, np.ndarray]:
    """Clean and noisy patches of one test sequence for the reference and one image per level."""
    seq = study.test_sequences[sequence or next(iter(study.test_sequences))]
    rows = {}
    for image in ("ref", "e1", "h1", "t1"):
        index = config.image_index(image)
        rows[f"{image} clean"] = seq.clean[index, :columns]
        rows[f"{image} noisy"] = seq.noisy[index, :columns]
    return rows


def denoised_examples(
    study: Study, pipeline: Pipeline | tuple[str, str] | str, columns: int = 8
) -> dict[str, np.ndarray]:
    """Noisy, denoised and clean versions of the same test patches, cycling easy / hard / tough.

    ``pipeline``: a denoiser name, or a pipeline whose descriptor was trained jointly with it (the
    denoised row is then its fine-tuned denoiser's output).
    """
    name = next(iter(study.test_sequences))
    seq, denoised = study.test_sequences[name], study.runner.test_patches(pipeline)[name]
    images = [config.image_index(f"{'eht'[c % 3]}{1 + (c // 3) % 5}") for c in range(columns)]
    points = np.arange(columns) % seq.num_patches
    label = pipeline if isinstance(pipeline, str) else pipeline[0]
    if not isinstance(pipeline, str) and study.models.is_joint(Pipeline.of(pipeline)):
        label = f"{pipeline[0]} (tuned with {pipeline[1]})"
    return {"noisy": seq.noisy[images, points], label: denoised[images, points], "clean": seq.clean[images, points]}


def joint_examples(study: Study, pipeline: Pipeline | tuple[str, str], columns: int = 8) -> dict[str, np.ndarray]:
    """Noisy, the denoiser's output, its copy tuned jointly with the descriptor, and clean patches."""
    denoiser = pipeline[0]
    before = denoised_examples(study, denoiser, columns)
    after = denoised_examples(study, pipeline, columns)
    tuned = next(label for label in after if label not in before)
    return {"noisy": before["noisy"], denoiser: before[denoiser], tuned: after[tuned], "clean": before["clean"]}


def compare_denoisers(study: Study, names: tuple[str, ...]) -> pd.DataFrame:
    """Test-set MAE and PSNR per noise level for several denoisers (noisy input listed once)."""
    frames = []
    for i, name in enumerate(names):
        quality = study.runner.denoising_quality(name)
        if i > 0:
            quality = quality[quality.input == "denoised"]
        frames.append(quality.assign(denoiser=np.where(quality.input == "noisy", "none", name)))
    return pd.concat(frames, ignore_index=True)[["denoiser", "input", "noise_level", "mae", "psnr_db"]]


def realism(study: Study) -> pd.DataFrame:
    """Trivial-descriptor figures per level on the test sequences (clean patches)."""
    return measure_realism(study.test_sequences).reset_index()


def noise_summary(study: Study) -> pd.DataFrame:
    """Noise std per level and the measured noisy/clean correlation and std ratio on the test patches."""
    rows = []
    sequences = study.test_sequences.values()
    pairs = [(s.clean, s.noisy) for s in sequences if s.clean is not None and s.noisy is not None]
    if len(pairs) < len(sequences):
        raise ValueError(f"{study.data_dir}: the noise summary needs clean and noisy test patches")
    for level, level_images in config.LEVEL_IMAGES.items():
        images = list(level_images)
        clean = np.concatenate([c[images].reshape(-1, c[0, 0].size) for c, _ in pairs])
        noisy = np.concatenate([n[images].reshape(-1, n[0, 0].size) for _, n in pairs])
        rows.append(
            {
                "noise_level": level,
                "noise_std": data.NOISE_STD[level],
                "median_patch_std": float(np.median(clean.std(axis=1))),
                "median_correlation": float(np.median(_row_correlation(clean, noisy))),
            }
        )
    return pd.DataFrame(rows)


def table1(study: Study, pipelines: tuple[Pipeline, ...] = TABLE2_PIPELINES) -> pd.DataFrame:
    """Table 1: epochs of each pipeline's denoiser and descriptor beside the report's, with costs."""
    rows = []
    for pipeline in map(Pipeline.of, pipelines):
        den = study.denoiser(pipeline.denoiser).metrics if pipeline.denoiser not in INPUT_ONLY else None
        rows.append(
            {
                "denoiser": pipeline.denoiser,
                "descriptor": pipeline.descriptor,
                "descriptor_metrics": study.descriptor(pipeline).metrics,
                "denoiser_metrics": den,
            }
        )
    return report.table1_pipelines(rows)


def model_costs(study: Study, pipelines: tuple[Pipeline, ...] = TABLE2_PIPELINES) -> pd.DataFrame:
    """Training cost of every model behind the pipelines (one row per trained model)."""
    runs: dict[str, Mapping] = {}
    for pipeline in map(Pipeline.of, pipelines):
        if pipeline.denoiser not in INPUT_ONLY:
            runs[pipeline.denoiser] = study.denoiser(pipeline.denoiser).metrics
        runs[report.pipeline_label(*pipeline)] = study.descriptor(pipeline).metrics
    return report.table1_epochs(runs)


def facts(study: Study, pipeline: Pipeline | tuple[str, str]) -> dict:
    """What a pipeline's models are, without training them.

    The descriptor's training data, loss and epochs, the denoiser's kept epoch and the seeds.
    """
    denoiser, descriptor = pipeline
    seeds = ",".join(str(s) for s in study.seed_list)
    den_epochs = (
        "-"
        if denoiser in INPUT_ONLY
        else str(training.denoiser_epochs(lookup(specs.DENOISERS, denoiser, "denoiser"), study.profile)[1])
    )
    if descriptor in CLASSICAL_DESCRIPTORS:
        return {
            "training data": "none (no training)",
            "loss": "-",
            "denoiser epochs": den_epochs,
            "descriptor epochs": "-",
            "seeds": seeds,
        }
    spec = study.models.descriptor_spec(descriptor)
    source = study.models.descriptor_source(Pipeline.of(pipeline))
    data_text = {
        "denoised": f"denoised by {denoiser}",
        "clean": "clean",
        "noisy": "noisy",
        "joint": f"noisy, through {denoiser} fine-tuned jointly",
    }[source]
    loss = {
        "triplet": "triplet (Eq. 2)",
        "hard_triplet": "hard triplet (Eq. 4)",
        "hardest_negative": "hardest negative (HardNet)",
    }[spec.loss]
    if source == "joint":
        loss += f" + {spec.joint_weight:g}·MAE"
    epochs, parent = str(training.descriptor_epochs(spec, study.profile)), spec.init_from
    while parent is not None:  # fine-tuned: the parent's epochs first
        parent_spec = study.models.descriptor_spec(parent)
        epochs = f"{training.descriptor_epochs(parent_spec, study.profile)} ({parent}) + {epochs}"
        parent = parent_spec.init_from
    return {
        "training data": data_text,
        "loss": loss,
        "denoiser epochs": den_epochs,
        "descriptor epochs": epochs,
        "seeds": seeds,
    }


def with_facts(study: Study, table: pd.DataFrame) -> pd.DataFrame:
    """A pipeline table with ``facts`` columns inserted after its descriptor column."""
    rows = pd.DataFrame([facts(study, pipeline) for pipeline in zip(table.denoiser, table.descriptor, strict=True)])
    position = list(table.columns).index("descriptor") + 1
    out = table.drop(columns=[c for c in rows.columns if c in table.columns])
    for i, column in enumerate(rows.columns):
        out.insert(position + i, column, rows[column].to_numpy())
    return out


def fine_tuning(runs: Mapping[str, Trained]) -> pd.DataFrame:
    """What each fine-tuning run did to its denoiser: frozen, or trained jointly with weight λ on the MAE.

    Shape: runs by descriptor name -> DataFrame (descriptor, denoiser, λ (MAE weight), epochs)
    """
    rows = [
        {
            "descriptor": name,
            "denoiser": "trained jointly" if "joint_weight" in run.metrics else "frozen",
            "λ (MAE weight)": run.metrics.get("joint_weight", float("nan")),
            "epochs": run.metrics.get("epochs"),
        }
        for name, run in runs.items()
    ]
    return pd.DataFrame(rows)


#: A nested mapping of more entries than this is shown as one compact cell ("a 1, b 2, ...") by settings_table.
COMPACT_ITEMS = 8


def _cell(key: str, value: object) -> object:
    """One value of settings_table: paths relative to the project, sequences and long mappings compact."""
    if key == "path" or key.endswith(("_path", "_dir")) or isinstance(value, Path):
        return str(config.display_path(str(value))) if value else value
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_cell(str(k), v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return value


def settings_table(settings: Mapping, name: str = "setting") -> pd.DataFrame:
    """A settings record (a manifest's recipe, the task files' provenance) as a two-column table.

    Nested mappings become dotted rows (``requested.pairs``), except those of more than COMPACT_ITEMS
    entries, shown as one cell; lists are joined by commas; paths are shown relative to the project.
    Shape: a mapping -> DataFrame (name, value), one row per leaf
    """
    rows: list[tuple[str, object]] = []

    def walk(prefix: str, mapping: Mapping) -> None:
        for key, value in mapping.items():
            label = f"{prefix}{key}"
            if isinstance(value, Mapping) and 0 < len(value) <= COMPACT_ITEMS:
                walk(f"{label}.", value)
            else:
                rows.append((label, _cell(str(key), value)))

    walk("", settings)
    return pd.DataFrame(rows, columns=[name, "value"]).astype({"value": object})


def task_files(study: Study) -> pd.DataFrame:
    """Which task files the evaluation uses (``study.tasks.provenance``) as a settings table."""
    return settings_table(study.tasks.provenance, "task files")


def _row_correlation(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows.

    Shape: (K, M), (K, M) -> (K,)
    """
    a = first - first.mean(axis=1, keepdims=True)
    b = second - second.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.maximum(np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1)), 1e-12)
