"""`make models` (`training.shipped.build`) with tiny cohorts and a recording trainer: every task is trained on
the classic cohort, then the localiser, SRANet (twice), segmentation and staging are fine-tuned from the task's
model so far (four of those runs on merged realistic (+ classic) cohorts that `dataset.validate` accepts), the
localiser is pooled with its step-1 model, and the store receives each task's last model."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from ONFHAssistLib import dataset
from ONFHAssistLib.errors import InputError
from ONFHAssistLib.phantom import cohort
from ONFHAssistLib.training import build_clock, shipped


class Entry:
    """What `build` reads of a store entry (the recording trainer writes no weights)."""

    def __init__(self, folder):
        self.folder, self.version = Path(folder), "1.0.0"


class RecordingTrainer:
    """Stands in for the training recipes only: writes a model folder naming what it was given."""

    def __init__(self):
        self.runs = []

    def __call__(self, task):
        return self

    def train(self, settings, reporter):
        folder = Path(settings.out) / "model"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.json").write_text(json.dumps({"task": settings.task, "init": settings.init,
                                                       "data": str(settings.data)}))
        self.runs.append(settings)
        return {"model": str(folder)}


def test_build_fine_tunes_on_merged_realistic_cohorts(tmp_path, monkeypatch):
    drawn = []

    def tiny_cohort(out, patients, seed, modality="mr_t1", **kwargs):
        drawn.append(seed)
        return cohort.write_cohort(out, patients, seed, modality, shape=(40, 32, 24), spacing=[3.0], **kwargs)

    trainer = RecordingTrainer()
    pooled = []

    def record_pooling(folder, sources, card):
        pooled.append(([e.folder for e in sources], card))
        Path(folder).mkdir(parents=True)
        (Path(folder) / "model.json").write_text(json.dumps({"task": "localizer", "init": "pooled", "data": None}))
        return Entry(folder)

    monkeypatch.setattr(shipped, "save_pooled", record_pooling)
    monkeypatch.setattr(shipped.modelstore, "read_entry", Entry)
    monkeypatch.setattr(shipped, "write_cohort", tiny_cohort)
    monkeypatch.setattr(shipped, "recipe", trainer)
    realistic = shipped.COHORTS["realistic"][0][2]
    monkeypatch.setattr(shipped, "COHORTS", {"classic": ((101, 1, {}),), "classic-105": ((105, 1, {}),),
                                             "realistic": ((1905, 1, realistic), (1906, 2, realistic))})
    store = tmp_path / "store"
    store.mkdir()
    built = shipped.build(store, tmp_path / "work", "cpu", None,
                          ("localizer", "segmentation", "staging", "sranet", "survival"))

    assert [p.name for p in built] == ["onfh-localizer", "onfh-segmentation", "onfh-staging", "onfh-sranet",
                                       "onfh-survival"]
    first = {s.task: s for s in trainer.runs[:4]}  # step 1: every task but survival, on the classic cohort
    assert [s.task for s in trainer.runs[4:]] == ["localizer", "sranet", "segmentation", "staging", "sranet",
                                                  "survival"]
    sranet_105, sranet_last = trainer.runs[5], trainer.runs[8]
    assert sranet_105.data == tmp_path / "work" / "cohort-105"
    assert sranet_105.init == str(Path(first["sranet"].out) / "model")
    assert sranet_last.init == str(Path(sranet_105.out) / "model") and sranet_last.data == trainer.runs[7].data
    first["sranet"] = sranet_105  # the last fine-tune of a task starts from the one before it
    tuned = {s.task: s for s in trainer.runs[4:9]}
    survival = trainer.runs[9]  # trained once, from scratch (its recipe has no --init), on realistic + classic
    assert survival.init is None and survival.seed == 1 and survival.preset == "cpu"
    assert survival.data == tuned["staging"].data == shipped.retrain_cohort(tmp_path / "work", "survival")
    # the shipped localiser pools the step-1 model with its fine-tune, in that order
    assert pooled == [([Path(first["localizer"].out) / "model", Path(tuned["localizer"].out) / "model"],
                       {"name": "onfh-localizer", "version": "1.0.0"})]
    assert json.loads((store / "onfh-localizer" / "model.json").read_text())["init"] == "pooled"
    localizer = tuned.pop("localizer")
    assert localizer.init == str(Path(first["localizer"].out) / "model")
    assert localizer.data == tuned["staging"].data  # realistic + classic
    assert {s.data for s in trainer.runs[:4]} == {tmp_path / "work" / "cohort-101"}
    for task, settings in tuned.items():
        assert settings.init == str(Path(first[task].out) / "model")
        card = json.loads((store / f"onfh-{task}" / "model.json").read_text())
        assert card["init"] == settings.init and card["data"] == str(settings.data)
    assert json.loads((store / "onfh-survival" / "model.json").read_text())["init"] is None
    assert tuned["staging"].system == "arco" and tuned["segmentation"].necrosis_weight == 1.0

    assert realistic["generator"] == "realistic" and realistic["synth_share"] > 0
    for settings, seeds in ((tuned["segmentation"], [1905, 1906]), (tuned["staging"], [1905, 1906, 101])):
        report = dataset.validate(settings.data)
        assert not report.errors, report.errors
        meta = json.loads((Path(settings.data) / "dataset.json").read_text())
        assert meta["seed"] == seeds and meta["anatomy"] == ("realistic" if 101 not in seeds else "realistic+classic")
        hips = pd.read_csv(Path(settings.data) / "hips.csv")
        assert len(hips) == 2 * meta["patients"] == 2 * (3 + (101 in seeds))
        assert len(list((Path(settings.data) / "images").glob("*.nii.gz"))) == meta["patients"]
    assert sorted(drawn) == [101, 105, 1905, 1906]  # each cohort drawn once, though fine-tunes share them

    times = json.loads((tmp_path / "work" / "build-times.json").read_text())
    assert list(times["steps"]) == [
        "draw cohort-101", *(f"step 1: train {t}" for t in ("localizer", "segmentation", "staging", "sranet")),
        "draw cohort-1905-realistic", "draw cohort-1906-realistic", "step 2: fine-tune 1 localizer",
        "draw cohort-105", "step 2: fine-tune 2 sranet", "step 2: fine-tune 3 segmentation",
        "step 2: fine-tune 4 staging", "step 2: fine-tune 5 sranet", "step 2: train survival"]
    assert times["total_s"] == pytest.approx(sum(times["steps"].values()), abs=0.2)

    shipped.build(store, tmp_path / "work", "cpu", None, ("segmentation",))
    assert sorted(drawn) == [101, 105, 1905, 1906]  # a second build reuses the cohorts
    again = json.loads((tmp_path / "work" / "build-times.json").read_text())["steps"]
    assert again["draw cohort-101"] == times["steps"]["draw cohort-101"]  # nothing drawn, nothing added


def test_build_clock_adds_each_run_to_the_step_it_spent_it_in(tmp_path, monkeypatch):
    """A build that spans runs: the step's seconds add up across them, and the summary gives the total."""
    ticks = iter([0.0, 300.0, 1000.0, 1120.0, 2000.0, 2030.0])
    monkeypatch.setattr(build_clock.time, "perf_counter", lambda: next(ticks))
    with build_clock.BuildClock(tmp_path).step("step 1: train localizer"):
        pass
    resumed = build_clock.BuildClock(tmp_path)
    with resumed.step("step 1: train localizer"):
        pass
    with pytest.raises(KeyboardInterrupt), resumed.step("draw cohort-105"):
        raise KeyboardInterrupt  # a killed step keeps the time it ran
    saved = json.loads((tmp_path / "build-times.json").read_text())
    assert saved["steps"] == {"step 1: train localizer": 420.0, "draw cohort-105": 30.0} and saved["total_s"] == 450.0
    assert resumed.summary().splitlines()[-1].split()[:5] == ["total", "7.5", "min", "(0.12", "h"]


def test_a_cohort_gets_hips_csv_last(tmp_path, monkeypatch):
    """`build` takes a cohort folder with hips.csv as finished, so `write_cohort` writes it after everything else."""
    seen = {}
    real_write_table = cohort.write_table

    def recording_write_table(frame, path):
        seen["dataset.json"] = (Path(path).parent / "dataset.json").is_file()
        real_write_table(frame, path)

    monkeypatch.setattr(cohort, "write_table", recording_write_table)
    cohort.write_cohort(tmp_path / "c", patients=1, seed=3, shape=(40, 32, 24), spacing=(4.0, 4.0, 4.0))
    assert seen == {"dataset.json": True} and (tmp_path / "c" / "hips.csv").is_file()


def test_a_build_times_file_that_is_not_one_stops_the_build_with_one_sentence(tmp_path):
    (tmp_path / "build-times.json").write_text('{"steps": [1, 2]}')
    with pytest.raises(InputError, match="is not a build-times file"):
        build_clock.BuildClock(tmp_path)
