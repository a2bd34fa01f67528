"""Paired comparison of two CV rows on the same folds (SLE against no SLE): the difference of the fold means of
every metric, with a percentile bootstrap over patients resampled within each test fold (each fold keeps its
training part, so its censoring weights and the models stay fixed). A conclusion is drawn only where the
interval excludes zero."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOWER_IS_BETTER = ("ibs",)


@dataclass
class PairedFold:
    """One fold's outcomes and both rows' test predictions (a result dict holds `risk`, `survival`,
    `survival_months`)."""
    train_time: np.ndarray
    train_event: np.ndarray
    test_time: np.ndarray
    test_event: np.ndarray
    patients: np.ndarray
    old: dict
    new: dict


def _differences(folds, index, score, metrics) -> np.ndarray:
    """Mean over folds of new − old per metric, each fold's test hips taken at `index[f]`; NaN where no fold
    defines the metric."""
    per_fold = []
    for fold, idx in zip(folds, index):
        a, b = (score(fold, result, idx) for result in (fold.old, fold.new))
        per_fold.append([b[m] - a[m] if a[m] is not None and b[m] is not None else np.nan for m in metrics])
    per_fold = np.asarray(per_fold, float)
    defined = ~np.isnan(per_fold)
    return np.where(defined.any(0), np.nansum(per_fold, 0) / np.maximum(defined.sum(0), 1), np.nan)


def _resample(patients: np.ndarray, rng) -> np.ndarray:
    """Hip indices of a patient-level bootstrap sample (a patient's hips stay together)."""
    unique = np.unique(patients)
    chosen = rng.choice(unique, size=len(unique), replace=True)
    return np.concatenate([np.flatnonzero(patients == p) for p in chosen])


def compare(folds: list[PairedFold], score, metrics, n_boot: int, seed: int) -> dict:
    """{metric: estimate, 95 % interval, resamples that defined it, conclusion}; `score(fold, result, idx)`
    gives a fold's metrics (None where undefined) on its test hips `idx`."""
    everyone = [np.arange(len(f.test_time)) for f in folds]
    estimate = _differences(folds, everyone, score, metrics)
    rng = np.random.default_rng(seed)
    boot = np.array([_differences(folds, [_resample(f.patients, rng) for f in folds], score, metrics)
                     for _ in range(n_boot)])
    out = {}
    for k, metric in enumerate(metrics):
        values = boot[:, k][~np.isnan(boot[:, k])]
        if np.isnan(estimate[k]) or len(values) < 2:
            out[metric] = {"estimate": None, "low": None, "high": None, "resamples": len(values),
                           "conclusion": "undefined in every fold"}
            continue
        low, high = (float(v) for v in np.percentile(values, [2.5, 97.5]))
        out[metric] = {"estimate": float(estimate[k]), "low": low, "high": high, "resamples": len(values),
                       "conclusion": _conclusion(metric, low, high)}
    return out


def _conclusion(metric: str, low: float, high: float) -> str:
    if low <= 0 <= high:
        return "no difference shown (the interval holds 0)"
    higher = low > 0
    return "better" if higher != (metric in LOWER_IS_BETTER) else "worse"
