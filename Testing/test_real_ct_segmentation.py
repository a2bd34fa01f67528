"""The shipped segmentation on the real CT (a test case only, never trained on): the localise + segment step
alone, scored against TotalSegmentator's labels in the 96 mm box around the right head
(`real_ct_oracle.right_hip_dice`), and the refined head centre against the oracle's sphere.

Issue 19 asks for femur Dice ≥ 0.85, pelvis ≥ 0.80 and a centre within 5 mm; the shipped, phantom-trained
model is short of it (1.2.0: femur 0.618, pelvis 0.788, 6.0 mm; 1.1.0: 0.494, 0.713, 5.8 mm: README "Real
scans"). Until a model reaches that bar this test holds the line where it is, so that no release is worse on
a real hip than the one before."""
import numpy as np
import pytest
import torch

from ONFHAssistLib.analysis.hipfinder import segment_file
from ONFHAssistLib.imaging import io
from ONFHAssistLib.models import store as modelstore
from real_ct_oracle import CT, right_head_centre_lps, right_hip_dice

pytestmark = pytest.mark.skipif(not CT.exists(), reason="shared real CT not present")
FLOOR = {"femur": 0.58, "pelvis": 0.75}  # shipped 1.2.0: 0.618 / 0.788 (1.1.0: 0.494 / 0.713)
CENTRE_MM = 10.0  # issue 18's bar (shipped 1.2.0: 6.0 mm)


def test_right_hip_segmentation_against_totalsegmentator(tmp_path):
    if not modelstore.list_models("segmentation") or not modelstore.list_models("localizer"):
        pytest.skip("no shipped models")
    summary = segment_file(CT, tmp_path, "auto", None, None, torch.device("cpu"), png=False)
    right = {h["side"]: h for h in summary["hips"]}["R"]
    assert right["found"], right["reason"]
    scores = right_hip_dice(io.read_image(tmp_path / "labels.nii.gz"))
    assert all(scores[k] >= v for k, v in FLOOR.items()), scores
    assert scores["necrosis_voxels"] == 0, scores
    assert np.linalg.norm(np.array(right["center_lps"]) - right_head_centre_lps()) <= CENTRE_MM
