"""Rebuild the shipped demo models from scratch: fixed-seed phantom cohort, fixed-seed training.

`make models` runs this. The cohort mixes MR-T1 and CT; seeds 9000 and up are never used here,
so held-out evaluation cohorts can be drawn from them.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..phantom.cohort import write_cohort
from . import TrainSettings, recipe

TRAIN_SEED, TRAIN_PATIENTS = 101, 60
ORDER = ("localizer", "segmentation", "staging", "sranet", "survival")
# Per-task choices for the shipped models: ARCO staging (in the phantom ARCO = Ficat = JIC stage, so one
# network grades all three), and epoch counts that fit a CPU build.
OPTIONS = {"staging": dict(system="arco", epochs=35, lr=5e-4), "sranet": dict(epochs=16, lr=2e-4),
           "survival": dict(preset="cpu")}
SHIPPED_NAMES = {"staging": "onfh-staging-arco"}  # the others are onfh-<task>


def build(store: Path, work: Path, device: str, reporter, tasks=ORDER) -> list[Path]:
    """Generate the training cohort (once), train each task, copy each model folder into `store`."""
    data = work / f"cohort-{TRAIN_SEED}"
    if not (data / "hips.csv").exists():
        write_cohort(data, TRAIN_PATIENTS, TRAIN_SEED, "mixed", reporter=reporter)
    built = []
    for task in tasks:
        settings = TrainSettings(task=task, data=data, out=work / task, device=device, seed=0, name=SHIPPED_NAMES.get(task, f"onfh-{task}"),
                                 **OPTIONS.get(task, {}))
        result = recipe(task).train(settings, reporter)
        target = store / f"onfh-{task}"
        tmp = store / f".onfh-{task}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(result["model"], tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        built.append(target)
    return built
