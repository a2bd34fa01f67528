"""Kaplan–Meier-based NRI and IPCW IDI: a censored toy worked by hand, the drop-censored statistics where
no hip is censored before t, an independent lifelines Kaplan–Meier on GBSG2, and the bootstrap."""
import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from sksurv.datasets import load_gbsg2
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.preprocessing import OneHotEncoder

from ONFHAssistLib.survival.horizon_stats import known_status, nri_idi
from ONFHAssistLib.survival.reclassification import km_nri, reclassification, with_bootstrap

# Ten hips, horizon t = 10. Up (new > old): hips 1, 2, 4, 6, 9; down: 3, 5, 7, 8, 10.
TOY_TIME = np.array([2, 4, 6, 8, 12, 15, 5, 20, 3, 11.0])
TOY_EVENT = np.array([1, 0, 1, 1, 0, 0, 0, 1, 1, 0])
TOY_NEW = np.array([0.6, 0.5, 0.3, 0.5, 0.2, 0.4, 0.2, 0.1, 0.7, 0.3])
TOY_OLD = np.array([0.4, 0.3, 0.4, 0.3, 0.3, 0.3, 0.4, 0.2, 0.5, 0.35])


def test_km_nri_and_ipcw_idi_on_a_censored_toy_by_hand():
    # KM, all hips: 2† 3† 4c 5c 6† 8† ... → 9/10 · 8/9 · 5/6 · 4/5 = 8/15 at t = 10.
    # KM, up (2† 3† 4c 8† 15c): 4/5 · 3/4 · 1/2 = 0.3.  KM, down (5c 6† 11c 12c 20†): 3/4.
    # P(up|event) = 0.7·0.5/(7/15) = 3/4, P(down|event) = 0.25·0.5/(7/15) = 15/56 → NRI_events = 27/56.
    # P(up|no event) = 0.3·0.5/(8/15) = 9/32, P(down|no event) = 0.75·0.5/(8/15) = 45/64 → NRI_nonevents = 27/64.
    result = reclassification(TOY_TIME, TOY_EVENT, TOY_OLD, TOY_NEW, 10.0)
    assert result["nri_events"] == pytest.approx(27 / 56)
    assert result["nri_nonevents"] == pytest.approx(27 / 64)
    assert result["nri"] == pytest.approx(27 / 56 + 27 / 64)
    # Censoring KM G: 4c (8 at risk) → 7/8, 5c (7 at risk) → 3/4. Collapses by t: hips 1 (T=2), 9 (3) weigh
    # 1/G(T−) = 1; hips 3 (6), 4 (8) weigh 4/3. Followed past t: 5, 6, 8, 10, all 1/G(10) = 4/3.
    # new: (0.6 + 0.7 + 4/3·(0.3 + 0.5)) / (14/3) = 7.1/14 vs 0.25; old: 5.5/14 vs 0.2875.
    assert result["idi"] == pytest.approx((7.1 / 14 - 0.25) - (5.5 / 14 - 0.2875))
    # Dropping the two hips censored before t gives other numbers (NRI 1.0, IDI 0.1625).
    naive = nri_idi(TOY_TIME, TOY_EVENT, TOY_OLD, TOY_NEW, 10.0)
    assert naive["nri"] == pytest.approx(1.0) and naive["idi"] == pytest.approx(0.1625)


def test_degenerate_horizons_give_nan():
    assert np.isnan(km_nri(TOY_TIME, TOY_EVENT, TOY_OLD, TOY_NEW, 1.0)["nri"])  # nobody collapsed by t
    assert np.isnan(reclassification(TOY_TIME, TOY_EVENT, TOY_OLD, TOY_NEW, 25.0)["idi"])  # nobody followed past t


@pytest.fixture(scope="module")
def gbsg2():
    """GBSG2 (686 women, time in days): predicted P(event by t) of a clinical Cox model (age, menopause,
    tumour size and grade) and of Cox on all eight covariates (adds nodes, receptors, hormone therapy)."""
    X, y = load_gbsg2()
    X = OneHotEncoder().fit_transform(X.assign(tgrade=X.tgrade.astype(object)))
    clinical = ["age", "menostat=Post", "tsize"] + [c for c in X if c.startswith("tgrade")]
    horizons = {months: months * 365.25 / 12 for months in (36, 60)}
    risks = {}
    for name, columns in (("old", clinical), ("new", list(X.columns))):
        curves = CoxPHSurvivalAnalysis().fit(X[columns], y).predict_survival_function(X[columns])
        risks[name] = {m: np.array([1.0 - f(t) for f in curves]) for m, t in horizons.items()}
    return y["time"], y["cens"].astype(int), risks, horizons


def test_equals_the_drop_censored_statistics_when_no_hip_is_censored_before_t(gbsg2):
    time, event, risks, horizons = gbsg2
    for months, t in horizons.items():
        known, _ = known_status(time, event, t)
        args = (time[known], event[known], risks["old"][months][known], risks["new"][months][known], t)
        ours, plain = reclassification(*args), nri_idi(*args)
        assert plain["left_out"] == 0 and plain["used"] > 300
        for key in ("nri", "nri_events", "nri_nonevents", "idi"):
            assert ours[key] == pytest.approx(plain[key], abs=1e-12), (months, key)


