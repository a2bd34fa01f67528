"""Seed 000's Table 1 columns (AUC at 6/12/36/60/120 months, iAUC over 12–120 months) and the paired SLE
comparison, against scikit-survival called directly and hand-built cases."""
from types import SimpleNamespace

import numpy as np
import pytest
from ONFHAssistLib.training import survival_paired as paired
from ONFHAssistLib.training import survival_recipe as recipe
from sksurv.metrics import concordance_index_censored, cumulative_dynamic_auc
from sksurv.util import Surv


def _outcomes(n, rng, scale=40.0):
    time = np.round(rng.exponential(scale, n) + 1, 1)
    return SimpleNamespace(time=time, event=(rng.random(n) < 0.6).astype(int))


def test_auc_columns_are_scikit_survivals_and_null_where_undefined():
    rng = np.random.default_rng(1)
    train, test = _outcomes(80, rng), _outcomes(25, rng)
    test.time[:3], test.event[:3] = [4.0, 8.0, 200.0], [1, 1, 0]  # a collapse before 6 months; a long follow-up
    train.time[0] = 300.0
    risk = -test.time + rng.normal(0, 15, 25)
    got = recipe._metrics(train, test, risk)
    y_train = Surv.from_arrays(train.event.astype(bool), train.time)
    y_test = Surv.from_arrays(test.event.astype(bool), test.time)
    for m in recipe.AUC_MONTHS:
        expected = cumulative_dynamic_auc(y_train, y_test, risk, [m])[0][0]
        assert got[f"auc{m}"] == pytest.approx(expected), m
    months = [m for m in range(12, 121, 12)]
    assert got["iauc"] == pytest.approx(cumulative_dynamic_auc(y_train, y_test, risk, months)[1])
    # no collapse by 6 months and follow-up ending before 120: both null, each with its reason
    test.event[:2] = 0
    test.time[2] = 100.0
    got = recipe._metrics(train, test, risk)
    assert got["auc6"] is None and "no collapse by" in got["undefined"]["auc6"]
    assert got["auc120"] is None and "beyond the fold's shared follow-up" in got["undefined"]["auc120"]
    assert got["auc12"] is not None and got["iauc"] is not None  # the iAUC grid is cut at the follow-up


def _fold(rng, n_patients, old_risk, new_risk):
    patients = np.repeat([f"P{i}" for i in range(n_patients)], 2)
    test = _outcomes(2 * n_patients, rng)
    train = _outcomes(60, rng)
    return paired.PairedFold(train.time, train.event, test.time, test.event, patients,
                             {"risk": old_risk(test)}, {"risk": new_risk(test)})


def _harrell_only(fold, result, idx):
    time, event = fold.test_time[idx], fold.test_event[idx].astype(bool)
    return {"harrell_c": concordance_index_censored(event, time, np.asarray(result["risk"])[idx])[0]}


def test_paired_difference_is_the_fold_mean_and_its_interval_decides():
    rng = np.random.default_rng(2)
    folds = [_fold(rng, 12, lambda t: rng.normal(size=len(t.time)), lambda t: -t.time) for _ in range(3)]
    result = paired.compare(folds, _harrell_only, ["harrell_c"], 200, 0)["harrell_c"]
    every = np.arange(24)
    by_hand = np.mean([_harrell_only(f, f.new, every)["harrell_c"] - _harrell_only(f, f.old, every)["harrell_c"]
                       for f in folds])
    assert result["estimate"] == pytest.approx(by_hand)
    assert 0 < result["low"] <= result["estimate"] <= result["high"] and result["conclusion"] == "better"
    same = [paired.PairedFold(f.train_time, f.train_event, f.test_time, f.test_event, f.patients, f.old, f.old)
            for f in folds]
    result = paired.compare(same, _harrell_only, ["harrell_c"], 50, 0)["harrell_c"]
    assert result["estimate"] == result["low"] == result["high"] == 0.0
    assert result["conclusion"].startswith("no difference shown")
    assert paired._conclusion("ibs", 0.01, 0.03) == "worse" and paired._conclusion("ibs", -0.03, -0.01) == "better"


def test_bootstrap_keeps_a_patients_hips_together():
    patients = np.array(["A", "A", "B", "C", "C", "C"])
    idx = paired._resample(patients, np.random.default_rng(0))
    for p in "ABC":
        drawn = int((patients[idx] == p).sum())
        assert drawn % int((patients == p).sum()) == 0


def test_paired_rows_scored_as_the_table_scores_them():
    """With idx = every test hip, the bootstrap's score of a fold is the fold's own metrics (IBS included)."""
    rng = np.random.default_rng(4)
    train, test = _outcomes(70, rng), _outcomes(20, rng)
    train_risk, risk = rng.normal(size=70), -test.time / 40 + rng.normal(0, 0.5, 20)
    scored = {**recipe._metrics(train, test, risk), **recipe._horizon_predictions(train, test, train_risk, risk)}
    fold = paired.PairedFold(train.time, train.event, test.time, test.event, np.arange(20).astype(str), {}, {})
    again = recipe._paired_score(fold, {"risk": risk.tolist(), **scored}, np.arange(20))
    for metric in recipe.METRICS:
        assert again[metric] == pytest.approx(scored[metric]) if scored[metric] is not None else again[metric] is None
