"""A one-hip view (the realistic phantom's `one_hip` field of view): the head in view is found on its own
side, and nothing is invented on the side whose head the scan leaves out (issue 18). Before the midline came
from the cut edge, the body's centre fell inside the hip, the real head was refused as "at the midline" and
a structure 60–160 mm away was reported instead (development seed 4250: 0 of 8 heads right, 4 invented)."""
import csv

import numpy as np
import pytest
import torch

from ONFHAssistLib.analysis.hipfinder import segment_file
from ONFHAssistLib.cli import main
from ONFHAssistLib.models import store as modelstore
from ONFHAssistLib.phantom import realistic


@pytest.mark.slow
def test_a_one_hip_ct_finds_its_head_and_invents_no_other(tmp_path, monkeypatch):
    if not modelstore.list_models("segmentation") or not modelstore.list_models("localizer"):
        pytest.skip("no shipped models")
    drawn = realistic.sample_protocol
    monkeypatch.setattr(realistic, "sample_protocol", lambda rng, modality: ("one_hip", drawn(rng, modality)[1]))
    assert main(["phantom", "--out", str(tmp_path / "d"), "--patients", "1", "--seed", "4250", "--modality", "ct",
                 "--generator", "realistic"]) == 0
    (scan,) = (tmp_path / "d" / "images").iterdir()
    summary = segment_file(scan, tmp_path / "out", "auto", None, None, torch.device("cpu"), png=False)
    truth = {r["side"]: np.array([float(r[k]) for k in ("head_x", "head_y", "head_z")])
             for r in csv.DictReader(open(tmp_path / "d" / "hips.csv", encoding="utf-8"))}
    found = [h for h in summary["hips"] if h["found"]]
    assert len(found) == 1, summary["hips"]
    assert np.linalg.norm(np.array(found[0]["center_lps"]) - truth[found[0]["side"]]) < 5.0
