"""The hpatches-eval command: results, input formats and one clear error per kind of bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nhpatches.cli.eval import main

FIXTURE = Path(__file__).parent / "fixtures" / "hpatches_eval"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


def copy_fixture(tmp_path: Path) -> tuple[Path, Path]:
    """Writable copies of the fixture's descriptor and task folders."""
    descr = Path(shutil.copytree(FIXTURE / "descriptors", tmp_path / "descr"))
    return descr, Path(shutil.copytree(FIXTURE / "tasks", tmp_path / "tasks"))


def run_main(descr: Path, tasks: Path, *extra: str) -> int:
    """main() on split 'fixture'."""
    return main([str(descr), "--tasks", str(tasks), "--split", "fixture", *extra])


def assert_summary(path: Path) -> dict:
    """The JSON's three task mAPs equal expected.json's."""
    results = json.loads(path.read_text())
    for key, value in EXPECTED["summary"].items():
        assert results["summary"][key] == pytest.approx(value, abs=1e-6), key
    return results


def test_main_prints_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 0, a table on stdout, and a JSON with breakdowns, timings and task provenance."""
    out = tmp_path / "results.json"
    assert run_main(FIXTURE / "descriptors", FIXTURE / "tasks", "--json", str(out)) == 0
    printed = capsys.readouterr()
    assert "retrieval" in printed.out and "tough" in printed.out and "v_" in printed.out
    assert printed.err == ""
    results = assert_summary(out)
    for task in ("verification", "matching", "retrieval"):
        assert set(results[task]["ap_per_noise"]) == {"e", "h", "t"}
        assert set(results[task]["ap_per_prefix"]) == {"i_", "v_"}
        assert results["timings_s"][task] >= 0
    assert results["retrieval"]["ap_per_noise_pool"]["t"]["100"] == pytest.approx(
        EXPECTED["retrieval"]["ap_per_noise_pool"]["t"]["100"], abs=1e-6
    )
    assert results["tasks"]["counts"]["distractors"] == 180 and results["tasks"]["split"] == "fixture"


def test_semicolon_csv_npy_and_extra_folders(tmp_path: Path) -> None:
    """Coursework ';' %10.5f files, .npy files and unrelated folders give the same results."""
    descr, tasks = copy_fixture(tmp_path)
    for index, path in enumerate(sorted(descr.glob("*/*.csv"))):
        values = np.loadtxt(path, delimiter=",", dtype=np.float32)
        path.unlink()
        if index % 2:
            np.save(path.with_suffix(".npy"), values)
        else:
            np.savetxt(path, values, fmt="%10.5f", delimiter=";")
    (descr / "v_unrelated").mkdir()
    (descr / "notes").mkdir()
    assert run_main(descr, tasks, "--json", str(tmp_path / "r.json")) == 0
    assert_summary(tmp_path / "r.json")


def test_l1_distance_runs(tmp_path: Path) -> None:
    """--distance L1 evaluates and records the distance."""
    assert (
        run_main(FIXTURE / "descriptors", FIXTURE / "tasks", "--distance", "L1", "--json", str(tmp_path / "r.json"))
        == 0
    )
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["distance"] == "L1" and 0 < results["summary"]["mean_mAP"] < 1


def test_console_script_subprocess(tmp_path: Path) -> None:
    """The installed hpatches-eval script runs on the fixture (stderr quiet when not a terminal)."""
    script = shutil.which("hpatches-eval") or str(Path(sys.executable).parent / "hpatches-eval")
    out = tmp_path / "r.json"
    done = subprocess.run(
        [
            script,
            str(FIXTURE / "descriptors"),
            "--tasks",
            str(FIXTURE / "tasks"),
            "--split",
            "fixture",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert_summary(out)


# ----------------------------------------------------------------------------- bad input
def drop_row(path: Path) -> None:
    """Remove the last row of a descriptor CSV."""
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")


def set_value(path: Path, text: str) -> None:
    """Replace the first value of a descriptor CSV."""
    lines = path.read_text().splitlines()
    lines[0] = text + lines[0][lines[0].index(",") :]
    path.write_text("\n".join(lines) + "\n")


def drop_column(path: Path) -> None:
    """Remove the last column of a descriptor CSV."""
    path.write_text("\n".join(line.rsplit(",", 1)[0] for line in path.read_text().splitlines()) + "\n")


def replace_task_line(path: Path, line: int, text: str) -> None:
    """Overwrite one line of a task file."""
    lines = path.read_text().splitlines()
    lines[line] = text
    path.write_text("\n".join(lines) + "\n")


BAD_INPUTS = {
    "row count": (lambda d, t: drop_row(d / "i_fog" / "h3.csv"), "i_fog/h3.csv", "expected 42"),
    "missing sequence": (lambda d, t: shutil.rmtree(d / "v_bees"), "v_bees", "not found"),
    "missing image": (lambda d, t: (d / "i_bologna" / "t5.csv").unlink(), "t5.csv", "not found"),
    "unknown sequence": (
        lambda d, t: replace_task_line(t / "verif_neg_intra_split-fixture.csv", 4, "i_mars,0,1,i_mars,1,2"),
        "verif_neg_intra_split-fixture.csv",
        "i_mars",
    ),
    "index range": (
        lambda d, t: replace_task_line(t / "retr_distractors_split-fixture.csv", 7, "i_fog,42"),
        "retr_distractors_split-fixture.csv",
        "0..41",
    ),
    "image id": (
        lambda d, t: replace_task_line(t / "verif_pos_split-fixture.csv", 9, "i_fog,0,1,i_fog,6,1"),
        "verif_pos_split-fixture.csv",
        "image id 6",
    ),
    "nan": (lambda d, t: set_value(d / "v_strand" / "e2.csv", "nan"), "e2.csv", "NaN"),
    "infinite": (lambda d, t: set_value(d / "v_strand" / "ref.csv", "inf"), "ref.csv", "infinite"),
    "dimension": (lambda d, t: [drop_column(p) for p in (d / "v_abstract").glob("*.csv")], "v_abstract", "dimension"),
    "dimension in one file": (lambda d, t: drop_column(d / "i_fog" / "e4.csv"), "i_fog/e4.csv", "columns"),
    "malformed csv": (lambda d, t: set_value(d / "i_fog" / "ref.csv", "abc"), "ref.csv", "malformed"),
    "empty file": (lambda d, t: (d / "i_fog" / "e1.csv").write_text(""), "e1.csv", "empty"),
    "task header": (
        lambda d, t: replace_task_line(t / "retr_queries_split-fixture.csv", 0, "seq,index"),
        "retr_queries_split-fixture.csv",
        "header",
    ),
    "empty folder": (lambda d, t: [shutil.rmtree(p) for p in list(d.iterdir())], "descr", "empty"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """Each kind of bad input: exit code 2, one stderr line naming the file and the expectation."""
    descr, tasks = copy_fixture(tmp_path)
    damage, name, expectation = BAD_INPUTS[case]
    damage(descr, tasks)
    assert run_main(descr, tasks) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpatches-eval: error:") and err.count("\n") == 1, err
    assert name in err and expectation in err, err
    assert "Traceback" not in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Missing required options is a usage error with exit code 2."""
    assert main(["somewhere"]) == 2
    assert "--tasks" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_write_then_read_descriptor_dir(tmp_path: Path, fmt: str) -> None:
    """write_descriptor_dir round-trips float32 values exactly and leaves no temp files."""
    from nhpatches.evaluation.descriptor_io import (
        read_descriptor_dir,
        write_descriptor_dir,
    )

    values = {"i_one": np.random.default_rng(0).normal(size=(16, 7, 5)).astype(np.float32)}
    write_descriptor_dir(values, tmp_path, fmt=fmt)
    np.testing.assert_array_equal(read_descriptor_dir(tmp_path, ["i_one"])["i_one"], values["i_one"])
    assert not list(tmp_path.rglob("*.tmp"))
