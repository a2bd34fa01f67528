"""Rebuild the shipped demo models from scratch: fixed-seed phantom cohorts, fixed-seed training.

`make models` runs this. Step 1 trains every task but survival on a classic-phantom cohort (MR-T1 and CT).
Step 2 fine-tunes the localiser on realistic + classic cohorts (and pools it with the step-1 one), SRANet on a
larger classic cohort, and segmentation, staging and SRANet on the realistic generator's cohorts (issue 19: what
the classic phantom teaches does not transfer to real anatomy), staging and SRANet with the classic cohort beside
them so that they keep their classic-phantom accuracy; survival is trained from scratch on realistic + classic.
Seeds 9000 and up are never used here, so held-out evaluation cohorts can be drawn from them.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd

from ..dataset import write_dataset_json, write_table
from ..models import store as modelstore
from ..models.localizer import save_pooled
from ..phantom.cohort import write_cohort
from . import TrainSettings, recipe
from .build_clock import BuildClock

ORDER = ("localizer", "segmentation", "staging", "sranet", "survival")
# Per-task choices for the shipped models: ARCO staging (in the phantom ARCO = Ficat = JIC stage, so one
# network grades all three), and epoch counts that fit a CPU build.
OPTIONS = {"staging": dict(system="arco", epochs=35, lr=5e-4), "sranet": dict(epochs=16, lr=2e-4),
           "survival": dict(preset="cpu")}
SHIPPED_NAMES = {"staging": "onfh-staging-arco"}  # the others are onfh-<task>

# The cohorts, each a list of (seed, patients, how to draw), all MR-T1 and CT alternating. The realistic ones
# give 25 % of scans SynthSeg-style random tissue contrasts, for robustness to contrasts no generator draws.
REALISTIC_DRAW = dict(generator="realistic", preset="segmentation", synth_share=0.25)
COHORTS = {"classic": ((101, 60, {}),), "classic-105": ((105, 100, {}),),
           "realistic": ((1905, 40, REALISTIC_DRAW), (1906, 60, REALISTIC_DRAW))}
TRAIN_COHORT = "classic"
# Step 2, in order: (task, cohorts, options); each starts from the task's model so far. The shipped localiser
# pools the step-1 one with its fine-tune (`models.localizer.CandidateEnsemble`): the fine-tune alone finds the
# realistic phantom's heads but loses real ones the step-1 model finds (README, *Real scans → Retraining*).
FINE_TUNES = (("localizer", ("realistic", "classic"), dict(epochs=5, lr=1e-3)),
              ("sranet", ("classic-105",), dict(epochs=8, lr=1e-4)),
              ("segmentation", ("realistic",), dict(epochs=12, lr=1e-3, necrosis_weight=1.0)),
              ("staging", ("realistic", "classic"), dict(system="arco", epochs=10, lr=3e-4)),
              ("sranet", ("realistic", "classic"), dict(epochs=4, lr=1e-4)))
# Retrained from scratch in step 2 instead of fine-tuned: the survival recipe has no --init (its grade term is
# warm-started inside it). Seed 1: seed 0's run ranked the development hips worse (README, *Retraining*).
RETRAINS = {"survival": (("realistic", "classic"), dict(preset="cpu", seed=1))}
# Patients are drawn in parallel (the same cohort for any count): one process a core, at most four, since a
# realistic patient takes about 2.5 GB while it is drawn.
DRAW_WORKERS = min(os.cpu_count() or 1, 4)


def build(store: Path, work: Path, device: str, reporter, tasks=ORDER) -> list[Path]:
    """Generate the cohorts (once), train each task and fine-tune it, copy each final model folder into `store`;
    each step's wall time goes to work/build-times.json (`build_clock`)."""
    clock = BuildClock(work)
    classic = _dataset(work, (TRAIN_COHORT,), reporter, clock)
    models = {task: _train(TrainSettings(task=task, data=classic, out=work / task, device=device, seed=0,
                                         name=SHIPPED_NAMES.get(task, f"onfh-{task}"), **OPTIONS.get(task, {})),
                           reporter, clock.step(f"step 1: train {task}"))
              for task in tasks if task not in RETRAINS}
    first = dict(models)
    for step, (task, cohorts, options) in enumerate(FINE_TUNES, start=1):
        if task in models:
            models[task] = _train(TrainSettings(task=task, data=_dataset(work, cohorts, reporter, clock),
                                                out=work / f"{task}-fine-tune{step}", device=device, seed=0,
                                                init=str(models[task]), name=SHIPPED_NAMES.get(task, f"onfh-{task}"),
                                                **options), reporter, clock.step(f"step 2: fine-tune {step} {task}"))
    for task in (t for t in tasks if t in RETRAINS):
        options = dict(RETRAINS[task][1])
        models[task] = _train(TrainSettings(task=task, data=retrain_cohort(work, task, reporter, clock),
                                            out=work / f"{task}-retrain", device=device, seed=options.pop("seed"),
                                            name=f"onfh-{task}", **options),
                              reporter, clock.step(f"step 2: train {task}"))
    if "localizer" in models:
        tuned = modelstore.read_entry(models["localizer"])
        models["localizer"] = save_pooled(work / "localizer-pooled", [modelstore.read_entry(first["localizer"]), tuned],
                                          {"name": "onfh-localizer", "version": tuned.version}).folder
    return [_install(store, task, models[task]) for task in tasks]


