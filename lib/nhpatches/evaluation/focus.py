"""HPatches scores of one sequence, with other sequences as negatives (a task set from ``focus_tasks``).

A single real sequence cannot be scored alone on verification or retrieval: both need patches
of other scenes. :func:`nhpatches.data.tasks.focus_tasks` keeps the questions about one
sequence and lets the others supply negatives and distractors; :func:`evaluate_focused` scores
such a task set. This is how the model card's real-sample check scores ``v_wormhole``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from nhpatches.data.tasks import TaskSet
from nhpatches.evaluation.hpatches import evaluate_matching, evaluate_retrieval, evaluate_verification

#: The keys of :func:`evaluate_focused`'s result, in table order.
FOCUSED_SCORES: tuple[str, ...] = ("verification", "matching", "retrieval", "mean")


def evaluate_focused(descriptors: Mapping[str, np.ndarray], tasks: TaskSet, distance: str = "L2") -> dict[str, float]:
    """Verification, matching and retrieval mAP of the focus sequence of ``tasks``, and their mean.

    ``tasks`` comes from ``focus_tasks(taskset, name)`` (its provenance names the focus).
    Verification and retrieval are the task set's mAPs (every positive pair and query lies in the
    focus sequence; the other sequences give inter negatives and distractors). Matching is the
    focus sequence's own HPatches matching mAP (its 15 target images against its ``ref``, the
    mean AP per easy / hard / tough level, then over the levels), which involves no other sequence.

    Shape: descriptors {name: (16, N_name, D)} for every sequence of ``tasks`` -> 4 floats in [0, 1].
    """
    focus = tasks.provenance.get("focus")
    if focus is None:
        raise ValueError(
            "the task set is not focused on one sequence (no 'focus' in its provenance): "
            "build it with nhpatches.data.tasks.focus_tasks"
        )
    if focus not in descriptors:
        raise ValueError(f"no descriptors of the focus sequence {focus!r}; got {sorted(descriptors)}")
    scores = {
        "verification": float(evaluate_verification(descriptors, tasks, distance, progress=False)["mAP"]),
        "matching": float(evaluate_matching({focus: descriptors[focus]}, [focus], distance, progress=False)["mAP"]),
        "retrieval": float(evaluate_retrieval(descriptors, tasks, distance, progress=False)["mAP"]),
    }
    scores["mean"] = float(np.mean(list(scores.values())))
    return scores
