"""Classical baselines for collapse risk: the radiomics (or deep-feature) signature of seed 002 and a
survival SVM. Everything is fitted on a training fold only and applied to its test fold.

Selection, in seed 002's order: z-score → Mann–Whitney U between collapsed and non-collapsed hips
(p < 0.05) → drop one of every pair with Pearson |r| > 0.9 (keeping the smaller p) → LASSO-Cox
(scikit-survival `CoxnetSurvivalAnalysis`) with the penalty chosen, as seed 002 chose it (glmnet's
`type.measure = "deviance"`), by 10-fold cross-validated partial-likelihood deviance. The signature is the
LASSO linear predictor; `out_of_fold_scores` gives training hips scores from signatures that never saw them,
which is what a nomogram built on top must be fitted on.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import mannwhitneyu
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold
from lifelines.exceptions import ConvergenceWarning as LifelinesConvergence
from sksurv.linear_model import CoxnetSurvivalAnalysis
from sksurv.svm import FastSurvivalSVM

from ..models.losses import cox_nll
from . import stats

P_THRESHOLD, MAX_CORRELATION, FALLBACK_FEATURES = 0.05, 0.9, 10
PENALTY_FOLDS, SIGNATURE_FOLDS = 10, 5


@dataclass
class Signature:
    columns: list[str]
    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray

    def score(self, features: pd.DataFrame) -> np.ndarray:
        z = (features[self.columns].to_numpy(float) - self.mean) / self.std
        return np.nan_to_num(z) @ self.coef


def _usable(features: pd.DataFrame) -> pd.DataFrame:
    """Columns that are finite for every hip and not constant."""
    finite = features.loc[:, np.isfinite(features.to_numpy(float)).all(0)]
    return finite.loc[:, finite.std(0) > 1e-12]


def select_features(features: pd.DataFrame, event) -> list[str]:
    """Mann–Whitney p < 0.05, then Pearson pruning at |r| > 0.9 (the smaller p survives)."""
    features, event = _usable(features), np.asarray(event).astype(bool)
    p = pd.Series({c: mannwhitneyu(features[c][event], features[c][~event]).pvalue for c in features.columns})
    chosen = p[p < P_THRESHOLD].sort_values()
    if len(chosen) < 2:  # nothing separates the groups: keep the best few rather than nothing
        chosen = p.sort_values().iloc[:FALLBACK_FEATURES]
    kept: list[str] = []
    corr = features[chosen.index].corr().abs()
    for column in chosen.index:
        if all(corr.loc[column, k] <= MAX_CORRELATION for k in kept):
            kept.append(column)
    return kept


def log_partial_likelihood(risk, time, event) -> float:
    """Breslow log partial likelihood of linear predictors `risk` (the one Coxnet maximises)."""
    events = int(np.sum(event))
    if events == 0:
        return 0.0
    as_tensor = (torch.as_tensor(np.asarray(v, float), dtype=torch.float64) for v in (risk, time, event))
    return -float(cox_nll(*as_tensor, ties="breslow")) * events


def _lasso_path(z: np.ndarray, y: np.ndarray, alphas=None) -> CoxnetSurvivalAnalysis:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, UserWarning, RuntimeWarning))
        return CoxnetSurvivalAnalysis(l1_ratio=1.0, alpha_min_ratio=0.01, n_alphas=30, alphas=alphas).fit(z, y)


def deviance_penalty_index(z: np.ndarray, time, event, alphas: np.ndarray, seed: int = 0) -> int:
    """Index into `alphas` of the penalty with the lowest cross-validated partial-likelihood deviance.

    Verweij & van Houwelingen (1993), as glmnet computes it for Cox models: fold k's coefficients, fitted
    without k, are scored by l(all hips) − l(hips outside k), which sidesteps a test fold too small to hold
    its own risk sets. Penalties a fold's path did not reach count as that fold's last one."""
    time, event = np.asarray(time, float), np.asarray(event).astype(bool)
    deviance = np.zeros(len(alphas))
    for train, _ in KFold(min(PENALTY_FOLDS, len(time) // 2), shuffle=True, random_state=seed).split(z):
        if not event[train].any():
            continue
        path = _lasso_path(z[train], stats.surv(time[train], event[train]), alphas)
        for j in range(len(alphas)):
            beta = path.coef_[:, min(j, path.coef_.shape[1] - 1)]
            deviance[j] -= 2.0 * (log_partial_likelihood(z @ beta, time, event)
                                  - log_partial_likelihood(z[train] @ beta, time[train], event[train]))
    return int(np.argmin(deviance))


def lasso_signature(features: pd.DataFrame, time, event, seed: int = 0) -> Signature:
    columns = select_features(features, event)
    x = features[columns].to_numpy(float)
    mean, std = x.mean(0), x.std(0) + 1e-12
    z = (x - mean) / std
    path = _lasso_path(z, stats.surv(time, event))
    best = deviance_penalty_index(z, time, event, path.alphas_, seed)
    return Signature(columns, mean, std, path.coef_[:, best])


def out_of_fold_scores(features: pd.DataFrame, time, event, seed: int = 0) -> np.ndarray:
    """Each hip's signature score from a signature fitted (selection included) on the other folds only."""
    time, event = np.asarray(time, float), np.asarray(event)
    scores = np.zeros(len(time))
    for train, held in KFold(SIGNATURE_FOLDS, shuffle=True, random_state=seed).split(features):
        part = features.iloc[train].reset_index(drop=True)
        scores[held] = lasso_signature(part, time[train], event[train], seed).score(features.iloc[held])
    return scores


def univariable_selection(candidates: pd.DataFrame, time, event, p_threshold: float = P_THRESHOLD) -> list[str]:
    """Candidates whose univariable Cox model has a Wald p below the threshold (seed 002's first step before
    the multivariable nomogram); a column constant in this cohort is never chosen."""
    chosen = []
    for column in candidates.columns:
        values = pd.to_numeric(candidates[column], errors="coerce").to_numpy(float)
        if not np.isfinite(values).all() or values.std() == 0:
            continue
        frame = pd.DataFrame({column: values, "time": np.asarray(time, float), "event": np.asarray(event, int)})
        with warnings.catch_warnings():  # a separated column: its p says so; the warning adds nothing
            warnings.simplefilter("ignore", LifelinesConvergence)
            if stats.fit_cox(frame, "time", "event").summary.loc[column, "p"] < p_threshold:
                chosen.append(column)
    return chosen


def survival_svm(features: pd.DataFrame, time, event, test_features: pd.DataFrame, seed: int = 0,
                 always: list[str] = ()) -> np.ndarray:
    """FastSurvivalSVM (ranking objective) on the selected, z-scored features and the `always` columns (clinical
    covariates, which the radiomics selection does not judge); returns test risks."""
    varying = [c for c in always if features[c].std() > 0]  # a constant column cannot rank and would not z-score
    columns = select_features(features.drop(columns=list(always)), event) + varying
    x = features[columns].to_numpy(float)
    mean, std = x.mean(0), x.std(0) + 1e-12
    model = FastSurvivalSVM(alpha=1.0, rank_ratio=1.0, max_iter=100, random_state=seed)
    model.fit((x - mean) / std, stats.surv(time, event))
    test = np.nan_to_num((test_features[columns].to_numpy(float) - mean) / std)
    return model.predict(test)  # ranking objective: a higher score is an earlier collapse
