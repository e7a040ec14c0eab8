"""Task files: recipes V and R, reading/writing, official lists, reuse and validation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nhpatches.core.config import resource_path
from nhpatches.data.splits import read_splits_file as read_splits
from nhpatches.data.tasks import (
    TaskSet,
    focus_tasks,
    generate_retrieval_lists,
    generate_tasks,
    generate_verification_pairs,
    load_or_generate_tasks,
    load_tasks,
    official_tasks,
    validate_tasks,
    write_tasks,
)
from nhpatches.data.tasks import files as task_files

FIXTURE = Path(__file__).parent / "fixtures" / "hpatches_eval"
SIZES = {"i_one": 12, "v_two": 9, "i_three": 15}


def fixture_meta() -> dict:
    """Generator parameters of the conformance fixture."""
    return json.loads((FIXTURE / "meta.json").read_text())


def copy_tasks(tmp_path: Path) -> Path:
    """A writable copy of the fixture's task folder."""
    return Path(shutil.copytree(FIXTURE / "tasks", tmp_path / "tasks"))


# ----------------------------------------------------------------------------- recipes
def test_recipe_v_reproduces_fixture_files() -> None:
    """Recipe V with the fixture's seed and sizes gives exactly its verification files."""
    meta = fixture_meta()
    loaded = load_tasks(FIXTURE / "tasks", "fixture")
    pairs = generate_verification_pairs(meta["patches_per_sequence"], meta["n_pairs"], meta["verification_seed"])
    for kind in ("pos", "intra", "inter"):
        np.testing.assert_array_equal(pairs[kind], loaded.verification[kind])


def test_recipe_r_reproduces_fixture_files() -> None:
    """Recipe R with the fixture's seed and sizes gives exactly its retrieval files."""
    meta = fixture_meta()
    loaded = load_tasks(FIXTURE / "tasks", "fixture")
    queries, distractors = generate_retrieval_lists(
        meta["patches_per_sequence"], meta["n_queries"], meta["n_distractors"], meta["retrieval_seed"]
    )
    np.testing.assert_array_equal(queries, loaded.queries)
    np.testing.assert_array_equal(distractors, loaded.distractors)


def test_recipe_v_properties() -> None:
    """Positives share the point, intra negatives differ from it, images are distinct ids 0..4."""
    pairs = generate_verification_pairs(SIZES, 2000, 1)
    pos, intra, inter = pairs["pos"], pairs["intra"], pairs["inter"]
    assert np.all(pos[:, 0] == pos[:, 3]) and np.all(pos[:, 2] == pos[:, 5])
    assert np.all(intra[:, 2] != intra[:, 5]) and np.all(intra[:, :5] == pos[:, :5])
    assert np.all(inter[:, :3] == pos[:, :3]) and np.all(pos[:, 1] != pos[:, 4])
    assert pos[:, [1, 4]].max() == 4 and pos[:, [1, 4]].min() == 0


def test_recipe_r_properties() -> None:
    """Queries and distractors are unique, disjoint and within range."""
    queries, distractors = generate_retrieval_lists(SIZES, 10, 20, 3)

    def keys(rows: np.ndarray) -> set[tuple[int, ...]]:
        return {tuple(r) for r in rows.tolist()}

    assert len(keys(queries)) == 10 and len(keys(distractors)) == 20
    assert not keys(queries) & keys(distractors)
    counts = np.array(list(SIZES.values()))
    assert np.all(distractors[:, 1] < counts[distractors[:, 0]])


def test_generation_is_deterministic_by_seed() -> None:
    """Same seed, same tasks; another seed, other tasks."""
    first, again, other = (
        generate_tasks(SIZES, "x", seed=s, num_pairs=50, num_queries=5, num_distractors=10) for s in (7, 7, 8)
    )
    np.testing.assert_array_equal(first.verification["inter"], again.verification["inter"])
    np.testing.assert_array_equal(first.distractors, again.distractors)
    assert not np.array_equal(first.verification["inter"], other.verification["inter"])


def test_small_data_gives_fewer_rows_recorded_in_provenance() -> None:
    """Requesting more retrieval rows than points yields fewer rows, with counts in provenance."""
    taskset = generate_tasks(SIZES, "x", num_pairs=10, num_queries=30, num_distractors=100)
    assert len(taskset.queries) == 30
    assert len(taskset.distractors) == sum(SIZES.values()) - 30
    assert taskset.provenance["counts"]["distractors"] == len(taskset.distractors)
    assert taskset.provenance["requested"]["distractors"] == 100