def _lifelines_nri(time, event, old, new, t):
    """Pencina 2011 written out again on lifelines' Kaplan–Meier."""
    def km(mask):
        return float(KaplanMeierFitter().fit(time[mask], event[mask]).survival_function_at_times(t).iloc[0])

    s, up, down = km(np.ones(len(time), bool)), new > old, new < old
    events = ((1 - km(up)) * up.mean() - (1 - km(down)) * down.mean()) / (1 - s)
    nonevents = (km(down) * down.mean() - km(up) * up.mean()) / s
    return events, nonevents


def test_gbsg2_matches_lifelines_and_dropping_censored_hips_overstates_nri(gbsg2):
    time, event, risks, horizons = gbsg2
    overstated = {}
    for months, t in horizons.items():
        old, new = risks["old"][months], risks["new"][months]
        ours = reclassification(time, event, old, new, t)
        events, nonevents = _lifelines_nri(time, event, old, new, t)
        assert ours["nri_events"] == pytest.approx(events, abs=1e-10)
        assert ours["nri_nonevents"] == pytest.approx(nonevents, abs=1e-10)
        overstated[months] = nri_idi(time, event, old, new, t)["nri"] - ours["nri"]
        assert ours["idi"] > 0  # nodes and receptors separate the groups further at both horizons
    # The direction: the drop-censored NRI is too high, more so at 60 months (more censored before t).
    assert 0.005 < overstated[36] < overstated[60]


def test_bootstrap_interval_is_seeded_and_covers_the_estimate():
    groups = np.array(["a", "a", "b", "c", "c", "d", "e", "f", "g", "h"])
    first = with_bootstrap(TOY_TIME, TOY_EVENT, TOY_OLD, TOY_NEW, 10.0, groups=groups, n_boot=200, seed=3)
    again = with_bootstrap(TOY_TIME, TOY_EVENT, TOY_OLD, TOY_NEW, 10.0, groups=groups, n_boot=200, seed=3)
    assert first == again and first["bootstrap"]["unit"] == "patient"
    assert 150 <= first["bootstrap"]["resamples"] <= 200  # resamples without a collapse by t are skipped
    for key in ("nri", "nri_events", "nri_nonevents", "idi"):
        assert first[key]["low"] < first[key]["estimate"] < first[key]["high"]
    assert first["nri"]["estimate"] == pytest.approx(27 / 56 + 27 / 64)


def test_cv_table_reports_sle_nri_idi_with_intervals(tmp_path, monkeypatch):
    """The `cv survival` writers: NRI/IDI of SLE on out-of-fold probabilities pooled back into hip order."""
    import json

    import pandas as pd

    from ONFHAssistLib.training import survival_recipe as recipe
    from ONFHAssistLib.training.survival_data import HipSet

    monkeypatch.setattr(recipe, "NRI_BOOTSTRAP", 200)
    for figure in ("calibration_png", "decision_curve_png"):  # figures: test_survival_cv, test_survival_figures
        monkeypatch.setattr(recipe, figure, lambda *args, **kwargs: None)

    rng = np.random.default_rng(5)
    n = 60
    time = rng.uniform(1, 120, n).round(1)
    event = (rng.random(n) < 0.6).astype(int)
    patients = np.array([f"P{i // 2}" for i in range(n)])
    hips = HipSet(pd.DataFrame({"patient_id": patients}), np.zeros((n, 1, 1, 1, 1), np.float32),
                  np.zeros((n, 1, 1, 1), np.uint8), np.zeros((n, 5), np.int64), time, event)
    truth = {h: np.clip(1.0 - np.exp(-h / time) + rng.normal(0, 0.1, n), 0.01, 0.99) for h in recipe.HORIZONS}
    folds = [rng.permutation(np.flatnonzero(np.arange(n) % 2 == k)) for k in (0, 1)]  # unsorted, as CV gives them
    horizon = {}
    for name in ("tri-stream + SLE", "tri-stream, no SLE"):
        for h in recipe.HORIZONS:
            p = truth[h] if name == "tri-stream + SLE" else rng.uniform(0.1, 0.9, n)
            horizon[(name, h)] = [(idx, p[idx]) for idx in folds]
    summary = recipe.write_horizon_outputs(hips, horizon, tmp_path)
    saved = json.loads((tmp_path / "horizon.json").read_text(encoding="utf-8"))
    for h in recipe.HORIZONS:
        old = horizon[("tri-stream, no SLE", h)]
        old_p = np.empty(n)
        for idx, p in old:
            old_p[idx] = p
        expected = reclassification(time, event, old_p, truth[h], h)
        got = saved["nri_idi_sle_vs_no_sle"][str(h)]
        for key in ("nri", "nri_events", "nri_nonevents", "idi"):
            assert got[key]["estimate"] == pytest.approx(expected[key])
            assert got[key]["low"] <= got[key]["estimate"] <= got[key]["high"]
        assert got["bootstrap"]["unit"] == "patient" and got["bootstrap"]["resamples"] > 180
        assert got["idi"]["low"] > 0  # the informative model separates collapsed from collapse-free hips
    per_fold = pd.DataFrame({"fold": [0, 1], "model": ["tri-stream + SLE"] * 2, "harrell_c": [0.7, 0.8]})
    recipe.write_table(per_fold, tmp_path, n, int(event.sum()), 30, summary["nri_idi_sle_vs_no_sle"])
    text = (tmp_path / "table.md").read_text(encoding="utf-8")
    idi36 = saved["nri_idi_sle_vs_no_sle"]["36"]["idi"]
    assert "| 36 months |" in text and f"{idi36['estimate']:+.3f} ({idi36['low']:+.3f} to {idi36['high']:+.3f})" in text
