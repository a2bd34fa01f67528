"""The training-cohort reference of the survival model (issue 23): the bootstrap interval of the collapse
probability against scikit-survival's Breslow estimator on every resample, its coverage on cohorts drawn from a
known Cox model, the percentile against scipy, and the shipped reference against the shipped model card."""
import json
import shutil

import numpy as np
import pytest
from scipy.stats import percentileofscore
from sksurv.linear_model.coxph import BreslowEstimator

from ONFHAssistLib.errors import InputError
from ONFHAssistLib.models import store as modelstore
from ONFHAssistLib.survival import reference as ref
from ONFHAssistLib.survival.curves import BreslowBaseline

SURVIVAL = modelstore.SHIPPED_STORE / "onfh-survival"
MONTHS = (12, 36, 60)


def cohort(rng, patients=40, base_hazard=0.006, censor=120.0):
    """Two hips per patient from a Cox model with log-hazard ratio = score (exponential baseline), censored
    uniformly over `censor` months; times to 0.1 month, so some tie."""
    score = rng.normal(0.0, 0.8, 2 * patients)
    event_time = rng.exponential(1.0 / (base_hazard * np.exp(score)))
    stop = rng.uniform(0.0, censor, score.size)
    time = np.maximum(np.round(np.minimum(event_time, stop), 1), 0.1)
    return score, time, (event_time <= stop).astype(int), np.repeat([f"P{i}" for i in range(patients)], 2)


def test_every_resample_is_sksurvs_breslow_fit_and_the_interval_its_percentiles():
    score, time, event, patients = cohort(np.random.default_rng(3))
    weights = ref.resample_weights(patients, 200, seed=5)
    assert weights.shape == (200, score.size) and np.all(weights.sum(1) == score.size)
    assert np.all(weights[:, 0::2] == weights[:, 1::2])  # both hips of a patient are drawn together
    x = 0.7
    ours = ref.bootstrap_survival(score, time, event, weights, x, MONTHS)
    oracle = []
    for w in weights.astype(int):
        rows = np.repeat(np.arange(score.size), w)
        fit = BreslowEstimator().fit(score[rows], event[rows].astype(bool), time[rows])
        curve = fit.get_survival_function(np.array([x]))[0]
        oracle.append([curve(min(m, curve.x[-1])) if m >= curve.x[0] else 1.0 for m in MONTHS])
    oracle = np.array(oracle)
    assert np.allclose(ours, oracle, atol=1e-10)
    reference = ref.TrainingReference(score, time, event, patients, np.ones(score.size, bool))
    interval = reference.collapse_interval(x, MONTHS, resamples=200, seed=5)
    expected = np.percentile(1.0 - oracle, [2.5, 97.5], axis=0)
    for k, months in enumerate(MONTHS):
        assert interval[str(months)] == pytest.approx(list(expected[:, k]), abs=1e-10)
        point = 1.0 - BreslowBaseline.fit(score, time, event).survival(x, [months])[0]
        assert interval[str(months)][0] < point < interval[str(months)][1]


def test_the_interval_covers_the_true_collapse_probability_about_95_times_in_100():
    """Scores that are the true log-hazard: the baseline is all there is to estimate, so a 95 % interval should
    hold the true 1 - S(36 | x) in about 95 % of cohorts (a percentile bootstrap on 80 hips may fall a little short)."""
    rng = np.random.default_rng(11)
    base_hazard, x, months = 0.006, 0.5, 36
    truth = 1.0 - np.exp(-base_hazard * months * np.exp(x))
    covered, replicates = 0, 200
    for _ in range(replicates):
        score, time, event, patients = cohort(rng, base_hazard=base_hazard)
        reference = ref.TrainingReference(score, time, event, patients, np.ones(score.size, bool))
        low, high = reference.collapse_interval(x, (months,), resamples=400, seed=int(rng.integers(1 << 30)))[str(months)]
        covered += low <= truth <= high
    assert 0.88 <= covered / replicates <= 0.99


def test_percentile_is_scipys_strict_percentile_of_score():
    score = np.random.default_rng(2).normal(size=80)
    reference = ref.TrainingReference(score, np.ones(80), np.zeros(80, int), np.arange(80).astype(str),
                                      np.ones(80, bool))
    for x in (-5.0, score[7], 0.1, score.max(), 5.0):
        assert reference.percentile(x) == pytest.approx(percentileofscore(score, x, kind="strict"))


def test_the_shipped_reference_reproduces_the_shipped_models_baseline():
    entry = modelstore.read_entry(SURVIVAL)
    reference = ref.load_reference(SURVIVAL, entry.card)
    assert reference is not None
    assert reference.score.size == entry.card["trained_on"]["hips"]
    assert int(reference.event.sum()) == entry.card["trained_on"]["events"]
    refit, stored = reference.fitted_baseline(), entry.card["baseline"]
    assert refit.times == stored["times"]
    assert np.allclose(refit.cumulative_hazard, stored["cumulative_hazard"], rtol=1e-6)
    assert refit.median_risk == pytest.approx(stored["median_risk"], abs=1e-6)
    described = reference.describe()
    assert described["training_hips"] == 168 and described["baseline_hips"] == int(reference.baseline.sum())


def test_missing_foreign_or_tampered_reference(tmp_path):
    card = modelstore.read_entry(SURVIVAL).card
    assert ref.load_reference(tmp_path, card) is None
    shutil.copy(SURVIVAL / ref.REFERENCE_FILE, tmp_path / ref.REFERENCE_FILE)
    assert ref.load_reference(tmp_path, {**card, "sha256": "0" * 64}) is None  # another model's weights
    doc = json.loads((tmp_path / ref.REFERENCE_FILE).read_text(encoding="utf-8"))
    first = doc["hips"]["baseline"].index(True)
    doc["hips"]["score"][first] += 0.5  # one baseline hip's score changed: the card's baseline no longer follows
    (tmp_path / ref.REFERENCE_FILE).write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError, match="not the model card's"):
        ref.load_reference(tmp_path, card)
    (tmp_path / ref.REFERENCE_FILE).write_text("{", encoding="utf-8")
    with pytest.raises(InputError, match="training-cohort reference"):
        ref.load_reference(tmp_path, card)


def test_the_reference_script_reads_the_cohort_the_build_trained_survival_on():
    """`make models` ends with `Resources/make_survival_reference.py`: it must import (an import that no longer
    resolved once failed that last step unseen) and read the cohort in the build's own work folder."""
    import importlib.util
    from pathlib import Path

    from ONFHAssistLib.cli import build_parser
    from ONFHAssistLib.training import shipped

    script = Path(__file__).resolve().parents[1] / "Resources" / "make_survival_reference.py"
    spec = importlib.util.spec_from_file_location("make_survival_reference", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.BUILD_WORK == build_parser().parse_args(["models", "build"]).work
    assert module.retrain_cohort is shipped.retrain_cohort and "survival" in shipped.RETRAINS
