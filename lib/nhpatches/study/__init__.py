"""The study: ``Study`` (what the notebooks call), its reports and its findings."""
# isort: skip_file

from nhpatches.core.backend import quiet_tensorflow

quiet_tensorflow()

from nhpatches.study.dataset import StudyData, embedded_dataset_dir, hold_out_scenes
from nhpatches.study.models import ModelStore, Trained
from nhpatches.study.pipelines import (
    ABLATION_PIPELINES,
    BEYOND_PIPELINES,
    CLASSICAL_DESCRIPTORS,
    EXTENSION_PIPELINES,
    INPUT_ONLY,
    JOINT_PIPELINES,
    SWEEP_PIPELINES,
    TABLE2_PIPELINES,
    Pipeline,
    extension_pipelines,
)
from nhpatches.study.runner import PipelineRunner
from nhpatches.study.study import Study

__all__ = [
    "ABLATION_PIPELINES",
    "BEYOND_PIPELINES",
    "CLASSICAL_DESCRIPTORS",
    "EXTENSION_PIPELINES",
    "INPUT_ONLY",
    "JOINT_PIPELINES",
    "SWEEP_PIPELINES",
    "TABLE2_PIPELINES",
    "ModelStore",
    "Pipeline",
    "PipelineRunner",
    "Study",
    "StudyData",
    "Trained",
    "embedded_dataset_dir",
    "extension_pipelines",
    "hold_out_scenes",
]
