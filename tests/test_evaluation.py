"""HPatches evaluation: the conformance fixture, AP cases, and the loop reference (nhpatches.evaluation.reference)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nhpatches.data.tasks import TaskSet, generate_tasks, load_tasks
from nhpatches.evaluation import (
    average_precision,
    balanced_auc,
    evaluate,
    evaluate_matching,
    evaluate_retrieval,
    evaluate_verification,
    format_results,
    metrics,
    results_to_frame,
)
from nhpatches.evaluation.descriptor_io import read_descriptor_dir
from nhpatches.evaluation.reference import (
    reference_ap,
    reference_matching,
    reference_nearest,
    reference_retrieval,
    reference_verification,
    retrieval_table,
)

FIXTURE = Path(__file__).parent / "fixtures" / "hpatches_eval"
TOLERANCE = 1e-6


# ----------------------------------------------------------------------------- helpers
def load_fixture() -> tuple[dict[str, np.ndarray], TaskSet]:
    """Fixture descriptors and task set (split 'fixture')."""
    tasks = load_tasks(FIXTURE / "tasks", "fixture")
    return read_descriptor_dir(FIXTURE / "descriptors", tasks.sequences), tasks


@pytest.fixture(scope="module")
def fixture_results() -> dict[str, Any]:
    """evaluate() on the conformance fixture."""
    descriptors, tasks = load_fixture()
    return evaluate(descriptors, tasks, progress=False)


def leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(path, value) of every number in a nested dict/list."""
    if isinstance(tree, Mapping):
        return [item for key, value in tree.items() for item in leaves(value, f"{prefix}/{key}")]
    if isinstance(tree, list):
        return [item for i, value in enumerate(tree) for item in leaves(value, f"{prefix}[{i}]")]
    return [(prefix, tree)]


def lookup(tree: Any, path: str) -> Any:
    """Value at a path produced by leaves()."""
    for part in path.strip("/").replace("[", "/[").split("/"):
        tree = tree[int(part[1:-1])] if part.startswith("[") else tree[part]
    return tree


EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
SECTIONS = ("verification", "matching", "retrieval", "summary")


# ----------------------------------------------------------------------------- fixture
@pytest.mark.parametrize("section", SECTIONS)
def test_fixture_numbers_reproduced(fixture_results: dict[str, Any], section: str) -> None:
    """Every number of expected.json[section] is reproduced to 1e-6."""
    expected = leaves(EXPECTED[section], section)
    assert len(expected) >= 3
    for path, value in expected:
        got = lookup(fixture_results, path)
        if isinstance(value, float):
            assert got == pytest.approx(value, abs=TOLERANCE), path
        else:
            assert got == value, path


def test_fixture_metadata(fixture_results: dict[str, Any]) -> None:
    """Split, dimension, distance and counts match the fixture."""
    for key in ("split", "dim", "distance", "n_sequences"):
        assert fixture_results[key] == EXPECTED[key]
    assert fixture_results["tasks"]["counts"]["queries"] == 40
    assert set(fixture_results["timings_s"]) == {"verification", "matching", "retrieval"}


@pytest.mark.parametrize("case", json.loads((FIXTURE / "ap_cases.json").read_text()), ids=lambda c: c["name"])
def test_ap_cases(case: dict[str, Any]) -> None:
    """AP (and balanced AUC) of every ap_cases.json case."""
    assert average_precision(case["distances"], case["labels"], case["numpos"]) == pytest.approx(
        case["ap"], abs=TOLERANCE
    )
    if "auc" in case:
        assert balanced_auc(case["distances"], case["labels"]) == pytest.approx(case["auc"], abs=TOLERANCE)


def test_ap_is_trapezoid_not_mean_precision() -> None:
    """Spec 3.1 examples: one positive at rank 3 gives 1/6; ranks 3,4 of 4 give 0.2917."""
    assert average_precision([0.1, 0.2, 0.3], [0, 0, 1]) == pytest.approx(1 / 6, abs=1e-9)
    assert average_precision([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]) == pytest.approx(0.2917, abs=1e-4)


@pytest.mark.parametrize(
    "distances, labels, num_positives",
    [([0.1, np.nan], [1, 0], None), ([0.1, 0.2], [1, 1], 1), ([0.1, 0.2], [1, 2], None), ([0.1], [1, 0], None)],
)
def test_average_precision_rejects_bad_input(distances: list, labels: list, num_positives: int | None) -> None:
    """NaN, too small num_positives, non-binary labels and length mismatch raise ValueError."""
    with pytest.raises(ValueError):
        average_precision(distances, labels, num_positives)


# ----------------------------------------------------------------------------- loop reference
@pytest.mark.parametrize("case", json.loads((FIXTURE / "ap_cases.json").read_text()), ids=lambda c: c["name"])
def test_reference_ap_reproduces_ap_cases(case: dict[str, Any]) -> None:
    """The reference loops' pr() gives every ap_cases.json AP (so the loops are checked, not only used)."""
    assert reference_ap(case["distances"], case["labels"], case["numpos"]) == pytest.approx(case["ap"], abs=TOLERANCE)


