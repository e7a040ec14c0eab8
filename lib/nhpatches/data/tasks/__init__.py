"""HPatches task files: splits, verification pairs and retrieval lists (spec sections 2, 3.2, 3.4, 3.6).

Task files are read and written in the official CSV layout (:mod:`.files`). For datasets without
official lists they are generated with recipes V and R of the spec (:mod:`.recipes`: numpy
``default_rng``, deterministic by seed, vectorised). For the genuine ``hpatches-release`` data the
official retrieval lists and ``splits.json`` ship with the package; the official verification lists
are not available, so they are generated with recipe V. Every :class:`~.taskset.TaskSet` carries a
provenance dict saying which of these it is. The names below are the API (``nhpatches.data.tasks.load_tasks``).
"""

from nhpatches.data.tasks.files import load_or_generate_tasks, load_tasks, official_tasks, write_tasks
from nhpatches.data.tasks.recipes import (
    DEFAULT_SEED,
    MIN_PATCH_STD,
    focus_tasks,
    generate_retrieval_lists,
    generate_tasks,
    generate_verification_pairs,
)
from nhpatches.data.tasks.taskset import (
    NUM_DISTRACTORS,
    NUM_PAIRS,
    NUM_QUERIES,
    RETRIEVAL_FILES,
    RETRIEVAL_HEADER,
    VERIFICATION_FILES,
    VERIFICATION_HEADER,
    TaskSet,
    split_sequences,
    task_counts,
    task_file_name,
    validate_tasks,
)

__all__ = [
    "DEFAULT_SEED",
    "MIN_PATCH_STD",
    "NUM_DISTRACTORS",
    "NUM_PAIRS",
    "NUM_QUERIES",
    "RETRIEVAL_FILES",
    "RETRIEVAL_HEADER",
    "VERIFICATION_FILES",
    "VERIFICATION_HEADER",
    "TaskSet",
    "focus_tasks",
    "generate_retrieval_lists",
    "generate_tasks",
    "generate_verification_pairs",
    "load_or_generate_tasks",
    "load_tasks",
    "official_tasks",
    "split_sequences",
    "task_counts",
    "task_file_name",
    "validate_tasks",
    "write_tasks",
]