def test_texture_filter_drops_flat_clean_patches() -> None:
    """Clean ref patches with std <= 10 are never queries or distractors."""
    rng = np.random.default_rng(0)
    clean = {name: rng.integers(0, 256, size=(n, 8, 8)).astype(np.uint8) for name, n in SIZES.items()}
    clean["i_one"][:6] = 128
    taskset = generate_tasks(SIZES, "x", num_pairs=10, num_queries=5, num_distractors=20, clean_ref=clean)
    for rows in (taskset.queries, taskset.distractors):
        assert not np.any((rows[:, 0] == 0) & (rows[:, 1] < 6))
    assert taskset.provenance["texture_filter"] is True


def test_recipe_v_needs_two_patches() -> None:
    """A sequence with one patch cannot give intra negatives."""
    with pytest.raises(ValueError, match="at least 2 patches"):
        generate_verification_pairs({"i_one": 1, "v_two": 5}, 10, 0)


# ----------------------------------------------------------------------------- files
def test_write_then_load_round_trip(tmp_path: Path) -> None:
    """write_tasks + load_tasks give the same arrays, splits.json and a provenance record."""
    taskset = generate_tasks(SIZES, "mine", num_pairs=40, num_queries=4, num_distractors=9)
    (tmp_path / "splits.json").write_text(json.dumps({"other": {"name": "other", "test": ["i_zz"]}}))
    write_tasks(taskset, tmp_path)
    loaded = load_tasks(tmp_path, "mine")
    assert loaded.sequences == tuple(SIZES)
    for kind in ("pos", "intra", "inter"):
        np.testing.assert_array_equal(loaded.verification[kind], taskset.verification[kind])
    np.testing.assert_array_equal(loaded.queries, taskset.queries)
    assert set(read_splits(tmp_path / "splits.json")) == {"other", "mine"}
    assert loaded.provenance["verification_seed"] == 42
    assert loaded.provenance["counts"]["pos"] == 40
    assert not list(tmp_path.glob("*.tmp"))


