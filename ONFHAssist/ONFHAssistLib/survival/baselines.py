"""Classical baselines for collapse risk: the radiomics (or deep-feature) signature of seed 002 and a
survival SVM. Everything is fitted on a training fold only and applied to its test fold.

Selection, in seed 002's order: z-score → Mann–Whitney U between collapsed and non-collapsed hips
(p < 0.05) → drop one of every pair with Pearson |r| > 0.9 (keeping the smaller p) → LASSO-Cox with
10-fold CV over the penalty (scikit-survival `CoxnetSurvivalAnalysis`). The signature is the LASSO
linear predictor.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from sksurv.linear_model import CoxnetSurvivalAnalysis
from sksurv.svm import FastSurvivalSVM

from . import stats

P_THRESHOLD, MAX_CORRELATION, FALLBACK_FEATURES = 0.05, 0.9, 10


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


def lasso_signature(features: pd.DataFrame, time, event, seed: int = 0) -> Signature:
    columns = select_features(features, event)
    x = features[columns].to_numpy(float)
    mean, std = x.mean(0), x.std(0) + 1e-12
    z = (x - mean) / std
    y = stats.surv(time, event)
    path = CoxnetSurvivalAnalysis(l1_ratio=1.0, alpha_min_ratio=0.01, n_alphas=30).fit(z, y)
    search = GridSearchCV(CoxnetSurvivalAnalysis(l1_ratio=1.0),
                          {"alphas": [[a] for a in path.alphas_]}, cv=KFold(min(10, len(time) // 2), shuffle=True,
                                                                             random_state=seed), error_score=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, UserWarning, RuntimeWarning))
        search.fit(z, y)
    coef = search.best_estimator_.coef_[:, 0]
    return Signature(columns, mean, std, coef)


def survival_svm(features: pd.DataFrame, time, event, test_features: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """FastSurvivalSVM (ranking objective) on the selected, z-scored features; returns test risks."""
    columns = select_features(features, event)
    x = features[columns].to_numpy(float)
    mean, std = x.mean(0), x.std(0) + 1e-12
    model = FastSurvivalSVM(alpha=1.0, rank_ratio=1.0, max_iter=100, random_state=seed)
    model.fit((x - mean) / std, stats.surv(time, event))
    test = np.nan_to_num((test_features[columns].to_numpy(float) - mean) / std)
    return model.predict(test)  # ranking objective: a higher score is an earlier collapse
