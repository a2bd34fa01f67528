"""A train/cv output folder holds one run: the same arguments resume it, others are refused or replaced."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ONFHAssistLib.cli import main
from ONFHAssistLib.errors import InputError
from ONFHAssistLib.training import TrainSettings, run_folder


def _settings(tmp_path: Path, **changes) -> TrainSettings:
    (tmp_path / "data").mkdir(exist_ok=True)
    return TrainSettings(**{"task": "localizer", "data": tmp_path / "data", "out": tmp_path / "run", **changes})


def test_same_arguments_resume_other_arguments_are_named_and_overwrite_starts_afresh(tmp_path):
    run_folder.claim("train", _settings(tmp_path, lr=0.001, seed=1))
    (tmp_path / "run" / "checkpoints").mkdir()
    run_folder.claim("train", _settings(tmp_path, lr=0.001, seed=1, device="cpu"))  # the device does not matter
    assert (tmp_path / "run" / "checkpoints").is_dir()
    with pytest.raises(InputError, match=r"seed 1 -> 2, lr 0\.001 -> 0\.01"):
        run_folder.claim("train", _settings(tmp_path, lr=0.01, seed=2))
    run_folder.claim("train", _settings(tmp_path, lr=0.01, seed=2), overwrite=True)
    with pytest.raises(InputError, match=r"necrosis_weight None -> 2\.0"):  # a loss weight changes the result too
        run_folder.claim("train", _settings(tmp_path, lr=0.01, seed=2, necrosis_weight=2.0))
    assert not (tmp_path / "run" / "checkpoints").exists()  # the old run's checkpoints are gone
    assert json.loads((tmp_path / "run" / "run.json").read_text())["lr"] == 0.01


def test_a_cv_run_takes_more_rows_without_losing_the_finished_ones(tmp_path):
    """`cv --models` picks rows; each (fold, row) result stands alone (seed 000's combination search adds rows)."""
    run_folder.claim("cv", _settings(tmp_path, task="survival", models="survrnc"))
    (tmp_path / "run" / "folds").mkdir()
    run_folder.claim("cv", _settings(tmp_path, task="survival", models="survrnc[image+grades]"))
    assert (tmp_path / "run" / "folds").is_dir()
    with pytest.raises(InputError, match=r"epochs None -> 3"):
        run_folder.claim("cv", _settings(tmp_path, task="survival", models="survrnc", epochs=3))


def test_the_cli_refuses_a_used_folder_before_any_training(tmp_path, capsys):
    run_folder.claim("train", _settings(tmp_path))
    code = main(["train", "localizer", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                 "--seed", "5", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "seed 0 -> 5" in err[0] and "--overwrite" in err[0]


def test_segment_killed_mid_write_never_leaves_the_old_analysis_beside_new_labels(tmp_path):
    """SIGKILL `onfh segment` as soon as its new label map appears: the folder either has no analysis.json (not a
    finished result) or the new one, never the previous run's beside the new label map."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from ONFHAssistLib.jobs import child_env
    from ONFHAssistLib.slicer import demo_case

    out = tmp_path / "seg"
    out.mkdir()
    (out / "analysis.json").write_text("{}", encoding="utf-8")  # an earlier run's result
    child = subprocess.Popen([sys.executable, "-m", "ONFHAssistLib", "segment", str(demo_case.image_path()),
                              "--out", str(out), "--device", "cpu"], env=child_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and child.poll() is None and not (out / "labels.nii.gz").exists():
        time.sleep(0.01)
    if child.poll() is None:  # the new label map is being written: stop the process here
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert (out / "labels.nii.gz").exists()
    finished = out / "analysis.json"
    assert not finished.exists() or json.loads(finished.read_text(encoding="utf-8")).get("hips")


def test_a_new_run_folder_refused_for_bad_input_is_taken_away_again(tmp_path):
    settings = _settings(tmp_path)
    assert run_folder.claim("train", settings) is True
    run_folder.release(settings)
    assert not (tmp_path / "run").exists()
    assert run_folder.claim("train", settings) is True
    (tmp_path / "run" / "checkpoints").mkdir()  # the run got further: its work is kept
    run_folder.release(settings)
    assert (tmp_path / "run" / "run.json").exists()
