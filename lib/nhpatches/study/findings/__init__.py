"""The "finding here" of each notebook: a report's claim checked against this run's numbers.

Every claim function takes the tables (or training histories) a notebook has just computed and
returns one paragraph that names the claim, states the measured numbers and ends with "holds" or
"does not hold" on this run; the descriptive ones of :mod:`.beyond` (winners, ranking, sweep
leaders) state the numbers only. The claims are the report's (R §x, :mod:`.report_claims`) or,
where the report is silent, the obvious expectation of the experiment; the report's own numbers
stay in the notebooks' Markdown and are never mixed with the measured ones here.

Pipeline tables are DataFrames with columns denoiser, descriptor and one column per task
(verification, matching, retrieval) plus mean, as ``Study.table`` and ``report.table2`` return
them (a multi-seed ``Study.table`` adds ``<score> std`` and ``seeds``); quality tables are
``views.compare_denoisers`` frames; histories are the per-epoch DataFrames of
``Study.denoiser(...).history``; sweeps are ``Study.noise_sweep`` tables.
"""

from nhpatches.study.findings.beyond import (
    beyond,
    ranking,
    sweep_crossovers,
    sweep_leaders,
    sweep_versus,
    task_winners,
)
from nhpatches.study.findings.claims import TASKS, spread_note, verdict
from nhpatches.study.findings.report_claims import (
    REPORT_NOISE_LEVELS,
    REPORT_SEQUENCES,
    best_pipeline,
    data_description,
    denoising_order,
    descriptor_variants,
    dncnn_beats_unet,
    hard_loss,
    loss_change,
    mse_vs_mae,
    retraining,
    sgd_barely_moves,
)

__all__ = [
    "REPORT_NOISE_LEVELS",
    "REPORT_SEQUENCES",
    "TASKS",
    "best_pipeline",
    "beyond",
    "data_description",
    "denoising_order",
    "descriptor_variants",
    "dncnn_beats_unet",
    "hard_loss",
    "loss_change",
    "mse_vs_mae",
    "ranking",
    "retraining",
    "sgd_barely_moves",
    "spread_note",
    "sweep_crossovers",
    "sweep_leaders",
    "sweep_versus",
    "task_winners",
    "verdict",
]
