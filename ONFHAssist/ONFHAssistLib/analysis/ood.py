"""How unlike the segmentation network's training crops a hip crop is: an out-of-distribution score.

The features are the segmentation DynUNet's bottleneck activations, averaged over space per sliding
window and then over the windows of the segmentation pass itself, so the network runs once. The score is
their Mahalanobis distance to phantom crops (`Resources/make_ood_stats.py`): the covariance is shrunk
towards a scaled identity by Ledoit–Wolf, because a few dozen hips cannot estimate a full covariance of
the bottleneck's channels (the sample covariance is singular) and Ledoit–Wolf picks the shrinkage from
the data alone, leaving nothing to tune. The threshold is a high percentile of the distances of held-out
hips, not of the hips the mean and covariance came from, whose distances are optimistically small.

The statistics live as plain JSON (`ood.json`) in the model folder, tied to the weights by their sha256:
statistics of other weights are never applied, and without them the score is null.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..errors import InputError

STATS_FILE = "ood.json"
PERCENTILE = 99.0


@contextmanager
def bottleneck_features(network: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """While inside, every forward pass of `network` (a MONAI DynUNet) appends its bottleneck activations
    averaged over space, one row per window."""
    pooled: list[torch.Tensor] = []
    handle = network.bottleneck.register_forward_hook(
        lambda module, inputs, output: pooled.append(output.detach().float().mean(dim=(2, 3, 4)).cpu()))
    try:
        yield pooled
    finally:
        handle.remove()


def crop_features(pooled: list[torch.Tensor]) -> np.ndarray:
    """One feature vector per crop: the mean over its sliding windows."""
    return torch.cat(pooled).mean(0).double().numpy()


def mahalanobis(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> float:
    delta = np.asarray(x, float) - mean
    return float(np.sqrt(max(float(delta @ precision @ delta), 0.0)))


@dataclass(frozen=True)
class OODStats:
    mean: np.ndarray
    precision: np.ndarray
    threshold: float

    def assess(self, features: np.ndarray) -> dict:
        """What analysis.json records per hip: the score, the threshold, and whether the hip is within it."""
        score = mahalanobis(features, self.mean, self.precision)
        return {"score": round(score, 3), "threshold": round(self.threshold, 3), "reliable": score <= self.threshold}


def fit_stats(fit: np.ndarray, held_out: np.ndarray, percentile: float = PERCENTILE) -> tuple[OODStats, dict]:
    """Mean and Ledoit–Wolf precision from `fit` (hips × features); threshold at `percentile` of the
    held-out hips' distances. Also returns the shrinkage and both cohorts' distances, for the record."""
    from sklearn.covariance import LedoitWolf

    estimate = LedoitWolf().fit(fit)
    mean, precision = estimate.location_.astype(float), estimate.precision_.astype(float)
    held = np.array([mahalanobis(x, mean, precision) for x in held_out])
    stats = OODStats(mean, precision, float(np.percentile(held, percentile)))
    record = {"shrinkage": float(estimate.shrinkage_), "fit_distances": [mahalanobis(x, mean, precision) for x in fit],
              "held_out_distances": held.tolist()}
    return stats, record


def stats_json(stats: OODStats, weights_sha256: str, percentile: float = PERCENTILE) -> dict:
    """The statistics as JSON (9 significant digits: float32 features carry no more)."""
    short = np.vectorize(lambda v: float(f"{v:.9g}"), otypes=[float])
    return {"weights_sha256": weights_sha256, "features": int(stats.mean.size), "percentile": percentile,
            "threshold": float(f"{stats.threshold:.9g}"), "mean": short(stats.mean).tolist(),
            "precision": short(stats.precision).tolist()}


def load_stats(folder: str | Path, weights_sha256: str) -> OODStats | None:
    """The statistics stored in a model folder (plain JSON, nothing unpickled); None when the folder has
    none, or has them for other weights. A damaged file stops the run, as damaged weights do."""
    path = Path(folder) / STATS_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("weights_sha256") != weights_sha256:
            return None
        mean, precision = np.asarray(doc["mean"], float), np.asarray(doc["precision"], float)
        if mean.shape != (doc["features"],) or precision.shape != (mean.size, mean.size):
            raise ValueError("mean and precision do not match the feature count")
        return OODStats(mean, precision, float(doc["threshold"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # JSONDecodeError is a ValueError
        raise InputError(f"{path}: not valid out-of-distribution statistics ({exc}).") from None
