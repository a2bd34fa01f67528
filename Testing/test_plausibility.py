"""The anatomical checks a localiser candidate must pass before it is called a femoral head."""
import numpy as np
import pytest
import SimpleITK as sitk

from ONFHAssistLib.analysis import plausibility
from ONFHAssistLib.analysis.measure import HipMeasures
from ONFHAssistLib.analysis.segment import HipSegmentation

HEAD = dict(radius_mm=24.0, femur_fill=1.0, dome_cover=0.75, neck_ml=28.0, head_median_hu=230.0, midline_mm=95.0)


@pytest.mark.parametrize("change, words", [
    ({}, ""),
    ({"midline_mm": 8.0}, "midline: not a hip"),
    ({"radius_mm": 15.0}, "outside the femoral head's 18–32 mm"),
    ({"head_median_hu": -960.0}, "no bone at the candidate"),
    ({"femur_fill": 0.4}, "only 40% of the fitted sphere is femur"),
    ({"dome_cover": 0.1}, "no acetabulum over the candidate head"),
    ({"head_median_hu": None}, ""),  # MR: no HU check
])
def test_verdict_names_the_first_failed_check(change, words):
    reason = plausibility.verdict(plausibility.HeadEvidence(**{**HEAD, **change}))
    assert (reason == "") if not words else (words in reason)


def test_no_sphere_is_no_head():
    assert plausibility.verdict(None).startswith("no femoral head surface")


def _ball_crop(pelvis_dome: bool) -> HipSegmentation:
    """A 96 mm crop at 1.5 mm: a femur ball of radius 24 mm, optionally capped by a pelvis shell above it."""
    n, step = 64, 1.5
    zz, yy, xx = (np.indices((n, n, n)) - (n - 1) / 2.0) * step
    r = np.sqrt(zz ** 2 + yy ** 2 + xx ** 2)
    labels = np.zeros((n, n, n), np.uint8)
    labels[r <= 24.0] = 2
    if pelvis_dome:
        labels[(r >= 28.0) & (r <= 34.0) & (zz > 5.0)] = 1
    crop = sitk.GetImageFromArray(labels)
    crop.SetSpacing((step,) * 3)
    crop.SetOrigin((-(n - 1) / 2.0 * step,) * 3)
    measures = HipMeasures(np.zeros(3), 24.0, 57.9, 0.0, 0.0, 0.0)
    hu = sitk.GetImageFromArray(np.where(r <= 24.0, 230.0, 40.0).astype(np.float32))  # bone in muscle
    hu.CopyInformation(crop)
    return HipSegmentation("R", crop, [0.0, 0.0, 0.0], measures, [-90.0, 0.0, 0.0], intensities=hu)


def test_gather_measures_a_ball_in_its_socket():
    seated = plausibility.gather(_ball_crop(True), midline_x=0.0, hounsfield=False)
    assert seated.femur_fill == pytest.approx(1.0) and seated.midline_mm == pytest.approx(90.0)
    assert seated.dome_cover > 0.4 and plausibility.verdict(seated) == ""
    loose = plausibility.gather(_ball_crop(False), midline_x=0.0, hounsfield=False)
    assert loose.dome_cover == 0.0 and "no acetabulum" in plausibility.verdict(loose)


def test_on_ct_the_median_inside_the_head_is_read_from_the_input_crop():
    assert plausibility.gather(_ball_crop(True), midline_x=0.0, hounsfield=True).head_median_hu == 230.0
    assert plausibility.gather(_ball_crop(True), midline_x=0.0, hounsfield=False).head_median_hu is None
