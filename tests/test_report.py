"""Tables and figures: Markdown, atomic files, Tables 1 and 2 beside the report, breakdowns."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from nhpatches.data.tasks import load_tasks
from nhpatches.evaluation import evaluate
from nhpatches.evaluation.descriptor_io import read_descriptor_dir
from nhpatches.study import report


@pytest.fixture
def figures(tmp_path, monkeypatch):
    """Figures go under tmp_path."""
    monkeypatch.setenv("NHPATCHES_FIGURES", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def fixture_results(tmp_path_factory) -> dict:
    """Evaluation of the conformance fixture, labelled as one pipeline."""
    from pathlib import Path

    root = Path(__file__).parent / "fixtures" / "hpatches_eval"
    tasks = load_tasks(root / "tasks", "fixture")
    descriptors = read_descriptor_dir(root / "descriptors", tasks.sequences)
    results = evaluate(descriptors, tasks, progress=False)
    results["pipeline"] = {"denoiser": "unet", "descriptor": "baseline"}
    return results


def test_markdown_table() -> None:
    """Header, separator, formatted floats and blank NaN."""
    text = report.to_markdown(pd.DataFrame({"a": ["x", "y"], "b": [0.123456, np.nan]}))
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x | 0.1235 |", "| y |  |"]


def test_save_table_and_figure(figures) -> None:
    """CSV, Markdown and PNG land in figures/<profile>/ with no temp files left."""
    frame = pd.DataFrame({"task": ["matching"], "mAP": [0.5]})
    path = report.save_table(frame, "table_x", "unit")
    assert pd.read_csv(path).equals(frame)
    assert "| matching | 0.5000 |" in (figures / "unit" / "table_x.md").read_text()
    fig = report.plot_loss_curves({"run": pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0], "val_loss": [2.5, 1.5]})})
    assert report.save_figure(fig, "fig_x", "unit") is None  # a notebook cell ending with it shows only the figure
    assert report.figure_path("fig_x", "unit").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (figures / "unit").iterdir()) == ["fig_x.png", "table_x.csv", "table_x.md"]


def test_table2_puts_measured_beside_report(fixture_results) -> None:
    """The measured mAPs are the evaluation's; the report's numbers are joined by pipeline."""
    table = report.table2([fixture_results])
    row = table.iloc[0]
    assert row["matching"] == pytest.approx(0.350323260876854, abs=1e-9)
    assert row["report matching"] == pytest.approx(0.260636)
    assert row["mean"] == pytest.approx(np.mean([row["verification"], row["matching"], row["retrieval"]]))


def test_breakdown_has_levels_and_subsets(fixture_results) -> None:
    """Per-level and per-subset columns carry the evaluation's own breakdowns."""
    table = report.table2_breakdown([fixture_results])
    assert table.loc[0, "match easy"] == pytest.approx(0.6456810635546247, abs=1e-9)
    assert table.loc[0, "match i_"] == pytest.approx(0.3174669427111347, abs=1e-9)
    assert {"verif tough", "retri v_"} <= set(table.columns)


def test_hpatches_bar_figure(fixture_results) -> None:
    """One panel per task with three bars per pipeline."""
    fig = report.plot_hpatches_bars(
        [fixture_results, {**fixture_results, "pipeline": {"denoiser": "x", "descriptor": "y"}}]
    )
    assert len(fig.axes) == 3
    for ax in fig.axes:  # 2 pipelines x 3 noise levels, bars as long as the mAPs (percent)
        bars = sorted(round(p.get_width(), 6) for p in ax.patches if p.get_width() > 0)
        assert len(bars) == 6 and all(0 < width <= 100 for width in bars), bars


def test_hpatches_bar_figure_error_bars_over_seeds(fixture_results) -> None:
    """With several seeds the bars are the mean and carry one error bar each."""
    other = json.loads(json.dumps(fixture_results))
    other["matching"]["ap_per_noise"] = {k: v * 0.5 for k, v in other["matching"]["ap_per_noise"].items()}
    fig = report.plot_hpatches_bars([[fixture_results], [other]])
    matching = fig.axes[1]
    assert len(matching.lines) == 3  # one error bar per noise level


def test_table1_from_metrics() -> None:
    """Table 1 rows come from run metrics."""
    metrics = {
        "epochs": 3,
        "patches_fed": 300,
        "train_seconds": 1.5,
        "patches_per_second": 200.0,
        "final": {"loss": 0.4, "val_loss": 0.5},
        "parameters": 10,
    }
    table = report.table1_epochs({"unet": metrics})
    assert table.loc[0, "epochs"] == 3 and table.loc[0, "final_val_loss"] == 0.5


