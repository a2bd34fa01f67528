"""Small cohorts are a first-class case (issue 24): what a fold can support is checked before training, an
undefined metric is null with its reason, and a network that cannot validate trains for fixed epochs."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from ONFHAssistLib.cli import main
from ONFHAssistLib.dataset import patient_folds
from ONFHAssistLib.errors import InputError
from ONFHAssistLib.phantom.cohort import write_cohort
from ONFHAssistLib.survival import stats
from ONFHAssistLib.training import cv_notes, survival_plan
from ONFHAssistLib.training.engine import Trainer
from ONFHAssistLib.training.survival_recipe import METRICS, MODEL_IDS, chosen_models
from sksurv.exceptions import NoComparablePairException
from sksurv.metrics import concordance_index_censored


def test_comparable_pairs_are_scikit_survivals():
    """The count that decides whether a C-index exists is scikit-survival's own (concordant + discordant +
    tied-risk pairs), ties in time included."""
    rng = np.random.default_rng(4)
    for _ in range(20):
        time = rng.integers(1, 8, 12).astype(float)  # many tied times
        event = rng.integers(0, 2, 12)
        risk = rng.normal(size=12)
        try:
            _, con, dis, tied_risk, _ = concordance_index_censored(event.astype(bool), time, risk)
            expected = con + dis + tied_risk
        except NoComparablePairException:
            expected = 0
        assert stats.comparable_pairs(time, event) == expected


def test_c_indices_and_auc_are_none_where_undefined():
    # the only collapse is the last time: scikit-survival has no pair to compare and raises
    time, event, risk = np.array([5.0, 9.0, 12.0]), np.array([0, 0, 1]), np.array([0.1, 0.2, 0.3])
    with pytest.raises(NoComparablePairException):
        concordance_index_censored(event.astype(bool), time, risk)
    assert stats.harrell_c(time, event, risk) is None
    assert stats.harrell_c(time, np.zeros(3), risk) is None
    train_time, train_event = np.array([3.0, 6.0, 8.0, 20.0]), np.array([1, 1, 0, 0])
    # a test collapse at 7 months lies after the last training collapse (τ = 6): Uno's C has no weighted pair
    assert stats.uno_c(train_time, train_event, np.array([7.0, 10.0]), np.array([1, 0]), [1.0, 0.0]) is None
    assert 0.0 <= stats.uno_c(train_time, train_event, np.array([4.0, 10.0]), np.array([1, 0]), [1.0, 0.0]) <= 1.0
    # no collapse by 4 months among the test hips: AUC(4) has no case
    assert stats.auc_undefined_at(train_time, np.array([5.0, 10.0]), np.array([1, 0]), [4.0, 7.0]) == [4.0]
    assert stats.time_dependent_auc(train_time, train_event, np.array([5.0, 10.0]), np.array([1, 0]), [1, 0],
                                    [4.0, 7.0]) == (None, None)


def _table(times, events, hips_per_patient=1):
    n = len(times)
    patients = [f"P{i // hips_per_patient:02d}" for i in range(n)]
    return pd.DataFrame({"patient_id": patients, "event": [str(e) for e in events]}), np.asarray(times, float), \
        np.asarray(events, int)


def test_plan_keeps_the_folds_a_cohort_supports():
    # early collapses, late censoring: every fold can rank and train
    table, time, event = _table([10, 12, 14, 50, 60, 70, 80, 90, 100], [1, 1, 1, 0, 0, 0, 0, 0, 0])
    plan = survival_plan.plan_folds(table, time, event, 3, seed=0)
    assert plan.folds == 3 and plan.notes == []
    assert [c["collapses"] for c in plan.counts] == [1, 1, 1] and all(c["train_collapses"] == 2 for c in plan.counts)
    # hand count of each fold's comparable pairs: its collapse against every test hip followed longer
    which = np.array([plan.fold_of[p] for p in table.patient_id])
    for c in plan.counts:
        t, e = time[which == c["fold"]], event[which == c["fold"]]
        assert c["pairs"] == sum(int((t > ti).sum()) for ti, ei in zip(t, e) if ei)


def test_plan_uses_fewer_folds_and_says_why_or_refuses_naming_the_numbers():
    # four collapses, two of them the longest follow-ups: whichever fold holds only a late collapse cannot rank
    table, time, event = _table([10, 15, 20, 30, 40, 50, 60, 70, 200, 210], [1, 1, 0, 0, 0, 0, 0, 0, 1, 1])
    for requested in (3, 4, 5):
        plan = survival_plan.plan_folds(table, time, event, requested, seed=1)
        assert all(c["pairs"] > 0 and c["train_collapses"] >= 2 for c in plan.counts)
        for k in range(plan.folds + 1, requested + 1):  # every larger split fails a check: fold_counts says which
            counts = survival_plan.fold_counts(time, event, table.patient_id, patient_folds(table, k, 1), k)
            assert any(c["pairs"] == 0 or c["train_collapses"] < 2 for c in counts)
        assert (plan.notes == []) == (plan.folds == requested)
        if plan.notes:
            assert plan.notes[0].startswith(f"{plan.folds} folds instead of the {requested} asked for: with {requested}")
    # 2 collapses among 11 hips of 8 patients (the 8-patient cohort): 2 folds leave 1 collapse to train on
    table, time, event = _table(range(1, 12), [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    table["patient_id"] = [f"P{min(i, 7)}" for i in range(11)]
    with pytest.raises(InputError, match=r"11 ONFH hips of 8 patients with 2 collapse\(s\) cannot be cross-validated: "
                                         r"even with 2 folds fold \d leaves 1 collapse\(s\) to train on"):
        survival_plan.plan_folds(table, time, event, 3, seed=0)


def test_selection_split_needs_enough_pairs():
    rng = np.random.default_rng(0)
    time, event = rng.uniform(1, 100, 80), rng.integers(0, 2, 80)
    patients = np.array([f"P{i // 2}" for i in range(80)])  # 40 patients
    train, val, rule = survival_plan.selection_split(time, event, patients, seed=3)
    held = set(np.random.default_rng(3).permutation(np.unique(patients))[:8])  # one patient in five, as before
    assert set(patients[val]) == held and len(train) + len(val) == 80 and rule.startswith("checkpoint chosen")
    assert stats.comparable_pairs(time[val], event[val]) >= survival_plan.MIN_SELECTION_PAIRS
    train, val, rule = survival_plan.selection_split(time[:12], event[:12], patients[:12], seed=3)
    assert val is None and list(train) == list(range(12)) and rule.startswith("no selection split: 1 of 6 patients")


def _tiny_fit(tmp_path, validate, epochs=6, patience=2):
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 2), torch.randn(16, 1)
    trainer = Trainer(model, opt, lambda net, _: ((net(x) - y) ** 2).mean(), validate, "val_c", "max",
                      tmp_path, patience=patience)
    fit = trainer.fit(epochs, lambda epoch: [0])
    return model, fit


def test_engine_keeps_the_last_epoch_when_it_cannot_validate(tmp_path):
    """No validation, or a metric undefined at every epoch: every epoch runs (no early stop on 'no improvement')
    and the last weights are kept, and the fit says so."""
    _, fit = _tiny_fit(tmp_path / "none", None)
    assert fit.epochs_run == 6 and fit.best_epoch == 5 and fit.best_metric is None
    assert fit.selection == "no validation: the last of 6 epochs is kept"
    last = torch.load(tmp_path / "none" / "state.pt", weights_only=True)["epoch"]
    assert last == 5
    _, fit = _tiny_fit(tmp_path / "nan", lambda net: {"val_c": None})
    assert fit.epochs_run == 6 and fit.best_epoch == 5 and fit.best_metric is None
    assert fit.selection == "val_c was undefined at every epoch: the last of 6 epochs is kept"
    # a defined metric still selects and stops early
    scores = iter([0.6, 0.7, 0.5, 0.5, 0.5, 0.5])
    _, fit = _tiny_fit(tmp_path / "c", lambda net: {"val_c": next(scores)})
    assert fit.best_epoch == 1 and fit.best_metric == 0.7 and fit.epochs_run == 4
    assert fit.selection == "best val_c (epoch 2 of 4)"


def test_footnotes_group_folds_and_rows():
    wanted = ["tri-stream + SLE", "CoxPH (grades)"]
    results = [{"fold": 0, "model": m, "undefined": {"uno_c": "no pair", "iauc": "no pair"}} for m in wanted]
    results += [{"fold": 1, "model": "tri-stream + SLE", "selection": "no selection split: x; last kept"},
                {"fold": 1, "model": "CoxPH (grades)", "undefined": {"ibs": "short"}}]
    assert cv_notes.footnotes(results, wanted) == [
        "fold 1: uno_c, iauc undefined for every model: no pair.",
        "fold 2: ibs undefined for CoxPH (grades): short.",
        "fold 2, tri-stream + SLE: no selection split: x; last kept."]


def test_models_by_stable_id():
    # rows come in Table 1 order (seed 000's rows first), whatever order --models names them in
    assert chosen_models("tri-stream-no-sle,cox-grades") == ["CoxPH (grades)", "tri-stream, no SLE"]
    assert chosen_models("all") == list(MODEL_IDS.values())
    assert chosen_models("all").index("DLRC nomogram") > chosen_models("all").index("tri-stream + SLE")
    with pytest.raises(InputError, match=r"'cox-grade' is not a model id \(did you mean 'cox-grades'\?\); use all, "
                                         r"every-combination or some of: cox-grades, radiomics-svm, deepmts"):
        chosen_models("cox-grade")


@pytest.fixture(scope="module")
def cohort20(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("small") / "c20", 20, seed=11, modality="mr_t1",
                        shape=(120, 90, 60), spacing=(3.0, 3.0, 3.0))


def _first_patients(cohort, n, folder):
    """The same phantom's first n patients (a seeded cohort draws patients in order: as if generated with n)."""
    shutil.copytree(cohort, folder, ignore=shutil.ignore_patterns("hips.csv"))
    table = pd.read_csv(cohort / "hips.csv", dtype=str, keep_default_na=False)
    keep = table.patient_id.isin(list(dict.fromkeys(table.patient_id))[:n])
    table[keep].to_csv(folder / "hips.csv", index=False)
    return folder


