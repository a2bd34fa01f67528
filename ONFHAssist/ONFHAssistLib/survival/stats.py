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


def comparable_pairs(time, event, before: float | None = None) -> int:
    """Harrell's comparable pairs (scikit-survival's definition): hip i collapsed at t_i and hip j was still
    collapse-free after t_i (or censored at t_i). With `before`, only collapses before that time count.
    Zero pairs is why a C-index is undefined on a small fold."""
    time, event = np.asarray(time, float), np.asarray(event).astype(bool)
    later = time[None, :] > time[:, None]
    tied_censored = (time[None, :] == time[:, None]) & ~event[None, :]
    counted = event & (time < before) if before is not None else event
    return int(((later | tied_censored) & counted[:, None]).sum())


def harrell_c(time, event, risk) -> float | None:
    """Harrell's C; None when no pair is comparable (no collapse, or every collapse after every other hip),
    as on a small fold."""
    if comparable_pairs(time, event) == 0:
        return None
    return float(concordance_index_censored(np.asarray(event).astype(bool), np.asarray(time, float),
                                            np.asarray(risk, float))[0])


def uno_tau(train_time, train_event) -> float | None:
    """The last training collapse before the end of training follow-up: Uno's C compares pairs up to it, where
    the censoring survival is still positive (beyond it the weights are undefined)."""
    train_time = np.asarray(train_time, float)
    before_end = train_time[(np.asarray(train_event) == 1) & (train_time < train_time.max())]
    return float(before_end.max()) if len(before_end) else None


def uno_c(train_time, train_event, time, event, risk, tau: float | None = None) -> float | None:
    """Uno's IPCW C-index; censoring distribution estimated on the training outcomes; pairs compared up to
    `tau` (default `uno_tau`). None when no test pair is comparable before tau."""
    tau = uno_tau(train_time, train_event) if tau is None else tau
    test = _within_follow_up(train_time, time, event)
    if comparable_pairs(test["time"], test["event"], before=tau) == 0:
        return None
    return float(concordance_index_ipcw(surv(train_time, train_event), test, np.asarray(risk, float), tau=tau)[0])


def auc_undefined_at(train_time, time, event, times) -> list[float]:
    """The times at which AUC(t) is undefined: outside the test follow-up, or without a collapse by t (a case)
    or a hip followed past t (a control) among the test hips."""
    test = _within_follow_up(train_time, time, event)
    t_test, e_test = test["time"], test["event"]
    return [float(t) for t in times if not (t_test.min() <= t < t_test.max() and np.any(e_test & (t_test <= t))
                                             and np.any(t_test > t))]


def time_dependent_auc(train_time, train_event, time, event, risk, times) -> tuple[np.ndarray | None, float | None]:
    """Cumulative/dynamic AUC(t) at `times` and its mean over them (scikit-survival's iAUC); (None, None) when
    AUC(t) is undefined at any of them (`auc_undefined_at`)."""
    if auc_undefined_at(train_time, time, event, times):
        return None, None
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