# ----------------------------------------------------------------------------- random datasets
def random_dataset(seed: int, dim: int = 24, grid: float = 0.5) -> tuple[dict[str, np.ndarray], TaskSet]:
    """5 sequences of 30-35 patches, descriptors on a coarse grid (many exact ties), recipes V/R tasks."""
    rng = np.random.default_rng(seed)
    names = ["i_alpha", "i_beta", "v_gamma", "v_delta", "i_eps"]
    descriptors = {}
    for name in names:
        count = int(rng.integers(30, 36))
        points = rng.normal(size=(1, count, dim))
        values = points + rng.normal(scale=1.2, size=(16, count, dim))
        descriptors[name] = (np.round(values / grid) * grid).astype(np.float32) if grid else values.astype(np.float32)
    sizes = {name: array.shape[1] for name, array in descriptors.items()}
    tasks = generate_tasks(sizes, "random", seed=seed, num_pairs=300, num_queries=12, num_distractors=140)
    return descriptors, tasks


def assert_nested_close(fast: Any, reference: Any) -> None:
    """Every reference leaf equals the fast one to 1e-9."""
    for path, value in leaves(reference):
        assert lookup(fast, path) == pytest.approx(value, abs=1e-9), path


@pytest.mark.parametrize("metric", ["L2", "L1"])
def test_verification_matches_loop_reference(metric: str) -> None:
    """Vectorised verification equals the per-pair loop on a tie-heavy random dataset."""
    descriptors, tasks = random_dataset(3)
    fast = evaluate_verification(descriptors, tasks, distance=metric)
    assert_nested_close(fast["ap_imbalanced"], reference_verification(descriptors, tasks, metric))


@pytest.mark.parametrize("metric, grid", [("L2", 0.5), ("L1", 0.5), ("L2", 0.0)])
def test_matching_matches_loop_reference(metric: str, grid: float) -> None:
    """Matching equals a per-patch nearest-neighbour scan (ties: first index), quantised or not."""
    descriptors, tasks = random_dataset(4, grid=grid)
    names = tasks.sequences[:3]
    fast = evaluate_matching(descriptors, names, distance=metric)
    assert_nested_close(fast["ap_per_seq"], reference_matching(descriptors, names, metric))


@pytest.mark.parametrize("metric", ["L2", "L1"])
def test_retrieval_matches_loop_reference(metric: str) -> None:
    """Retrieval equals the per-query loop for pools shorter and longer than the list (>100 entries)."""
    descriptors, tasks = random_dataset(5)
    pools = (5, 6, 40, 100, 117, 500)
    assert min(np.sum(tasks.distractors[:, 0] != s) for s in range(5)) + 5 > 100
    fast = evaluate_retrieval(descriptors, tasks, distance=metric, pool_sizes=pools)
    reference = retrieval_table(reference_retrieval(descriptors, tasks, metric, pools), pools)
    assert_nested_close(fast["ap_per_noise_pool"], reference)
    assert fast["ap_per_noise_pool"]["e"]["100"] != fast["ap_per_noise_pool"]["e"]["500"]


def test_all_equal_descriptors_follow_tie_orders() -> None:
    """All distances 0: every task falls back to its specified tie order, as the loops do."""
    descriptors, tasks = random_dataset(6)
    flat = {name: np.ones_like(array) for name, array in descriptors.items()}
    small = dataclasses.replace(tasks, queries=tasks.queries[:3])
    results = evaluate(flat, small, progress=False)
    assert_nested_close(results["verification"]["ap_imbalanced"], reference_verification(flat, small, "L2"))
    assert_nested_close(results["matching"]["ap_per_seq"], reference_matching(flat, small.sequences, "L2"))
    assert_nested_close(results["retrieval"]["ap_per_noise_pool"], retrieval_table(reference_retrieval(flat, small)))
    assert results["retrieval"]["mAP"] == pytest.approx(1.0)


def test_nearest_neighbour_exact_below_float32_resolution() -> None:
    """Candidates closer than float32 rounding are decided with float64 direct distances."""
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(40, 64)).astype(np.float32) * 100
    target = np.repeat(reference, 2, axis=0)
    target[1::2, 0] = np.nextafter(target[1::2, 0], np.float32(np.inf))
    target[0::2, 1] = np.nextafter(target[0::2, 1], np.float32(np.inf))
    target[0::2, 1] = np.nextafter(target[0::2, 1], np.float32(np.inf))
    nearest, distance = metrics.nearest_neighbours(reference, target, "L2")
    np.testing.assert_array_equal(nearest, reference_nearest(reference, target, "L2")[0])
    assert np.all(distance > 0)


