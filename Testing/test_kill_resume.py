"""Crash-safe training: `onfh train` killed with SIGKILL at random moments resumes from its last finished
epoch, and the final history holds every epoch exactly once (at most the running epoch is lost per kill)."""
import json
import time

import numpy as np
import pytest

from ONFHAssistLib.jobs import Job, child_env, onfh_command
from ONFHAssistLib.phantom.cohort import write_cohort

EPOCHS = 4


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("killres") / "data", 2, seed=31, modality="mr_t1")


def _epochs_seen(events) -> list[int]:
    return [e["epoch"] for e in events if e.get("event") == "metric" and "epoch" in e]


def test_sigkill_at_random_moments_then_resume_loses_nothing_finished(cohort, tmp_path):
    argv = onfh_command(["train", "segmentation", "--data", str(cohort), "--out", str(tmp_path), "--epochs",
                         str(EPOCHS), "--lr", "3e-3", "--device", "cpu", "--progress", "jsonl"])
    rng = np.random.default_rng(7)
    kills, finished_before_kill = 0, []
    while True:
        job = Job(argv, env=child_env()).start()
        deadline = time.monotonic() + float(rng.uniform(3.0, 7.0))
        events = []
        while job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            events += job.drain()
        if job.poll() is None and kills < 2:
            job.process.kill()  # SIGKILL: no handler, no cleanup
            job.wait(timeout=30)
            kills += 1
            finished_before_kill.append(max(_epochs_seen(events + job.drain()), default=-1))
            continue
        assert job.wait(timeout=600) == 0, job.error_message
        resumed = _epochs_seen(events + job.drain())
        break
    assert kills >= 1
    history = json.loads((tmp_path / "model" / "model.json").read_text(encoding="utf-8"))["history"]
    assert [h["epoch"] for h in history] == list(range(EPOCHS))
    if resumed:  # the last run starts after the last epoch a killed run reported (or the one it saved, unreported)
        assert resumed[0] - max(finished_before_kill) in (1, 2)
