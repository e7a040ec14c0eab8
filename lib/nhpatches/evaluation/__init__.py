"""Evaluation: the three HPatches tasks (``hpatches``), descriptor files, denoising quality.

The task API is re-exported here (``nhpatches.evaluation.evaluate``).
"""

from nhpatches.evaluation.hpatches import (
                                           DISTANCES,
                                           POOL_SIZES,
                                           average_precision,
                                           balanced_auc,
                                           evaluate,
                                           evaluate_matching,
                                           evaluate_retrieval,
                                           evaluate_verification,
                                           format_results,
                                           results_to_frame,
)

__all__ = ["DISTANCES", "POOL_SIZES", "average_precision", "balanced_auc", "evaluate", "evaluate_matching",
           "evaluate_retrieval", "evaluate_verification", "format_results", "results_to_frame"]
