"""`onfh analyze` with the shipped models on the real CT: the native right head is found near the label's head,
the prosthetic left hip is explained in a warning, and every map lands on the CT's own grid."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from ONFHAssistLib.imaging import io
from ONFHAssistLib.models import store as modelstore
from ONFHAssistLib.analysis.pipeline import Analyzer
from real_ct_oracle import CT, right_head_centre_lps

pytestmark = pytest.mark.skipif(not CT.exists(), reason="shared real CT not present")


def test_real_ct_right_head_found_left_prosthesis_explained(tmp_path):
    if not modelstore.list_models("segmentation") or not modelstore.list_models("localizer"):
        pytest.skip("no shipped models")
    summary = Analyzer("cpu").analyze(CT, tmp_path)
    assert summary["input"]["modality"] == "ct" and summary["input"]["orientation"] == "RAS"
    hips = {h["side"]: h for h in summary["hips"]}
    right, left = hips["R"], hips["L"]
    assert right["found"], right["reason"]
    assert np.linalg.norm(np.array(right["center_lps"]) - right_head_centre_lps()) <= 10.0
    assert 18.0 <= right["radius_mm"] <= 32.0
    assert not left["found"] and "metal in the hip" in left["reason"]
    assert any(w.startswith("L hip not analysed: metal in the hip") for w in summary["warnings"])
    image = io.read_image(CT)
    for name in summary["files"].values():
        if name.endswith(".nii.gz"):
            m = io.read_image(tmp_path / name)
            assert m.GetSize() == image.GetSize() and m.GetOrigin() == image.GetOrigin()
            assert m.GetDirection() == image.GetDirection()
    assert np.any(sitk.GetArrayViewFromImage(io.read_image(tmp_path / "labels.nii.gz")) == 2)
    assert json.loads((tmp_path / "analysis.json").read_text(encoding="utf-8")) == summary
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Left hip" in page
    # this elderly hip's fatty bone, which the network leaves out, is added from its Hounsfield units and said so
    added = right["anatomy"]["bone_added_ml"]
    assert added > 10.0 and f"added from the CT&#x27;s Hounsfield units</th><td>{added:.1f} ml" in page
