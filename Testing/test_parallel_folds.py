"""`onfh cv --parallel-folds N`: folds as child processes give the sequential table; a SIGKILLed cv run
(sequential or parallel) restarts without losing or redoing any finished (fold, model) result."""
import json
import time

import numpy as np
import pandas as pd
import psutil
import pytest

from ONFHAssistLib.cli import main
from ONFHAssistLib.jobs import Job, child_env, onfh_command
from ONFHAssistLib.phantom.cohort import write_cohort

MODELS = "tri-stream + SLE,CoxPH (grades)"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("pfolds") / "data", 14, seed=11, modality="mr_t1",
                        shape=(120, 90, 60), spacing=(3.0, 3.0, 3.0))


def _args(cohort, out, *extra):
    return ["cv", "survival", "--data", str(cohort), "--out", str(out), "--folds", "2", "--epochs", "2",
            "--models", MODELS, "--device", "cpu", *extra]


def test_parallel_folds_equal_the_sequential_run(cohort, tmp_path):
    assert main(_args(cohort, tmp_path / "seq", "--progress", "none")) == 0
    assert main(_args(cohort, tmp_path / "par", "--progress", "none", "--parallel-folds", "2")) == 0
    seq, par = (pd.read_csv(tmp_path / run / "per_fold.csv") for run in ("seq", "par"))
    assert list(seq.model) == list(par.model) and list(seq.fold) == list(par.fold) and len(seq) == 4
    numeric = [c for c in seq.columns if c not in ("fold", "model", "note")]
    np.testing.assert_allclose(seq[numeric].to_numpy(float), par[numeric].to_numpy(float), atol=2e-3)
    for path in sorted((tmp_path / "seq" / "folds").glob("*.json")):
        a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (path, tmp_path / "par" / "folds" / path.name))
        ra, rb = np.asarray(a["risk"]), np.asarray(b["risk"])  # seeded per fold; a Cox risk is defined up to a
        np.testing.assert_allclose(ra - ra.mean(), rb - rb.mean(), atol=1e-3)  # shift, and threads differ


def test_parallel_folds_misuse_is_one_line_exit_2(cohort, tmp_path, capsys):
    assert main(_args(cohort, tmp_path, "--parallel-folds", "0")) == 2
    assert main(["train", "survival", "--data", str(cohort), "--out", str(tmp_path), "--parallel-folds", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert not (tmp_path / "folds").exists()


def _results(folds):
    """Finished result files (an atomic write's hidden .tmp-* file of a killed writer is not one)."""
    return [p for p in folds.glob("*.json") if not p.name.startswith(".")]


def _sigkill_tree(pid: int) -> None:
    """SIGKILL a process and every process it started (the fold children), leaves first."""
    parent = psutil.Process(pid)
    for proc in parent.children(recursive=True)[::-1] + [parent]:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.mark.parametrize("parallel", ["1", "2"])
def test_sigkilled_cv_keeps_every_finished_fold(cohort, tmp_path, parallel):
    argv = onfh_command(_args(cohort, tmp_path, "--progress", "jsonl", "--parallel-folds", parallel))
    job = Job(argv, env=child_env()).start()
    deadline = time.monotonic() + 300
    folds = tmp_path / "folds"
    while job.poll() is None and time.monotonic() < deadline and not _results(folds):
        time.sleep(0.05)
    _sigkill_tree(job.process.pid)
    job.wait(timeout=30)
    kept = {p.name: p.read_bytes() for p in _results(folds)}
    stamps = {p.name: p.stat().st_mtime_ns for p in _results(folds)}
    assert kept, "the run was killed before any fold result existed"
    assert all(json.loads(text) for text in kept.values())  # every result file is whole
    rerun = Job(argv, env=child_env()).start()
    assert rerun.wait(timeout=600) == 0, rerun.error_message
    after = {p.name: p for p in _results(folds)}
    assert len(after) == 4 and (tmp_path / "table.json").exists()
    assert all(after[name].read_bytes() == text and after[name].stat().st_mtime_ns == stamps[name]
               for name, text in kept.items())  # finished results neither lost nor recomputed
