"""Category-free NRI and IDI of a new over an old predicted risk at a horizon t, with censoring handled.

A hip censored before t has an unknown status at t; dropping such hips (`horizon_stats.nri_idi`) biases
both statistics. Here the NRI is the Kaplan–Meier-based one of Pencina, D'Agostino and Steyerberg (Stat
Med 2011;30:11–21): with "up" = new > old and "down" = new < old, Bayes' rule turns the Kaplan–Meier
risk of each group into P(up | event by t) = (1 − KM_up(t))·P(up) / (1 − KM(t)) and
P(up | no event by t) = KM_up(t)·P(up) / KM(t), and likewise for "down". The IDI is weighted by inverse
probability of censoring (IPCW, Uno et al.): a hip that collapsed at T ≤ t weighs 1/G(T−), a hip
followed past t weighs 1/G(t), where G is the Kaplan–Meier estimate of the censoring distribution.
Kaplan–Meier curves come from scikit-survival. Intervals: percentile bootstrap with a fixed seed,
resampling patients when groups are given (a patient's two hips are not independent).
"""
from __future__ import annotations

import numpy as np
from sksurv.nonparametric import kaplan_meier_estimator

KEYS = ("nri", "nri_events", "nri_nonevents", "idi")


def _step(times: np.ndarray, values: np.ndarray, at: np.ndarray, before: bool = False) -> np.ndarray:
    """A right-continuous step function (1 before its first time) at `at`, or just before `at`."""
    index = np.searchsorted(times, at, side="left" if before else "right") - 1
    return np.where(index >= 0, values[np.maximum(index, 0)], 1.0)


def _km_at(time: np.ndarray, event: np.ndarray, t: float) -> float:
    """Kaplan–Meier survival at t of a (non-empty) group; flat after its last time."""
    times, survival = kaplan_meier_estimator(event.astype(bool), time)
    return float(_step(times, survival, np.array([t]))[0])


def km_nri(time, event, old, new, t: float) -> dict:
    """Pencina 2011's Kaplan–Meier-based category-free NRI at t and its events and non-events parts."""
    time, event = np.asarray(time, float), np.asarray(event, int)
    old, new = np.asarray(old, float), np.asarray(new, float)
    survival = _km_at(time, event, t)
    if not 0.0 < survival < 1.0:
        return {"nri": float("nan"), "nri_events": float("nan"), "nri_nonevents": float("nan")}
    parts = {}
    for name, moved in (("up", new > old), ("down", new < old)):
        share = moved.mean()
        km = _km_at(time[moved], event[moved], t) if moved.any() else 0.0
        parts[name] = ((1.0 - km) * share / (1.0 - survival), km * share / survival)  # (| event, | no event)
    events = parts["up"][0] - parts["down"][0]
    nonevents = parts["down"][1] - parts["up"][1]
    return {"nri": float(events + nonevents), "nri_events": float(events), "nri_nonevents": float(nonevents)}


def ipcw_idi(time, event, old, new, t: float) -> float:
    """IDI at t: gain in the difference of mean predicted risk between collapsed and collapse-free hips,
    each collapsed hip weighted 1/G(T−) and each hip followed past t 1/G(t) (so their mean is plain)."""
    time, event = np.asarray(time, float), np.asarray(event, int)
    old, new = np.asarray(old, float), np.asarray(new, float)
    cases = (event == 1) & (time <= t)
    controls = time > t
    if not cases.any() or not controls.any():
        return float("nan")
    times, censoring = kaplan_meier_estimator(event.astype(bool), time, reverse=True)
    g = _step(times, censoring, time[cases], before=True)
    if np.any(g <= 0):
        return float("nan")
    weight = 1.0 / g

    def separation(p):
        return np.sum(weight * p[cases]) / weight.sum() - p[controls].mean()

    return float(separation(new) - separation(old))


def reclassification(time, event, old, new, t: float) -> dict:
    """KM-based NRI (with its events and non-events parts) and IPCW IDI of `new` over `old` at t."""
    return {**km_nri(time, event, old, new, t), "idi": ipcw_idi(time, event, old, new, t)}


def with_bootstrap(time, event, old, new, t: float, groups=None, n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95) -> dict:
    """`reclassification` plus percentile bootstrap intervals: {key: {"estimate", "low", "high"}}, and the
    number of resamples in which every statistic was defined (others, e.g. no collapse drawn, are skipped)."""
    time, event = np.asarray(time, float), np.asarray(event, int)
    old, new = np.asarray(old, float), np.asarray(new, float)
    units = np.asarray(groups) if groups is not None else np.arange(len(time))
    labels, unit_of = np.unique(units, return_inverse=True)
    members = [np.flatnonzero(unit_of == u) for u in range(len(labels))]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        index = np.concatenate([members[u] for u in rng.integers(0, len(members), len(members))])
        value = reclassification(time[index], event[index], old[index], new[index], t)
        if all(np.isfinite(value[k]) for k in KEYS):
            draws.append([value[k] for k in KEYS])
    estimate = reclassification(time, event, old, new, t)
    draws = np.array(draws).reshape(-1, len(KEYS))
    tail = 100.0 * (1.0 - level) / 2.0
    out = {"horizon": float(t), "bootstrap": {"resamples": len(draws), "requested": n_boot, "seed": seed,
                                              "unit": "patient" if groups is not None else "hip"}}
    for j, key in enumerate(KEYS):
        low, high = (np.percentile(draws[:, j], [tail, 100.0 - tail]) if len(draws) else (np.nan, np.nan))
        out[key] = {"estimate": estimate[key], "low": float(low), "high": float(high)}
    return out


def interval_text(value: dict) -> str:
    """'+0.112 (−0.050 to +0.270)' for one statistic of `with_bootstrap`; 'n/a' where it is undefined."""
    def finite(x):
        return x is not None and np.isfinite(x)

    if value is None or not finite(value["estimate"]):
        return "n/a"
    if not (finite(value["low"]) and finite(value["high"])):
        return f"{value['estimate']:+.3f}"
    return f"{value['estimate']:+.3f} ({value['low']:+.3f} to {value['high']:+.3f})"
