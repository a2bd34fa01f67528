"""Seed 002's model building steps: LASSO penalty by cross-validated partial-likelihood deviance, signature
scores out of fold for the nomogram, univariable → multivariable clinical selection."""
from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi

from ONFHAssistLib.survival import baselines


def _cohort(n=120, noise=20, seed=3):
    """Cox data with two informative features (betas 1.0, −0.8) among pure-noise ones, continuous times."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2 + noise))
    hazard = np.exp(1.0 * x[:, 0] - 0.8 * x[:, 1])
    time = rng.exponential(20.0 / hazard)
    censor = rng.uniform(5, 60, n)
    columns = ["signal_a", "signal_b"] + [f"noise_{i}" for i in range(noise)]
    return pd.DataFrame(x, columns=columns), np.minimum(time, censor), (time <= censor).astype(int)


def test_log_partial_likelihood_is_lifelines_at_its_fit():
    """Oracle: lifelines' partial log-likelihood at its own estimate (rossi has tied weeks, so compare a
    Breslow fit: lifelines' Efron and Breslow agree without ties only; jitter the ties away)."""
    rossi = load_rossi()
    rossi["week"] = rossi["week"] + np.random.default_rng(0).uniform(0, 1e-3, len(rossi))
    cph = CoxPHFitter().fit(rossi, "week", "arrest")
    risk = rossi.drop(columns=["week", "arrest"]).to_numpy(float) @ cph.params_.to_numpy()
    assert np.isclose(baselines.log_partial_likelihood(risk, rossi.week, rossi.arrest), cph.log_likelihood_, atol=1e-6)


def test_deviance_penalty_keeps_the_signal_and_drops_most_noise():
    features, time, event = _cohort()
    signature = baselines.lasso_signature(features, time, event, seed=0)
    kept = {c for c, b in zip(signature.columns, signature.coef) if b != 0}
    assert {"signal_a", "signal_b"} <= kept
    assert len(kept - {"signal_a", "signal_b"}) <= 3
    a, b = (signature.coef[signature.columns.index(c)] for c in ("signal_a", "signal_b"))
    assert a > 0 > b


def test_deviance_choice_is_the_minimum_of_the_cross_validated_deviance():
    """The chosen index beats the unpenalised end and the null end of the path on the same folds."""
    features, time, event = _cohort(noise=10)
    z = ((features - features.mean()) / features.std(ddof=0)).to_numpy()
    alphas = baselines._lasso_path(z, baselines.stats.surv(time, event)).alphas_
    best = baselines.deviance_penalty_index(z, time, event, alphas, seed=1)
    assert 0 < best < len(alphas) - 1  # neither the empty model nor the least penalised one


def test_out_of_fold_scores_never_see_their_own_outcome():
    """Changing the outcomes of the hips of one inner fold leaves exactly their scores unchanged."""
    features, time, event = _cohort(n=80, noise=6)
    before = baselines.out_of_fold_scores(features, time, event, seed=0)
    from sklearn.model_selection import KFold
    _, held = next(iter(KFold(baselines.SIGNATURE_FOLDS, shuffle=True, random_state=0).split(features)))
    time2, event2 = time.copy(), event.copy()
    time2[held], event2[held] = time2[held][::-1] * 3.0, 1 - event2[held]
    after = baselines.out_of_fold_scores(features, time2, event2, seed=0)
    assert np.array_equal(before[held], after[held])
    assert not np.allclose(np.delete(before, held), np.delete(after, held))


def test_univariable_selection_matches_lifelines_p_values():
    rossi = load_rossi()
    candidates = rossi.drop(columns=["week", "arrest"]).assign(constant=1.0)
    chosen = baselines.univariable_selection(candidates, rossi.week, rossi.arrest)
    expected = [c for c in candidates.columns[:-1]
                if CoxPHFitter().fit(rossi[[c, "week", "arrest"]], "week", "arrest").summary.loc[c, "p"] < 0.05]
    assert chosen == expected and "constant" not in chosen
    assert "age" in chosen and "prio" in chosen  # rossi's known univariable predictors
