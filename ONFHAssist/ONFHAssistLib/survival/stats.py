"""Survival statistics, thin over scikit-survival and lifelines (the libraries are the reference).

Inputs are plain arrays: `time` (months), `event` (1 = collapse), `risk` (higher = earlier collapse).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.statistics import logrank_test, multivariate_logrank_test
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.util import Surv


def surv(time, event) -> np.ndarray:
    """scikit-survival's structured outcome array."""
    return Surv.from_arrays(event=np.asarray(event).astype(bool), time=np.asarray(time, float))


def _within_follow_up(train_time, time, event) -> np.ndarray:
    """Test outcomes with events at or after the end of training follow-up marked censored.

    The IPCW weights need the censoring survival at every test event, and it is 0 from the last
    training time on. Such subjects are controls at every evaluation time before that end, so the
    relabelling changes no AUC(t), C(τ) or Brier(t) there; it only avoids a crash.
    """
    end = float(np.max(np.asarray(train_time, float)))
    event = np.asarray(event).astype(bool) & (np.asarray(time, float) < end)
    return surv(time, event)


def harrell_c(time, event, risk) -> float:
    """Harrell's C; NaN when nothing is comparable (fewer than two hips, or no event), e.g. a small fold."""
    if len(np.asarray(time)) < 2 or not np.any(np.asarray(event).astype(bool)):
        return float("nan")
    return float(concordance_index_censored(np.asarray(event).astype(bool), np.asarray(time, float),
                                            np.asarray(risk, float))[0])


def uno_c(train_time, train_event, time, event, risk, tau: float | None = None) -> float:
    """Uno's IPCW C-index; censoring distribution estimated on the training outcomes.

    Without `tau`, pairs are compared up to the last training event time before the end of follow-up,
    where the censoring survival is still positive (beyond it the weights are undefined).
    """
    if tau is None:
        train_time = np.asarray(train_time, float)
        before_end = train_time[(np.asarray(train_event) == 1) & (train_time < train_time.max())]
        tau = float(before_end.max()) if len(before_end) else None
    return float(concordance_index_ipcw(surv(train_time, train_event), _within_follow_up(train_time, time, event),
                                        np.asarray(risk, float), tau=tau)[0])


def time_dependent_auc(train_time, train_event, time, event, risk, times) -> tuple[np.ndarray, float]:
    """Cumulative/dynamic AUC(t) at `times` and its mean over them (scikit-survival's iAUC)."""
    auc, mean_auc = cumulative_dynamic_auc(surv(train_time, train_event), _within_follow_up(train_time, time, event),
                                           np.asarray(risk, float), np.asarray(times, float))
    return auc, float(mean_auc)


def integrated_brier(train_time, train_event, time, event, survival_at: np.ndarray, times) -> float:
    """Integrated Brier score of predicted S(t) (rows: subjects, columns: `times`)."""
    return float(integrated_brier_score(surv(train_time, train_event), _within_follow_up(train_time, time, event), survival_at,
                                        np.asarray(times, float)))


def logrank(time, event, groups) -> tuple[float, float]:
    """(χ², p) of the log-rank test between groups (two or more)."""
    groups = np.asarray(groups)
    labels = np.unique(groups)
    if len(labels) == 2:
        a, b = groups == labels[0], groups == labels[1]
        result = logrank_test(np.asarray(time)[a], np.asarray(time)[b], np.asarray(event)[a], np.asarray(event)[b])
    else:
        result = multivariate_logrank_test(np.asarray(time), groups, np.asarray(event))
    return float(result.test_statistic), float(result.p_value)


def fit_cox(table: pd.DataFrame, duration: str, event: str, penalizer: float = 0.0) -> CoxPHFitter:
    """lifelines Cox model (Efron ties)."""
    return CoxPHFitter(penalizer=penalizer).fit(table, duration_col=duration, event_col=event)
