"""The study: ``Study`` (what the notebooks call), its reports and its findings."""
# isort: skip_file
# ruff: noqa: E402  (the backend is quieted before Keras is first imported)

from nhpatches.core.backend import quiet_tensorflow

quiet_tensorflow()

from nhpatches.study.study import (ABLATION_PIPELINES, BEYOND_PIPELINES, CLASSICAL_DESCRIPTORS, EXTENSION_PIPELINES,
                                   JOINT_PIPELINES, SWEEP_PIPELINES, TABLE2_PIPELINES, Study, Trained,
                                   embedded_dataset_dir, extension_pipelines, hold_out_scenes)

__all__ = ["ABLATION_PIPELINES", "BEYOND_PIPELINES", "CLASSICAL_DESCRIPTORS", "EXTENSION_PIPELINES",
           "JOINT_PIPELINES", "SWEEP_PIPELINES", "TABLE2_PIPELINES", "Study", "Trained", "embedded_dataset_dir",
           "extension_pipelines", "hold_out_scenes"]
