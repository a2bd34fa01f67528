"""The survival model's own training cohort as the reference a hip's risk is read against.

Two numbers come from it: where the hip's risk score lies among the training hips' scores ("higher than 30 % of
the 168 training hips"), and a 95 % interval on its collapse probabilities. The interval is a patient-level
bootstrap of the Breslow baseline: the patients the baseline was fitted on are resampled with replacement, the
baseline is re-estimated on each resample with the network's scores held fixed, and the 2.5th and 97.5th
percentiles of 1 - S(t | score) are taken. So it covers how much the baseline hazard moves with the sampling of
the training cohort: not the uncertainty of the network's weights (one trained network), not a scan's own
variability, not whether a phantom-trained model fits real patients. It is a lower bound on the uncertainty.

The cohort's (score, time, event) per hip live as plain JSON (`training_reference.json`) in the model folder,
tied to the weights by their sha256 and checked on load against the card: the Breslow baseline refitted on them
must be the card's baseline (`Resources/make_survival_reference.py` writes the file).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .curves import HORIZONS_MONTHS, BreslowBaseline

REFERENCE_FILE = "training_reference.json"
RESAMPLES, SEED, LEVEL = 2000, 0, 0.95
BASELINE_RTOL = 1e-5  # scores are float32 network outputs stored to 9 significant digits


def resample_weights(patients, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, hips): how many times each hip is in each bootstrap sample, drawing whole patients with
    replacement (both hips of a patient share their draw)."""
    names, index = np.unique(np.asarray(patients).astype(str), return_inverse=True)
    draws = np.random.default_rng(seed).integers(0, len(names), size=(resamples, len(names)))
    counts = np.stack([np.bincount(row, minlength=len(names)) for row in draws])
    return counts[:, index].astype(float)


def bootstrap_survival(risk, time, event, weights: np.ndarray, score: float, months) -> np.ndarray:
    """(resamples, months): S(t | score) from the Breslow baseline fitted on each weighted resample of
    (risk, time, event). A resample with no hip at risk at an event time adds nothing there (it has no event)."""
    risk, time, event = np.asarray(risk, float), np.asarray(time, float), np.asarray(event).astype(bool)
    centre = float(risk.mean())  # S(t | x) does not depend on the centring; it only keeps exp() tame
    event_times = np.unique(time[event])
    deaths = weights @ (event[:, None] & (time[:, None] == event_times[None]))
    at_risk = weights @ (np.exp(risk - centre)[:, None] * (time[:, None] >= event_times[None]))
    increments = np.divide(deaths, at_risk, out=np.zeros_like(deaths), where=at_risk > 0)
    hazard = np.concatenate([np.zeros((len(weights), 1)), np.cumsum(increments, axis=1)], axis=1)
    steps = np.searchsorted(event_times, np.asarray(months, float), side="right")
    return np.exp(-hazard[:, steps] * np.exp(score - centre))


@dataclass(frozen=True)
class TrainingReference:
    """The training hips: the network's score, follow-up and collapse; `baseline` marks those the card's
    Breslow baseline was fitted on (the rest chose the checkpoint)."""

    score: np.ndarray
    time: np.ndarray
    event: np.ndarray
    patient: np.ndarray
    baseline: np.ndarray

    def percentile(self, score: float) -> float:
        """Percentage of training hips whose score is strictly lower than `score`."""
        return float(100.0 * np.mean(self.score < score))

    def fitted_baseline(self) -> BreslowBaseline:
        b = self.baseline
        return BreslowBaseline.fit(self.score[b], self.time[b], self.event[b])

    def collapse_interval(self, score: float, horizons=HORIZONS_MONTHS, resamples: int = RESAMPLES,
                          seed: int = SEED, level: float = LEVEL) -> dict[str, list[float]]:
        """Months -> [low, high]: the percentile bootstrap interval of the collapse probability by then."""
        b = self.baseline
        weights = resample_weights(self.patient[b], resamples, seed)
        collapse = 1.0 - bootstrap_survival(self.score[b], self.time[b], self.event[b], weights, score, horizons)
        tail = 100.0 * (1.0 - level) / 2.0
        low, high = np.percentile(collapse, [tail, 100.0 - tail], axis=0)
        return {str(int(h)): [float(lo), float(hi)] for h, lo, hi in zip(horizons, low, high)}

    def describe(self) -> dict:
        """What analysis.json records about the reference beside each risk."""
        b = self.baseline
        return {"training_hips": int(self.score.size), "baseline_hips": int(b.sum()),
                "baseline_patients": int(np.unique(self.patient[b]).size), "resamples": RESAMPLES, "level": LEVEL,
                "interval_covers": "the Breslow baseline's sampling uncertainty on the training cohort (patient-level "
                                   "bootstrap, network scores fixed); not the network's own uncertainty"}


def reference_json(reference: TrainingReference, weights_sha256: str) -> dict:
    """The per-hip columns as JSON (scores to 9 significant digits: float32 network outputs carry no more)."""
    return {"weights_sha256": weights_sha256,
            "hips": {"patient": reference.patient.tolist(), "score": [float(f"{v:.9g}") for v in reference.score],
                     "time_months": reference.time.tolist(), "event": reference.event.astype(int).tolist(),
                     "baseline": reference.baseline.astype(bool).tolist()}}


def load_reference(folder: str | Path, card: dict) -> TrainingReference | None:
    """The reference stored in a survival model folder (plain JSON, nothing unpickled); None when the folder has
    none or has one for other weights. A damaged file, or one whose refitted baseline is not the card's, stops
    the run, as damaged weights do."""
    path = Path(folder) / REFERENCE_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("weights_sha256") != card["sha256"]:
            return None
        hips = doc["hips"]
        reference = TrainingReference(np.asarray(hips["score"], float), np.asarray(hips["time_months"], float),
                                      np.asarray(hips["event"], int), np.asarray(hips["patient"]).astype(str),
                                      np.asarray(hips["baseline"], bool))
        sizes = {len(v) for v in (reference.score, reference.time, reference.event, reference.patient,
                                  reference.baseline)}
        if len(sizes) != 1 or reference.baseline.sum() < 2 or reference.event[reference.baseline].sum() < 1:
            raise ValueError("the columns differ in length or hold no baseline hips with a collapse")
        _check_baseline(reference.fitted_baseline(), card["baseline"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # JSONDecodeError is a ValueError
        raise InputError(f"{path}: not a valid training-cohort reference ({exc}).") from None
    return reference


def _check_baseline(refit: BreslowBaseline, stored: dict) -> None:
    if refit.times != [float(t) for t in stored["times"]] or not np.allclose(
            refit.cumulative_hazard, stored["cumulative_hazard"], rtol=BASELINE_RTOL, atol=0):
        raise ValueError("the Breslow baseline refitted on its hips is not the model card's")