@pytest.mark.parametrize(
    "provenance, expected",
    [
        (
            {
                "source": "generated (recipes V and R of spec 3.6)",
                "verification_seed": 8,
                "retrieval_seed": 9,
                "counts": {"pos": 1000, "queries": 40, "distractors": 180},
            },
            "generated, recipe V seed 8, recipe R seed 9; 1000 pairs, 40 queries, 180 distractors",
        ),
        (
            {
                "source": "official HPatches retrieval lists (shipped); verification generated with recipe V",
                "verification_seed": 42,
                "retrieval_seed": None,
                "counts": {"pos": 10, "queries": 2, "distractors": 3},
            },
            "official retrieval lists, verification recipe V seed 42; 10 pairs, 2 queries, 3 distractors",
        ),
    ],
)
def test_task_files_label(provenance, expected) -> None:
    """The label names the source, the seeds and the counts."""
    assert report.task_files_label(provenance) == expected


def test_tables_name_their_task_files(fixture_results) -> None:
    """Every mAP table carries the task files it was computed with."""
    for table in (report.table2([fixture_results]), report.table2_breakdown([fixture_results])):
        assert table.columns[-1] == "task_files"
        assert "1000 pairs, 40 queries, 180 distractors" in table.loc[0, "task_files"]


def _den(epochs: int, kept: int | None, seconds: float) -> dict:
    """Fake denoiser run metrics (kept_epoch left out when None, as older runs)."""
    metrics = {"epochs": epochs, "train_seconds": seconds}
    return metrics if kept is None else {**metrics, "kept_epoch": kept}


def test_table1_pipelines_beside_the_report() -> None:
    """Measured epochs (the denoiser's kept epoch) sit beside R Table 1's for the same pipeline."""
    rows = [
        {
            "denoiser": "unet",
            "descriptor": "baseline",
            "denoiser_metrics": _den(6, 6, 12.5),
            "descriptor_metrics": {"epochs": 5, "train_seconds": 30.0, "source": "denoised", "init_from": None},
        },
        {
            "denoiser": "dncnn_adam",
            "descriptor": "retrained",
            "denoiser_metrics": _den(6, 5, 40.0),
            "descriptor_metrics": {"epochs": 2, "train_seconds": 9.0, "source": "denoised", "init_from": "baseline"},
        },
        {
            "denoiser": "dncnn_adam",
            "descriptor": "deep",
            "denoiser_metrics": _den(4, None, 20.0),
            "descriptor_metrics": {"epochs": 3, "train_seconds": 11.0, "source": "denoised"},
        },
        {
            "denoiser": "none",
            "descriptor": "baseline",
            "denoiser_metrics": None,
            "descriptor_metrics": {"epochs": 5, "train_seconds": 28.0, "source": "noisy", "init_from": None},
        },
    ]
    table = report.table1_pipelines(rows)
    assert list(table["denoiser"]) == ["unet", "dncnn_adam", "dncnn_adam", "none"]
    assert list(table["descriptor epochs"]) == [5, 2, 3, 5]
    assert list(table["denoiser epochs"][:3]) == [6, 5, 4]  # kept epoch; epochs when not recorded
    assert list(table["report denoiser epochs"][:3]) == [40, 5, 5]
    assert list(table["report descriptor epochs"][:3]) == [40, 13, 40]
    last = table.iloc[3]  # no denoiser and not a report pipeline
    assert pd.isna(last["denoiser epochs"]) and pd.isna(last["denoiser seconds"])
    assert pd.isna(last["report denoiser epochs"]) and pd.isna(last["report descriptor epochs"])
    assert list(table["descriptor trained on"]) == ["denoised", "denoised", "denoised", "noisy"]
    assert list(table["fine-tuned from"]) == ["", "baseline", "", ""]
    assert list(table["denoiser seconds"][:3]) == [12.5, 40.0, 20.0]
    assert list(table["descriptor seconds"]) == [30.0, 9.0, 11.0, 28.0]


def test_report_table1_covers_the_table2_pipelines() -> None:
    """R Table 1: U-Net 40 epochs, DnCNN 5, descriptors 40, retrained 13, for Table 2's six pipelines."""
    assert set(report.REPORT_TABLE1) == set(
        zip(report.REPORT_TABLE2["denoiser"], report.REPORT_TABLE2["descriptor"], strict=True)
    )
    for (denoiser, descriptor), (den_epochs, desc_epochs) in report.REPORT_TABLE1.items():
        assert den_epochs == {"unet": 40, "dncnn_adam": 5}[denoiser]
        assert desc_epochs == (13 if descriptor == "retrained" else 40)
