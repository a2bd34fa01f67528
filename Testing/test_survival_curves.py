"""Breslow survival curves agree with lifelines' Cox model on the rossi data (ties included)."""
import numpy as np
import pytest
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi

from ONFHAssistLib.survival.curves import BreslowBaseline


def test_survival_matches_lifelines_predictions():
    rossi = load_rossi()
    fitter = CoxPHFitter().fit(rossi, "week", "arrest")
    covariates = rossi.drop(columns=["week", "arrest"])
    risk = (covariates @ fitter.params_).to_numpy()
    baseline = BreslowBaseline.fit(risk, rossi.week, rossi.arrest)
    weeks = [5, 13, 26, 39, 52]  # event weeks: lifelines interpolates between them, Breslow steps
    expected = fitter.predict_survival_function(covariates.iloc[:6], times=weeks).to_numpy().T
    ours = np.array([baseline.survival(r, weeks) for r in risk[:6]])
    assert np.allclose(ours, expected, atol=1e-6)


def test_probabilities_groups_and_round_trip():
    baseline = BreslowBaseline.fit([0.0, 1.0, 2.0, 3.0], [10, 20, 30, 40], [1, 1, 0, 1])
    p = baseline.collapse_probability(2.5)
    assert 0.0 <= p["12"] <= p["36"] <= p["60"] <= 1.0
    assert baseline.group(2.5) == "high" and baseline.group(0.5) == "low"
    assert BreslowBaseline(**baseline.to_json()).survival(1.0, [25]) == pytest.approx(baseline.survival(1.0, [25]))
