"""Evaluation counts a head outside the scanned volume (a one-hip view) as out of view, not as missed, and a side
with no candidate at all as a row, not a crash."""
from types import SimpleNamespace

import pandas as pd
import SimpleITK as sitk
from ONFHAssistLib.analysis.hipfinder import HipFinding
from ONFHAssistLib.analysis.localization import HeadEstimate
from ONFHAssistLib.imaging.io import inside
from ONFHAssistLib.training.evaluation import _hip_rows


def test_a_head_beyond_the_scan_is_out_of_view():
    scan = sitk.Image([100, 80, 40], sitk.sitkUInt8)
    scan.SetSpacing([1.5, 1.5, 4.0])
    scan.SetOrigin([-60.0, -50.0, 10.0])
    scan.SetDirection([-1, 0, 0, 0, -1, 0, 0, 0, 1])  # x and y run the other way, as in many NIfTI files
    assert inside(scan, [-100.0, -150.0, 90.0])  # x -60 → -208.5, y -50 → -168.5, z 10 → 166
    assert not inside(scan, [-100.0, -150.0, 170.0])  # above the last slice
    assert not inside(scan, [30.0, -150.0, 90.0])  # the other hip, beyond the lateral edge


def test_a_side_without_any_candidate_is_a_row_without_a_coarse_error():
    label = sitk.Image([40, 40, 40], sitk.sitkUInt8)
    scan = SimpleNamespace(scan_id="S", rows=pd.DataFrame([{"side": "R", "modality": "ct", "head_x": 10.0,
                                                            "head_y": 10.0, "head_z": 10.0}]))
    missed = HipFinding(HeadEstimate("R", False, reason="no femoral head in the field of view"), None, None)
    (row,) = _hip_rows(scan, [missed], label, None, 1.0)
    assert row["coarse_error_mm"] is None and not row["found"] and row["in_view"]