# ----------------------------------------------------------------------------- API checks and tables
def broken(descriptors: dict[str, np.ndarray], case: str) -> dict[str, np.ndarray]:
    """A copy of the descriptors with one defect."""
    out = dict(descriptors)
    if case == "missing":
        out.pop("i_fog")
    elif case == "nan":
        out["i_fog"] = out["i_fog"].copy()
        out["i_fog"][3, 2, 1] = np.nan
    elif case == "shape":
        out["i_fog"] = out["i_fog"][:15]
    else:
        out["i_fog"] = out["i_fog"][:, :, :8]
    return out


@pytest.mark.parametrize(
    "case, message", [("missing", "missing"), ("nan", "NaN"), ("shape", "16, N, D"), ("dim", "dimension")]
)
def test_evaluate_validates_descriptors(case: str, message: str) -> None:
    """Missing sequences, NaN, wrong shapes and mixed dimensions raise ValueError naming the sequence."""
    descriptors, tasks = load_fixture()
    with pytest.raises(ValueError, match=message) as error:
        evaluate(broken(descriptors, case), tasks, progress=False)
    assert "i_fog" in str(error.value)


def test_evaluate_rejects_out_of_range_tasks() -> None:
    """Task indices beyond the descriptors' patch counts raise before any evaluation."""
    descriptors, tasks = load_fixture()
    short = {name: array[:, :20] for name, array in descriptors.items()}
    with pytest.raises(ValueError, match="patch index"):
        evaluate(short, tasks, progress=False)
    with pytest.raises(ValueError, match="distance"):
        evaluate(descriptors, tasks, distance="cosine")


def test_results_frame_and_text(fixture_results: dict[str, Any]) -> None:
    """Tidy rows per (task, noise_level, subset) and a text table quoting the same numbers."""
    frame = results_to_frame(fixture_results)
    assert list(frame.columns) == ["task", "noise_level", "subset", "mAP"]
    assert len(frame) == 3 * (1 + 3 + 2)
    row = frame[(frame.task == "matching") & (frame.noise_level == "hard")]
    assert row.mAP.item() == pytest.approx(EXPECTED["matching"]["ap_per_noise"]["h"])
    text = format_results(fixture_results)
    assert f"{EXPECTED['summary']['retrieval_mAP']:.4f}" in text and "tough" in text


def restrict(tasks: TaskSet, prefix: str) -> TaskSet:
    """Task rows / queries whose first sequence has ``prefix``."""
    keep = np.array([name.startswith(prefix) for name in tasks.sequences])
    lists = {kind: rows[keep[rows[:, 0]]] for kind, rows in tasks.verification.items()}
    return dataclasses.replace(tasks, verification=lists, queries=tasks.queries[keep[tasks.queries[:, 0]]])


@pytest.mark.parametrize("prefix", ["i_", "v_"])
def test_subset_breakdowns_match_restricted_reference(prefix: str) -> None:
    """ap_per_prefix of verification and retrieval = the loops on the prefix's rows / queries."""
    descriptors, tasks = random_dataset(7)
    results = evaluate(descriptors, tasks, progress=False)
    subset = restrict(tasks, prefix)
    verification = reference_verification(descriptors, subset, "L2")
    expected = np.mean([value for v in verification.values() for value in v.values()])
    assert results["verification"]["ap_per_prefix"][prefix] == pytest.approx(expected, abs=1e-9)
    retrieval = retrieval_table(reference_retrieval(descriptors, subset, "L2"))
    expected = np.mean([value for v in retrieval.values() for value in v.values()])
    assert results["retrieval"]["ap_per_prefix"][prefix] == pytest.approx(expected, abs=1e-9)


def test_verification_with_unequal_list_lengths() -> None:
    """Labels follow the actual list lengths (the official code assumes N_neg = N_pos)."""
    descriptors, tasks = random_dataset(8)
    lists = dict(tasks.verification, intra=tasks.verification["intra"][:170])
    uneven = dataclasses.replace(tasks, verification=lists)
    fast = evaluate_verification(descriptors, uneven)
    assert_nested_close(fast["ap_imbalanced"], reference_verification(descriptors, uneven, "L2"))


@pytest.mark.parametrize("workers", [1, 3])
def test_worker_threads_do_not_change_results(workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Matching and retrieval give the same numbers on 1 or 3 worker threads (each with its own workspace)."""
    import contextlib

    from nhpatches.evaluation import matching, retrieval

    descriptors, tasks = random_dataset(9)
    expected = evaluate(descriptors, tasks, progress=False)
    for module in (matching, retrieval):
        monkeypatch.setattr(module, "single_threaded_blas", lambda: contextlib.nullcontext(workers))
    results = evaluate(descriptors, tasks, progress=False)
    for task in ("matching", "retrieval"):
        assert results[task] == expected[task]  # exactly: the blocks are independent
