"""Evaluation: the three HPatches tasks, their kernels, result tables, descriptor files and image matching.

The three tasks (``hpatches`` runs ``verification``, ``matching`` and ``retrieval``), their shared
kernels (``metrics``), the slow loop reference they are checked and timed against (``reference``),
result tables (``results``), descriptor files (``descriptor_io``) and denoising quality (``quality``).

The scores of one sequence against others are in ``focus``, and image matching with ground-truth
homographies in ``image_matching``.

The task API is re-exported here (``nhpatches.evaluation.evaluate``, the library entry of
``hpatches-eval``): descriptors of every test sequence, shape (16, N, D) in IMAGE_TYPES order,
scored on a split's task files.

Examples
--------
>>> import numpy as np
>>> from nhpatches.data.tasks import generate_tasks
>>> from nhpatches.evaluation import evaluate
>>> sizes = {"i_ajuntament": 30, "v_bird": 30}  # patches (3-D points) per test sequence
>>> tasks = generate_tasks(sizes, "demo", num_pairs=500, num_queries=10, num_distractors=20)
>>> rng = np.random.default_rng(0)
>>> points = {name: rng.normal(size=(n, 8)).astype(np.float32) for name, n in sizes.items()}
>>> ideal = {name: np.repeat(p[None], 16, axis=0) for name, p in points.items()}  # same row in all 16 images
>>> summary = evaluate(ideal, tasks)["summary"]
>>> summary["matching_mAP"], summary["retrieval_mAP"]
(1.0, 1.0)
>>> noisy = {name: d + rng.normal(size=d.shape).astype(np.float32) for name, d in ideal.items()}
>>> evaluate(noisy, tasks)["summary"]["matching_mAP"] < 0.5
True
"""

from nhpatches.evaluation.focus import FOCUSED_SCORES, evaluate_focused
from nhpatches.evaluation.hpatches import evaluate, evaluate_matching, evaluate_retrieval, evaluate_verification
from nhpatches.evaluation.metrics import DISTANCES, POOL_SIZES, average_precision, balanced_auc
from nhpatches.evaluation.results import format_results, results_to_frame

__all__ = [
    "DISTANCES",
    "FOCUSED_SCORES",
    "POOL_SIZES",
    "average_precision",
    "balanced_auc",
    "evaluate",
    "evaluate_focused",
    "evaluate_matching",
    "evaluate_retrieval",
    "evaluate_verification",
    "format_results",
    "results_to_frame",
]
