"""From a risk score to what a clinician reads: S(t | x), collapse probability at fixed months, risk group.

The baseline is Breslow's estimator on the training cohort's risks (what lifelines and
scikit-survival use for a Cox model), so any network trained with the Cox partial likelihood gets
calibrated curves the same way. Risk groups split at the training cohort's median risk.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

HORIZONS_MONTHS = (12, 36, 60)


@dataclass
class BreslowBaseline:
    times: list[float]  # distinct training event times, ascending
    cumulative_hazard: list[float]  # H0 just after each of them, for a risk equal to mean_risk
    mean_risk: float
    median_risk: float

    @classmethod
    def fit(cls, risk, time, event) -> "BreslowBaseline":
        """H0(t) = Σ_{event times s ≤ t} d_s / Σ_{j: t_j ≥ s} exp(risk_j − mean risk)."""
        risk, time, event = np.asarray(risk, float), np.asarray(time, float), np.asarray(event).astype(bool)
        mean = float(risk.mean())
        weights = np.exp(risk - mean)
        event_times = np.unique(time[event])
        increments = [event[time == s].sum() / weights[time >= s].sum() for s in event_times]
        return cls(event_times.tolist(), np.cumsum(increments).tolist(), mean, float(np.median(risk)))

    def survival(self, risk: float, months) -> np.ndarray:
        """S(t | risk) at `months`: a step function that changes at training event times."""
        steps = np.searchsorted(self.times, np.asarray(months, float), side="right")
        h0 = np.concatenate([[0.0], self.cumulative_hazard])[steps]
        return np.exp(-h0 * np.exp(risk - self.mean_risk))

    def collapse_probability(self, risk: float, horizons=HORIZONS_MONTHS) -> dict[str, float]:
        return {str(int(h)): float(1.0 - s) for h, s in zip(horizons, self.survival(risk, horizons))}

    def group(self, risk: float) -> str:
        return "high" if risk > self.median_risk else "low"

    def to_json(self) -> dict:
        return asdict(self)
