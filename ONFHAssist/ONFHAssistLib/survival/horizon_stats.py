"""Statistics of predicted collapse probability at one horizon t: calibration, decision curves, NRI and IDI.

Censoring is handled with Kaplan–Meier (lifelines) where the method allows it: observed risk in a
calibration bin is 1 − KM(t) of that bin, and the net benefit of a decision curve follows Vickers et al.
(2008): among hips whose predicted risk is at or above the threshold, true positives are estimated as
(1 − KM(t)) of that group. NRI and IDI need each hip's status at t, so they use the hips whose status is
known (collapsed by t, or followed past t without collapse); hips censored before t are left out and
counted in the result.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter


def _km_risk(time, event, t: float) -> float:
    """1 − KM(t): the observed probability of collapse by t."""
    if len(time) == 0:
        return float("nan")
    return float(1.0 - KaplanMeierFitter().fit(time, event).predict(t))


def _km_risk_interval(time, event, t: float) -> tuple[float, float]:
    """95 % interval of 1 − KM(t), from lifelines' Greenwood (exponential) bounds of KM(t)."""
    bounds = KaplanMeierFitter().fit(time, event).confidence_interval_survival_function_
    lower_s, upper_s = bounds[bounds.index <= t].iloc[-1]
    return float(1.0 - upper_s), float(1.0 - lower_s)


def calibration(time, event, predicted, t: float, bins: int = 5) -> pd.DataFrame:
    """Per quantile bin of predicted P(collapse by t): n, mean predicted and KM-observed risk at t with its 95 %
    interval (lower, upper)."""
    time, event, predicted = np.asarray(time, float), np.asarray(event, int), np.asarray(predicted, float)
    edges = np.unique(np.quantile(predicted, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        mask = which == b
        if mask.any():
            lower, upper = _km_risk_interval(time[mask], event[mask], t)
            rows.append({"bin": b, "n": int(mask.sum()), "predicted": float(predicted[mask].mean()),
                         "observed": _km_risk(time[mask], event[mask], t), "lower": lower, "upper": upper})
    return pd.DataFrame(rows)


def decision_curve(time, event, predicted, t: float, thresholds) -> pd.DataFrame:
    """Net benefit at t of treating hips with predicted risk ≥ threshold, of treating all, and of none (0)."""
    time, event, predicted = np.asarray(time, float), np.asarray(event, int), np.asarray(predicted, float)
    n, overall = len(time), _km_risk(time, event, t)
    rows = []
    for pt in np.asarray(thresholds, float):
        odds = pt / (1.0 - pt)
        chosen = predicted >= pt
        share = chosen.mean()
        risk = _km_risk(time[chosen], event[chosen], t) if chosen.any() else 0.0
        model = share * risk - share * (1.0 - risk) * odds
        rows.append({"threshold": float(pt), "model": float(model), "treat_all": float(overall - (1 - overall) * odds),
                     "treat_none": 0.0, "n": n})
    return pd.DataFrame(rows)


def known_status(time, event, t: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask of hips whose status at t is known, their status: 1 collapsed by t, 0 not)."""
    time, event = np.asarray(time, float), np.asarray(event, int)
    collapsed = (event == 1) & (time <= t)
    return collapsed | (time > t), collapsed.astype(int)


def nri_idi(time, event, old, new, t: float) -> dict:
    """Category-free NRI and IDI of `new` over `old` predicted risks at t, on hips with known status."""
    known, status = known_status(time, event, t)
    old, new, status = np.asarray(old, float)[known], np.asarray(new, float)[known], status[known]
    cases, controls = status == 1, status == 0
    if not cases.any() or not controls.any():
        return {"nri": float("nan"), "idi": float("nan"), "used": int(known.sum()), "left_out": int((~known).sum()),
                "note": "no collapsed or no collapse-free hips with known status at t"}
    up, down = new > old, new < old
    nri_events = up[cases].mean() - down[cases].mean()
    nri_nonevents = down[controls].mean() - up[controls].mean()
    idi = (new[cases].mean() - new[controls].mean()) - (old[cases].mean() - old[controls].mean())
    return {"nri": float(nri_events + nri_nonevents), "nri_events": float(nri_events),
            "nri_nonevents": float(nri_nonevents), "idi": float(idi), "used": int(known.sum()),
            "left_out": int((~known).sum())}
