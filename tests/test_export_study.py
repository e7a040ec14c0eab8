"""scripts/export_pretrained.py and nhpatches.cli.export_study: --out is required, and the package's own
resources/pretrained (the shipped descriptor) is refused unless --force is given."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from nhpatches import pretrained
from nhpatches.cli import export_study

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "export_pretrained.py"


@pytest.fixture(scope="module")
def script():
    """scripts/export_pretrained.py as a module."""
    spec = importlib.util.spec_from_file_location("export_pretrained", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_out_is_required(script, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        script.main(["--denoiser", "none", "--descriptor", "hardnet_flip"])
    assert exit_.value.code == 2 and "--out" in capsys.readouterr().err


def test_the_shipped_folder_is_refused_without_force(script, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """The installed package's folder, and any folder named nhpatches/resources/pretrained, are refused
    before any training, with the path in the message; the shipped files stay as they were."""
    shipped = pretrained.pretrained_dir()
    before = {path.name: path.stat().st_mtime_ns for path in shipped.iterdir()}
    status = script.main(["--denoiser", "none", "--descriptor", "hardnet_flip", "--out", str(shipped)])
    error = capsys.readouterr().err
    assert status == 2 and str(shipped.resolve()) in error and "--force" in error
    assert {path.name: path.stat().st_mtime_ns for path in shipped.iterdir()} == before
    checkout_copy = tmp_path / "clone" / "lib" / "nhpatches" / "resources" / "pretrained"
    with pytest.raises(ValueError, match="describe\\(\\) ships"):
        export_study.export_study_pipeline(checkout_copy, "none", "hardnet_flip", profile="smoke")
    assert not checkout_copy.exists()


def test_other_folders_and_force_pass_the_check(tmp_path) -> None:
    export_study.check_output_folder(tmp_path / "my_export", force=False)
    export_study.check_output_folder(tmp_path / "resources" / "pretrained", force=False)  # not the package's
    export_study.check_output_folder(pretrained.pretrained_dir(), force=True)
    assert export_study.is_shipped_folder(pretrained.pretrained_dir() / ".." / "pretrained")
