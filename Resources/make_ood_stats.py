"""Regenerate the out-of-distribution statistics of the shipped segmentation model (`analysis/ood.py`).

Run from the repository root: `.venv/bin/python Resources/make_ood_stats.py`. Fresh phantom cohorts of both
generators, classic and realistic (seeds used for nothing else): the mean and covariance come from the fit
pair, the threshold from the held-out pair, so the threshold sees distances of hips the statistics have not
seen. Features are taken on the crop at each hip's true head centre. Writes
ONFHAssist/Resources/Models/onfh-segmentation/ood.json. Real scans are never used here.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ONFHAssistLib import cli
from ONFHAssistLib.analysis import ood
from ONFHAssistLib.analysis.segment import segment_hip
from ONFHAssistLib.atomic import atomic_write_json
from ONFHAssistLib.imaging import io
from ONFHAssistLib.models import store as modelstore
from ONFHAssistLib.models.networks import load

MODEL = modelstore.SHIPPED_STORE / "onfh-segmentation"
MODALITY = "mixed"


@dataclass(frozen=True)
class Cohort:
    seed: int
    patients: int
    generator: str = "classic"

    def args(self, out: Path) -> list[str]:
        return ["phantom", "--out", str(out), "--patients", str(self.patients), "--seed", str(self.seed),
                "--modality", MODALITY, "--generator", self.generator, "--progress", "none"]


# The model learnt from both phantoms (README *Models*), so both are its training distribution.
FIT = (Cohort(seed=7101, patients=16), Cohort(seed=7113, patients=16, generator="realistic"))
HELD_OUT = (Cohort(seed=7102, patients=8), Cohort(seed=7114, patients=8, generator="realistic"))


def cohort_features(network: torch.nn.Module, folder: Path) -> tuple[np.ndarray, list[str]]:
    """Features (hips × channels) at each hip's true head centre, and each hip's modality; a hip outside a
    one-hip view is left out (its crop is padding)."""
    rows = pd.read_csv(folder / "hips.csv")
    features, modalities = [], []
    for scan_id, hips in rows.groupby("scan_id"):
        image = io.read_image(folder / "images" / f"{scan_id}.nii.gz")
        for hip in hips.itertuples():
            if not io.inside(image, [hip.head_x, hip.head_y, hip.head_z]):
                continue
            seg = segment_hip(network, image, [hip.head_x, hip.head_y, hip.head_z], hip.side, hip.modality,
                              torch.device("cpu"))
            features.append(seg.features)
            modalities.append(hip.modality)
    return np.stack(features), modalities


def _summary(cohorts: tuple[Cohort, ...], modalities: list[str], distances: list[float]) -> dict:
    return {"commands": ["onfh " + " ".join(c.args(Path("DIR"))) for c in cohorts],
            "seeds": [c.seed for c in cohorts], "patients": sum(c.patients for c in cohorts), "hips": len(distances),
            "modalities": {m: modalities.count(m) for m in sorted(set(modalities))},
            "distances": [round(d, 3) for d in distances]}


def main() -> dict:
    start = time.perf_counter()
    network, entry = load("segmentation", str(MODEL), torch.device("cpu"))
    with tempfile.TemporaryDirectory() as work:
        found = {}
        for name, cohorts in (("fit", FIT), ("held_out", HELD_OUT)):
            features, modalities = [], []
            for cohort in cohorts:
                folder = Path(work) / f"{name}-{cohort.seed}"
                if cli.main(cohort.args(folder)) != 0:
                    raise RuntimeError(f"onfh phantom failed for seed {cohort.seed}")
                f, m = cohort_features(network, folder)
                features.append(f)
                modalities += m
            found[name] = (np.concatenate(features), modalities)
    stats, record = ood.fit_stats(found["fit"][0], found["held_out"][0])
    doc = {"method": "Mahalanobis distance of the segmentation network's bottleneck activations (global average "
                     "pool, mean over the sliding windows) to the fit cohort; Ledoit-Wolf shrunk covariance; "
                     f"threshold = {ood.PERCENTILE:g}th percentile of the held-out cohort's distances",
           "model": entry.provenance(), "shrinkage": round(record["shrinkage"], 4),
           "fit": _summary(FIT, found["fit"][1], record["fit_distances"]),
           "held_out": _summary(HELD_OUT, found["held_out"][1], record["held_out_distances"]),
           "seconds": round(time.perf_counter() - start, 1), **ood.stats_json(stats, entry.card["sha256"])}
    atomic_write_json(MODEL / ood.STATS_FILE, doc)
    return doc


if __name__ == "__main__":
    result = main()
    print(f"threshold {result['threshold']:.3f}; fit distances {min(result['fit']['distances'])}–"
          f"{max(result['fit']['distances'])}; held-out {min(result['held_out']['distances'])}–"
          f"{max(result['held_out']['distances'])}; {result['seconds']} s")