def _cv(data, out, *extra):
    return main(["cv", "survival", "--data", str(data), "--out", str(out), "--folds", "3", "--epochs", "1",
                 "--progress", "none", "--device", "cpu", *extra])


@pytest.mark.parametrize("patients", [12, 20])
def test_cv_on_a_small_cohort_finishes_with_null_where_undefined(cohort20, tmp_path, patients, monkeypatch):
    """12 and 20 patients, 3 folds (the issue's pilots): a table, null where a fold cannot define a metric, the
    reason under the table; a baseline whose fit fails on a fold (LASSO-Cox's ArithmeticError on 20 patients)
    is undefined there, not a crash. One network and the oracle Cox keep it fast (every row ran by hand)."""
    from ONFHAssistLib.training import survival_baselines

    data = cohort20 if patients == 20 else _first_patients(cohort20, patients, tmp_path / "data")
    calls, real = [], survival_baselines.baseline_risk

    def second_fit_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ArithmeticError("Numerical error, because weights are too large.")
        return real(*args, **kwargs)

    monkeypatch.setattr(survival_baselines, "baseline_risk", second_fit_fails)
    assert _cv(data, tmp_path / "cv", "--models", "tri-stream,cox-oracle") == 0
    table = json.loads((tmp_path / "cv" / "table.json").read_text(encoding="utf-8"))
    markdown = (tmp_path / "cv" / "table.md").read_text(encoding="utf-8")
    assert set(table) == {"tri-stream + SLE", "oracle CoxPH (true hazard covariates)"}
    results = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((tmp_path / "cv" / "folds").glob("*.json"))]
    assert len(results) == 6
    for name, row in table.items():
        for metric, cell in row.items():
            values = [r[metric] for r in results if r["model"] == name and r[metric] is not None]
            if values:  # the mean is over the folds that define the metric
                assert cell["mean"] == pytest.approx(np.mean(values))
            else:  # no fold defines it: null in JSON, n/a in the table, and the reason under it
                assert cell["mean"] is None and "n/a" in markdown
    for r in results:
        for metric, why in r.get("undefined", {}).items():
            assert r[metric] is None and metric in markdown and why in markdown
    failed = next(r for r in results if r["model"].startswith("oracle") and r["fold"] == 1)
    assert all(failed[m] is None for m in METRICS)
    assert (f"fold 2: {', '.join(METRICS)} undefined for oracle CoxPH (true hazard covariates): the fit failed "
            "on this fold (ArithmeticError: Numerical error") in markdown
    network = [r for r in results if r["model"] == "tri-stream + SLE"]
    assert all(r["selection"].startswith("no selection split") for r in network)  # 12-20 patients cannot validate
    assert "Notes (a mean is over the folds that define it" in markdown


