"""Evaluation: the three HPatches tasks (``hpatches``), their shared kernels (``metrics``), result tables
(``results``), descriptor files (``descriptor_io``), denoising quality (``quality``) and the scores of one
sequence against others (``focus``).

The task API is re-exported here (``nhpatches.evaluation.evaluate``).
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
