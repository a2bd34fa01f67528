"""Regenerate the training-cohort reference of the shipped survival model (`survival/reference.py`).

Run from the repository root after `onfh models build` (`make models` does): `.venv/bin/python
Resources/make_survival_reference.py`. It takes the model's training cohort from the build's work folder
(`out/models-build`; `training.shipped.retrain_cohort`: the realistic cohorts 1905 + 1906 and the classic seed
101, generated there when missing), scores every ONFH hip with the shipped weights (unchanged), and marks the
hips the card's Breslow baseline was fitted on (the checkpoint-selection split of
`survival_plan.selection_split`, with the card's seed). The file is written only when the baseline refitted on
those hips is the card's, so the stored scores are the ones the model's collapse probabilities came from. Writes
ONFHAssist/Resources/Models/onfh-survival/training_reference.json.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ONFHAssistLib.atomic import atomic_write_json
from ONFHAssistLib.imaging.crops import CropSpec
from ONFHAssistLib.models import store as modelstore
from ONFHAssistLib.models.networks import load
from ONFHAssistLib.survival import reference as ref
from ONFHAssistLib.training.shipped import RETRAINS, retrain_cohort
from ONFHAssistLib.training.survival_data import load_hips
from ONFHAssistLib.training.survival_plan import selection_split
from ONFHAssistLib.training.survival_recipe import predict_risk

MODEL = modelstore.SHIPPED_STORE / "onfh-survival"
BUILD_WORK = Path("out/models-build")  # `onfh models build`'s default --work


def main(cohort: Path | None = None) -> dict:
    """`cohort`: an already generated copy of the training cohort (else the build's, generated when missing)."""
    start = time.perf_counter()
    device = torch.device("cpu")
    network, entry = load("survival", str(MODEL), device)
    with tempfile.TemporaryDirectory() as work:
        data = cohort or retrain_cohort(BUILD_WORK, "survival")
        hips = load_hips(data, CropSpec(**entry.card["crop"]), Path(work) / "cache")
        scores = predict_risk(network, hips, device)
    fit, _, rule = selection_split(hips.time, hips.event, hips.patients, entry.card["seed"])
    baseline = np.zeros(len(scores), bool)
    baseline[fit] = True
    reference = ref.TrainingReference(scores.astype(float), hips.time, hips.event, hips.patients, baseline)
    ref._check_baseline(reference.fitted_baseline(), entry.card["baseline"])  # else the run stops here
    doc = {"method": "the shipped survival network's risk score on every ONFH hip of its training cohort; "
                     f"baseline marks the hips its Breslow baseline was fitted on ({rule})",
           "model": entry.provenance(),
           "cohort": {"command": "the cohorts " + " + ".join(RETRAINS["survival"][0]) + " of `training.shipped` "
                                 "(onfh phantom --seed 1905 / 1906 --generator realistic, --seed 101)",
                      "hips": len(scores), "collapses": int(hips.event.sum())},
           "seconds": round(time.perf_counter() - start, 1), **ref.reference_json(reference, entry.card["sha256"])}
    atomic_write_json(MODEL / ref.REFERENCE_FILE, doc)
    return doc


if __name__ == "__main__":
    result = main()
    print(f"{result['cohort']['hips']} hips, {sum(result['hips']['baseline'])} in the baseline; {result['seconds']} s")
