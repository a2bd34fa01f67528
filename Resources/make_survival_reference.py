"""Regenerate the training-cohort reference of the shipped survival model (`survival/reference.py`).

Run from the repository root: `.venv/bin/python Resources/make_survival_reference.py`. It rebuilds the model's
training cohort exactly as `onfh models build` did (`training.shipped`: phantom seed 101, 60 patients, mixed
modality), scores every ONFH hip with the shipped weights (unchanged), and marks the hips the card's Breslow
baseline was fitted on (the checkpoint-selection split of `survival_plan.selection_split`, seed 0). The file is
written only when the baseline refitted on those hips is the card's, so the stored scores are the ones the
model's collapse probabilities came from. Writes ONFHAssist/Resources/Models/onfh-survival/training_reference.json.
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
from ONFHAssistLib.phantom.cohort import write_cohort
from ONFHAssistLib.survival import reference as ref
from ONFHAssistLib.training.shipped import TRAIN_PATIENTS, TRAIN_SEED
from ONFHAssistLib.training.survival_data import load_hips
from ONFHAssistLib.training.survival_plan import selection_split
from ONFHAssistLib.training.survival_recipe import predict_risk

MODEL = modelstore.SHIPPED_STORE / "onfh-survival"
MODALITY = "mixed"


def main(cohort: Path | None = None) -> dict:
    """`cohort`: an already generated copy of the training cohort (else one is generated in a temporary folder)."""
    start = time.perf_counter()
    device = torch.device("cpu")
    network, entry = load("survival", str(MODEL), device)
    with tempfile.TemporaryDirectory() as work:
        data = cohort or write_cohort(Path(work) / "cohort", TRAIN_PATIENTS, TRAIN_SEED, MODALITY)
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
           "cohort": {"command": f"onfh phantom --out DIR --patients {TRAIN_PATIENTS} --seed {TRAIN_SEED} "
                                 f"--modality {MODALITY}", "hips": len(scores), "collapses": int(hips.event.sum())},
           "seconds": round(time.perf_counter() - start, 1), **ref.reference_json(reference, entry.card["sha256"])}
    atomic_write_json(MODEL / ref.REFERENCE_FILE, doc)
    return doc


if __name__ == "__main__":
    result = main()
    print(f"{result['cohort']['hips']} hips, {sum(result['hips']['baseline'])} in the baseline; {result['seconds']} s")
