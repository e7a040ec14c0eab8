"""Figures and tables of the study: patch grids, loss curves, Table 1 (epochs) and Table 2 (mAP).

Every figure and table a notebook shows is also written under ``figures/<profile>/``
(PNG at a fixed dpi; CSV + Markdown), atomically (:mod:`.files`). The tables are in
:mod:`.tables`, the figures in :mod:`.plots`, the per-layer views of the networks in
:mod:`.networks`; the names below are the API the notebooks use (``report.table2``).
"""

from nhpatches.study.report.files import DPI, figure_path, save_figure, save_table, to_markdown
from nhpatches.study.report.networks import architecture_summary, layer_table
from nhpatches.study.report.plots import (
    continued_history,
    descriptor_loss_part,
    mark_epoch,
    plot_hpatches_bars,
    plot_loss_curves,
    plot_noise_sweep,
    plot_patch_grid,
    plot_triplet,
)
from nhpatches.study.report.tables import (
    REPORT_TABLE1,
    REPORT_TABLE2,
    SCORE_COLUMNS,
    pipeline_label,
    seed_summary,
    table1_epochs,
    table1_pipelines,
    table2,
    table2_breakdown,
    table_mean_map,
    task_files_label,
    with_report_note,
)

__all__ = [
    "DPI",
    "REPORT_TABLE1",
    "REPORT_TABLE2",
    "SCORE_COLUMNS",
    "architecture_summary",
    "continued_history",
    "descriptor_loss_part",
    "figure_path",
    "layer_table",
    "mark_epoch",
    "pipeline_label",
    "plot_hpatches_bars",
    "plot_loss_curves",
    "plot_noise_sweep",
    "plot_patch_grid",
    "plot_triplet",
    "save_figure",
    "save_table",
    "seed_summary",
    "table1_epochs",
    "table1_pipelines",
    "table2",
    "table2_breakdown",
    "table_mean_map",
    "task_files_label",
    "to_markdown",
    "with_report_note",
]