def test_cv_on_eight_patients_is_refused_naming_the_numbers(cohort20, tmp_path, capsys):
    data = _first_patients(cohort20, 8, tmp_path / "data")
    assert _cv(data, tmp_path / "cv") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: cv survival: 11 ONFH hips of 8 patients with 2 collapse(s) cannot be "
                          "cross-validated: even with 2 folds")
    assert not (tmp_path / "cv" / "folds").exists()  # refused before any training
    assert main(["dataset", "validate", str(data), "--folds", "3"]) == 0  # validate says so too (was "fine")
    assert "warning: cv survival: 11 ONFH hips of 8 patients with 2 collapse(s) cannot be cross-validated" in \
        capsys.readouterr().out


def test_cv_models_typo_is_refused(cohort20, tmp_path, capsys):
    assert _cv(cohort20, tmp_path / "cv", "--models", "tri-stream,no-sle") == 2
    err = capsys.readouterr().err
    assert "'no-sle' is not a model id" in err and "tri-stream-no-sle" in err


def test_one_patient_trains_without_validation(cohort20, tmp_path, caplog):
    """No folds asked for and one patient: no validation split (it used to be 'cannot make 1 folds from 1
    patients'); every hip trains, the last epoch is kept, and the log and the card say so."""
    data = _first_patients(cohort20, 1, tmp_path / "data")
    out = tmp_path / "seg"
    assert main(["train", "segmentation", "--data", str(data), "--out", str(out), "--epochs", "1",
                 "--progress", "none", "--device", "cpu"]) == 0
    card = json.loads((out / "model" / "model.json").read_text(encoding="utf-8"))
    assert card["trained_on"]["train_hips"] == 2 and card["trained_on"]["val_hips"] == 0
    assert card["selection"] == "no validation: the last of 1 epochs is kept"
    assert "holds one patient: no validation split" in caplog.text
    assert main(["train", "segmentation", "--data", str(data), "--out", str(tmp_path / "two"), "--folds", "2",
                 "--progress", "none"]) == 2  # asked for folds it cannot make: one sentence
