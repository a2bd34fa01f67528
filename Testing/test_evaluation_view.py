"""Evaluation counts a head outside the scanned volume (a one-hip view) as out of view, not as missed."""
import SimpleITK as sitk

from ONFHAssistLib.training.evaluation import _inside


def test_a_head_beyond_the_scan_is_out_of_view():
    scan = sitk.Image([100, 80, 40], sitk.sitkUInt8)
    scan.SetSpacing([1.5, 1.5, 4.0])
    scan.SetOrigin([-60.0, -50.0, 10.0])
    scan.SetDirection([-1, 0, 0, 0, -1, 0, 0, 0, 1])  # x and y run the other way, as in many NIfTI files
    assert _inside(scan, [-100.0, -150.0, 90.0])  # x -60 → -208.5, y -50 → -168.5, z 10 → 166
    assert not _inside(scan, [-100.0, -150.0, 170.0])  # above the last slice
    assert not _inside(scan, [30.0, -150.0, 90.0])  # the other hip, beyond the lateral edge
