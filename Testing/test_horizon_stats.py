"""Calibration, decision curves, NRI and IDI at a horizon, against hand-computed values on data whose
status at t is fully known (Kaplan–Meier then equals the plain proportion)."""
import numpy as np
import pytest

from ONFHAssistLib.survival.horizon_stats import calibration, decision_curve, known_status, nri_idi

T = 36.0


def _uncensored(seed=0, n=400):
    """Predicted risks and outcomes drawn from them; everyone is followed past t or collapses before it."""
    rng = np.random.default_rng(seed)
    predicted = rng.uniform(0.05, 0.9, n)
    collapsed = rng.random(n) < predicted
    time = np.where(collapsed, rng.uniform(1, T, n), rng.uniform(T + 1, 120, n))
    return time, collapsed.astype(int), predicted


def test_calibration_bins_match_the_plain_proportions():
    time, event, predicted = _uncensored()
    table = calibration(time, event, predicted, T, bins=4)
    edges = np.quantile(predicted, [0, 0.25, 0.5, 0.75, 1])
    for b, row in table.iterrows():
        mask = (predicted >= edges[b]) & ((predicted < edges[b + 1]) | (b == 3))
        assert row.n == mask.sum()
        assert row.predicted == pytest.approx(predicted[mask].mean())
        assert row.observed == pytest.approx(((time <= T) & (event == 1))[mask].mean())
    assert np.abs(table.observed - table.predicted).max() < 0.12  # outcomes were drawn from these risks


def test_decision_curve_equals_the_binary_net_benefit_without_censoring():
    time, event, predicted = _uncensored(1)
    thresholds = [0.1, 0.3, 0.5]
    curve = decision_curve(time, event, predicted, T, thresholds)
    y = (time <= T) & (event == 1)
    for pt, row in zip(thresholds, curve.itertuples()):
        treat = predicted >= pt
        tp, fp = (treat & y).sum() / len(y), (treat & ~y).sum() / len(y)
        assert row.model == pytest.approx(tp - fp * pt / (1 - pt))
        assert row.treat_all == pytest.approx(y.mean() - (1 - y.mean()) * pt / (1 - pt))


def test_nri_and_idi_on_a_hand_worked_example():
    time = np.array([10.0, 20.0, 50.0, 60.0, 12.0])
    event = np.array([1, 1, 0, 0, 0])  # the last hip is censored before t: status unknown, left out
    old = np.array([0.2, 0.5, 0.3, 0.4, 0.9])
    new = np.array([0.6, 0.4, 0.1, 0.5, 0.1])
    result = nri_idi(time, event, old, new, T)
    # events: one up, one down → 0; non-events: one down, one up → 0
    assert result["nri"] == pytest.approx(0.0) and result["nri_events"] == pytest.approx(0.0)
    # IDI = (0.5 − 0.3) − (0.35 − 0.35)
    assert result["idi"] == pytest.approx(0.2)
    assert result["used"] == 4 and result["left_out"] == 1
    better = nri_idi(time, event, old, np.array([0.7, 0.8, 0.1, 0.2, 0.5]), T)
    assert better["nri"] == pytest.approx(2.0) and better["idi"] > 0


def test_known_status_and_degenerate_inputs():
    known, status = known_status([5, 40, 20], [1, 0, 0], T)
    assert known.tolist() == [True, True, False] and status.tolist() == [1, 0, 0]
    assert np.isnan(nri_idi([5, 6], [1, 1], [0.1, 0.2], [0.3, 0.4], T)["nri"])
