"""DDP under torchrun: two CPU processes (gloo), each on its slice of every batch, follow the same loss
trajectory as one process on whole batches; rank 0 alone validates and writes checkpoints."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ONFHAssistLib.jobs import child_env

import ddp_worker

WORKER = Path(ddp_worker.__file__)


def test_two_gloo_ranks_match_one_process_on_the_whole_batch(tmp_path):
    single = ddp_worker.train(tmp_path / "single")
    env = {**child_env(), "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(WORKER.parent), child_env().get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(WORKER), str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text(encoding="utf-8")) for r in (0, 1)]
    for rank in ranks:
        np.testing.assert_allclose(rank["train_loss"], single["train_loss"], rtol=1e-5, atol=1e-6)
        for got, want in zip(rank["weights"], single["weights"]):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        assert rank["best_epoch"] == single["best_epoch"]  # rank 0's validation decides for every rank
    assert single["train_loss"][-1] < single["train_loss"][0]  # it learns, so matching is not trivial
    np.testing.assert_allclose(ranks[0]["val_mse"], single["val_mse"], rtol=1e-5)
    assert ranks[1]["val_mse"] == [None] * ddp_worker.EPOCHS  # only rank 0 validates
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == \
        ["best.safetensors", "last.safetensors", "rng.json", "state.pt"]  # no temp files of a second writer left


def test_sharding_covers_every_sample_once_with_shares_summing_to_one():
    from ONFHAssistLib.training.distributed import Context, shards

    batches = [np.arange(s, s + n) for s, n in ((0, 7), (7, 1), (8, 1), (9, 1), (10, 3))]
    parts = [list(shards(batches, Context(rank=r, world=2))) for r in (0, 1)]
    seen = np.concatenate([p for rank in parts for p, _ in rank])
    assert sorted(seen) == list(range(9)) + [10, 11, 12]  # the unpaired single batch (9) is dropped by both
    for step in zip(*parts):
        assert sum(share for _, share in step) == pytest.approx(1.0)


def _torchrun(args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "ONFHAssistLib", *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_onfh_train_under_torchrun_reports_and_saves_once(tmp_path):
    from ONFHAssistLib.phantom.cohort import write_cohort

    data = write_cohort(tmp_path / "data", 2, seed=31, modality="mr_t1")
    env = {**child_env(), "OMP_NUM_THREADS": "1"}
    run = _torchrun(["train", "segmentation", "--data", str(data), "--out", str(tmp_path / "out"), "--epochs", "1",
                     "--device", "cpu", "--progress", "jsonl"], env)
    assert run.returncode == 0, run.stderr[-3000:]
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events].count("result") == 1  # rank 1 is silent
    assert [e.get("epoch") for e in events if e["event"] == "metric"] == [0]
    card = json.loads((tmp_path / "out" / "model" / "model.json").read_text(encoding="utf-8"))
    assert [h["epoch"] for h in card["history"]] == [0] and "val_dice_mean" in card["history"][0]
    assert not [p for p in (tmp_path / "out").rglob(".tmp-*")]

    refused = _torchrun(["cv", "survival", "--data", str(data), "--out", str(tmp_path / "cv")], env, timeout=120)
    assert refused.returncode != 0 and "only 'onfh train' runs under torchrun" in refused.stderr
