"""Evaluation: the three HPatches tasks (``hpatches`` runs ``verification``, ``matching`` and ``retrieval``),
their shared kernels (``metrics``), the slow loop reference they are checked and timed against
(``reference``), result tables (``results``), descriptor files (``descriptor_io``) and denoising
quality (``quality``).

The task API is re-exported here (``nhpatches.evaluation.evaluate``).
"""

from nhpatches.evaluation.hpatches import evaluate, evaluate_matching, evaluate_retrieval, evaluate_verification
from nhpatches.evaluation.metrics import DISTANCES, POOL_SIZES, average_precision, balanced_auc
from nhpatches.evaluation.results import format_results, results_to_frame

__all__ = [
    "DISTANCES",
    "POOL_SIZES",
    "average_precision",
    "balanced_auc",
    "evaluate",
    "evaluate_matching",
    "evaluate_retrieval",
    "evaluate_verification",
    "format_results",
    "results_to_frame",
]
