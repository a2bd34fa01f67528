"""Regenerate the bundled demo scan: a bilateral MR-T1 of the realistic phantom (`phantom.realistic`: muscles,
fat planes, trabecular bone), one hip with a lesion, one healthy.

Run from the repository root: `.venv/bin/python Resources/make_demo_case.py`. Writes
ONFHAssist/Resources/Demo/onfh_demo_hip.nii.gz, its label map and truth, and demo.json with SHA256 sums (the
Slicer Sample Data entry checks the scan against it).
"""
from __future__ import annotations

import json

from ONFHAssistLib.imaging import io
from ONFHAssistLib.models import store as modelstore
from ONFHAssistLib.phantom import cohort as phantom
from ONFHAssistLib.phantom.realistic import draw
from ONFHAssistLib.atomic import atomic_write_text
from ONFHAssistLib.resources import DEMO

OUT = DEMO
SEED = 2026


def pick_patient() -> int:
    """First patient of the demo seed with exactly one lesion: JIC stage 2, type B or C1 (a typical case)."""
    for i in range(1000):
        hips = phantom.sample_anatomy(phantom.patient_rng(SEED, i)).hips
        lesions = [h for h in hips if h.has_lesion]
        if len(lesions) == 1 and lesions[0].jic_stage == 2 and lesions[0].jic_type in ("B", "C1"):
            return i
    raise RuntimeError("no demo patient found")


def main() -> None:
    i = pick_patient()
    rng = phantom.patient_rng(SEED, i)
    anat = phantom.sample_anatomy(rng)
    scan = draw(anat, rng, "mr_t1", (240, 176, 112), (1.6, 1.6, 2.0))
    image = io.write_image(scan.image, OUT / "onfh_demo_hip.nii.gz")
    lab = io.write_image(scan.label, OUT / "onfh_demo_hip_label.nii.gz")
    truth = phantom.hip_rows("DEMO", "onfh_demo_hip", "mr_t1", anat)
    meta = {"scan": image.name, "label": lab.name, "seed": SEED, "patient_index": i, "generator": "realistic",
            "sha256": {image.name: modelstore.sha256_file(image), lab.name: modelstore.sha256_file(lab)},
            "truth": truth}
    atomic_write_text(OUT / "demo.json", json.dumps(meta, indent=2) + "\n")
    print(json.dumps(truth, indent=1))


if __name__ == "__main__":
    main()