def test_load_or_generate_reuses_matching_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second call reuses the files; other sizes or seeds regenerate them."""
    kw = {"num_pairs": 30, "num_queries": 3, "num_distractors": 6}
    first = load_or_generate_tasks(tmp_path, "g", SIZES, **kw)
    original = task_files.generate_tasks
    monkeypatch.setattr(task_files, "generate_tasks", lambda *a, **k: pytest.fail("regenerated"))
    again = load_or_generate_tasks(tmp_path, "g", SIZES, **kw)
    np.testing.assert_array_equal(first.verification["pos"], again.verification["pos"])
    monkeypatch.setattr(task_files, "generate_tasks", original)
    other = load_or_generate_tasks(tmp_path, "g", {**SIZES, "v_two": 20}, **kw)
    assert other.provenance["patches_per_sequence"]["v_two"] == 20
    reseeded = load_or_generate_tasks(tmp_path, "g", SIZES, seed=5, **kw)
    assert reseeded.provenance["verification_seed"] == 5


def test_files_without_provenance_are_regenerated(tmp_path: Path) -> None:
    """A set whose provenance record is missing (interrupted write) is not reused."""
    kw = {"num_pairs": 30, "num_queries": 3, "num_distractors": 6}
    load_or_generate_tasks(tmp_path, "g", SIZES, **kw)
    (tmp_path / "tasks_provenance_split-g.json").unlink()
    (tmp_path / "verif_pos_split-g.csv").write_text("s1,t1,idx1,s2,t2,idx2\ni_one,0,1,i_")
    taskset = load_or_generate_tasks(tmp_path, "g", SIZES, **kw)
    assert len(taskset.verification["pos"]) == 30
    assert (tmp_path / "tasks_provenance_split-g.json").is_file()


def test_official_tasks_use_shipped_lists() -> None:
    """Split a: 10,000 shipped queries, 20,000 distractors, recipe-V verification for the sizes."""
    splits = read_splits(resource_path("hpatches_tasks", "splits.json"))
    sizes = dict.fromkeys(splits["a"]["test"], 2000)
    taskset = official_tasks("a", sizes, num_pairs=100)
    assert (len(taskset.queries), len(taskset.distractors)) == (10_000, 20_000)
    assert taskset.sequences[0] == "i_ajuntament" and len(taskset.verification["pos"]) == 100
    assert "official" in taskset.provenance["source"]


def test_official_tasks_reject_too_small_sequences() -> None:
    """Shipped indices beyond the given patch counts give a clear error."""
    splits = read_splits(resource_path("hpatches_tasks", "splits.json"))
    with pytest.raises(ValueError, match="do not fit"):
        official_tasks("a", dict.fromkeys(splits["a"]["test"], 50), num_pairs=10)
    with pytest.raises(ValueError, match="needs patch counts"):
        official_tasks("a", {"i_ajuntament": 100}, num_pairs=10)


# ----------------------------------------------------------------------------- bad input
def replace_line(path: Path, line: int, text: str) -> None:
    """Overwrite one line of a text file."""
    lines = path.read_text().splitlines()
    lines[line] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "file_name, line, text, message",
    [
        ("verif_pos_split-fixture.csv", 0, "s1,t1,i1,s2,t2,idx2", "header"),
        ("verif_pos_split-fixture.csv", 3, "i_nowhere,0,1,i_fog,1,1", "i_nowhere"),
        ("verif_neg_inter_split-fixture.csv", 2, "i_fog,7,1,i_fog,1,1", "image id 7"),
        ("retr_queries_split-fixture.csv", 5, "i_fog,-3", "non-negative"),
        ("retr_distractors_split-fixture.csv", 5, "i_fog,abc", "retr_distractors"),
        ("retr_queries_split-fixture.csv", 0, "seq,idx", "header"),
    ],
)
def test_load_tasks_rejects_bad_files(tmp_path: Path, file_name: str, line: int, text: str, message: str) -> None:
    """Each malformed task file raises ValueError naming the file and the problem."""
    directory = copy_tasks(tmp_path)
    replace_line(directory / file_name, line, text)
    with pytest.raises(ValueError, match=message) as error:
        load_tasks(directory, "fixture")
    assert file_name in str(error.value)


def test_load_tasks_missing_file_and_split(tmp_path: Path) -> None:
    """A missing task file or an unknown split name is reported."""
    directory = copy_tasks(tmp_path)
    with pytest.raises(ValueError, match="unknown split"):
        load_tasks(directory, "zz")
    (directory / "retr_queries_split-fixture.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"retr_queries_split-fixture\.csv"):
        load_tasks(directory, "fixture")


@pytest.mark.parametrize("content", ["{", "[]", '{"a": {"test": []}}', '{"a": {"test": ["Bad Name"]}}'])
def test_read_splits_rejects_bad_structure(tmp_path: Path, content: str) -> None:
    """Invalid JSON, non-objects, empty test lists and bad names raise ValueError."""
    path = tmp_path / "splits.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"splits\.json"):
        read_splits(path)


def test_validate_tasks_names_out_of_range_index() -> None:
    """An index beyond a sequence's patch count names the list, sequence and valid range."""
    taskset = generate_tasks(SIZES, "x", num_pairs=20, num_queries=3, num_distractors=5)
    with pytest.raises(
        ValueError,
        match=r"verif_pos_split-x.csv: data row \d+ has patch index \d+ for sequence '\w+', "
        r"which has 4 patches \(expected 0\.\.3\)",
    ):
        validate_tasks(taskset, {"i_one": 4, "v_two": 4, "i_three": 4})
    bad = TaskSet("x", taskset.sequences, taskset.verification, taskset.queries + 100, taskset.distractors)
    with pytest.raises(ValueError, match=r"retr_queries_split-x\.csv"):
        validate_tasks(bad, SIZES)


def test_focus_tasks_keeps_one_sequence_questions_and_every_other_patch_as_negatives() -> None:
    sizes = {"v_real": 30, "i_other": 40, "v_more": 50}
    full = generate_tasks(sizes, "real", seed=1, num_pairs=3_000, num_queries=60, num_distractors=60)
    focused = focus_tasks(full, "v_real")
    for kind in ("pos", "intra"):
        rows = focused.verification[kind]
        assert len(rows) and (rows[:, 0] == 0).all() and (rows[:, 3] == 0).all()
    inter = focused.verification["inter"]
    assert (inter[:, 0] == 0).all() and (inter[:, 3] != 0).any()
    assert len(focused.queries) and (focused.queries[:, 0] == 0).all()
    # every reference patch the full set used stays: other sequences' queries become distractors
    used = {tuple(r) for r in full.queries} | {tuple(r) for r in full.distractors}
    kept = {tuple(r) for r in focused.queries} | {tuple(r) for r in focused.distractors}
    assert used == kept and not ({tuple(r) for r in focused.queries} & {tuple(r) for r in focused.distractors})
    assert focused.provenance["focus"] == "v_real" and focused.provenance["counts"]["queries"] == len(focused.queries)
    validate_tasks(focused, sizes)
    with pytest.raises(ValueError, match="not in the task set"):
        focus_tasks(full, "v_absent")
