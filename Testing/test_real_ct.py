"""The shipped models on the real CT: native right head found near the label's head, prosthetic left hip explained."""
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from ONFHAssistLib import io, modelstore
from ONFHAssistLib.hipfinder import segment_file
from real_ct_oracle import CT, right_head_centre_lps

pytestmark = pytest.mark.skipif(not CT.exists(), reason="shared real CT not present")


def test_real_ct_right_head_found_left_prosthesis_explained(tmp_path):
    if not modelstore.list_models("segmentation") or not modelstore.list_models("localizer"):
        pytest.skip("no shipped models")
    summary = segment_file(CT, tmp_path, "auto", None, None, torch.device("cpu"), png=True)
    assert summary["input"]["modality"] == "ct" and summary["input"]["orientation"] == "RAS"
    hips = {h["side"]: h for h in summary["hips"]}
    right, left = hips["R"], hips["L"]
    assert right["found"], right["reason"]
    assert np.linalg.norm(np.array(right["center_lps"]) - right_head_centre_lps()) <= 10.0
    assert 18.0 <= right["radius_mm"] <= 32.0
    assert left["found"] or "implant" in left["reason"]
    label = io.read_image(tmp_path / "labels.nii.gz")
    image = io.read_image(CT)
    assert label.GetSize() == image.GetSize() and label.GetOrigin() == image.GetOrigin()
    assert np.any(sitk.GetArrayViewFromImage(label) == 2)
    assert json.loads((tmp_path / "analysis.json").read_text(encoding="utf-8"))["hips"] == summary["hips"]
    assert (tmp_path / "overlay.png").stat().st_size > 10_000