def retrain_cohort(work: Path, task: str, reporter=None, clock: BuildClock | None = None) -> Path:
    """The cohort a task in RETRAINS is trained on (generated under `work` when missing): also what its
    training reference (`Resources/make_survival_reference.py`) is computed on."""
    return _dataset(work, RETRAINS[task][0], reporter, clock or BuildClock(work))


def _train(settings: TrainSettings, reporter, timed) -> Path:
    with timed:
        return Path(recipe(settings.task).train(settings, reporter)["model"])


def _install(store: Path, task: str, model: Path) -> Path:
    """Replace store/onfh-<task> by the model folder through a temporary copy, so a failed copy leaves the old one."""
    target = store / f"onfh-{task}"
    tmp = store / f".onfh-{task}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model, tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _dataset(work: Path, cohorts: tuple[str, ...], reporter, clock: BuildClock) -> Path:
    """The folder holding the named cohorts (each generated once): the cohort's own folder when there is one,
    else a merged folder whose files are hard-linked where the disk allows."""
    sources = []
    for name in cohorts:
        for seed, patients, draw in COHORTS[name]:
            folder = work / f"cohort-{seed}" if not draw else work / f"cohort-{seed}-{draw['generator']}"
            if not (folder / "hips.csv").exists():
                with clock.step(f"draw {folder.name}"):
                    write_cohort(folder, patients, seed, "mixed", reporter=reporter, workers=DRAW_WORKERS, **draw)
            sources.append(folder)
    if len(sources) == 1:
        return sources[0]
    out = work / ("cohort-" + "+".join(cohorts))
    if (out / "hips.csv").exists():
        return out
    for sub in ("images", "labels"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for source in sources:
            for f in sorted((source / sub).glob("*.nii.gz")):
                if not (out / sub / f.name).exists():
                    _link_or_copy(f, out / sub / f.name)
    metas = [json.loads((s / "dataset.json").read_text(encoding="utf-8")) for s in sources]
    write_dataset_json(out, "phantom-" + "+".join(cohorts), "mixed",
                       {"generator": metas[0]["generator"],
                        "anatomy": "+".join(dict.fromkeys(m["anatomy"] for m in metas)),
                        "seed": [m["seed"] for m in metas], "patients": sum(m["patients"] for m in metas),
                        "synth_scans": [s for m in metas for s in m.get("synth_scans", [])]})
    write_table(pd.concat([pd.read_csv(s / "hips.csv") for s in sources], ignore_index=True), out / "hips.csv")
    return out


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
