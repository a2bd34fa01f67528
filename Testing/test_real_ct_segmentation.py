"""The shipped segmentation on the real CT (a test case only, never trained on): the localise + segment step
alone, scored against TotalSegmentator's labels in the 96 mm box around the right head
(`real_ct_oracle.right_hip_dice`), and the refined head centre against the oracle's sphere.

Issue 19 asks for femur Dice ≥ 0.85, pelvis ≥ 0.80 and a centre within 5 mm. The network alone is short of it
(1.2.0: femur 0.618, pelvis 0.788, 6.0 mm; 1.1.0: 0.494, 0.713, 5.8 mm); with the CT bone it missed recovered by
the Hounsfield scale (`analysis.ct_bone`: 0.804, 0.826, 4.3 mm), the femur's marrow filled behind gaps in a thin
cortex, the roof it drew as femur given back to the pelvis and the head fitted where it faces soft tissue
(`segment.postprocess`): femur 0.852, pelvis 0.833, 3.6 mm (README "Real scans"). This test holds issue 19's
three bars; the femur clears its bar by 0.002 (about five 3 mm voxels)."""
import numpy as np
import pytest
import torch

from ONFHAssistLib.analysis.hipfinder import segment_file
from ONFHAssistLib.imaging import io
from ONFHAssistLib.models import store as modelstore
from real_ct_oracle import CT, right_head_centre_lps, right_hip_dice

pytestmark = pytest.mark.skipif(not CT.exists(), reason="shared real CT not present")
FLOOR = {"femur": 0.85, "pelvis": 0.80}  # issue 19's bars (measured 0.852 / 0.833)
CENTRE_MM = 5.0  # issue 19's bar (measured 3.6 mm)


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
