"""Predicted grades: the lesion's lateral reach on a synthetic head with a known lesion edge, the JIC-type
thresholds, and the mapping from one ARCO stage to all five systems."""
import numpy as np
import pytest
import SimpleITK as sitk

from ONFHAssistLib.slicer import demo_case
from ONFHAssistLib.imaging import io
from ONFHAssistLib.imaging.crops import CropSpec, hip_crop
from ONFHAssistLib.analysis.grading import JIC_TYPE_BOUNDS_DEG, jic_type, lateral_reach_deg, predicted_grades

SPACING, RADIUS = 0.75, 25.0


def _head_with_lesion(lateral_edge_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Right-hip-view crop (lateral = −x): a head whose lesion covers the dome from 10° medial of vertical
    out to `lateral_edge_deg` lateral, in every coronal slice near the centre."""
    n = 96
    axis = (np.arange(n) - (n - 1) / 2) * SPACING
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    labels = np.where(r <= RADIUS, 2, 0).astype(np.uint8)
    angle = np.degrees(np.arctan2(-x, z))
    labels[(r <= RADIUS) & (r > RADIUS - 8) & (z > 0) & (angle > -10) & (angle < lateral_edge_deg)
           & (np.abs(y) < 8)] = 3
    origin = np.full(3, axis[0])
    return labels, origin


@pytest.mark.parametrize("edge", [15.0, 30.0, 45.0, 60.0])
def test_lateral_reach_measures_the_lesion_edge(edge):
    labels, origin = _head_with_lesion(edge)
    reach = lateral_reach_deg(labels, origin, [SPACING] * 3, np.zeros(3), RADIUS)
    assert edge - 4.0 <= reach <= edge  # the 95th percentile sits just inside the edge


def test_jic_type_thresholds_and_missing_lesion():
    labels = np.zeros((8, 8, 8), np.uint8)
    assert lateral_reach_deg(labels, np.zeros(3), [1.0] * 3, np.full(3, 4.0), 3.0) is None
    assert jic_type(None) == "none"
    a, b, c = JIC_TYPE_BOUNDS_DEG
    assert [jic_type(v) for v in (a - 1, a + 1, b + 1, c + 1)] == ["A", "B", "C1", "C2"]


def test_one_arco_stage_fills_every_system():
    assert predicted_grades(0, 40.0) == {"jic_stage": 0, "jic_type": "none", "arco": 0, "steinberg": 0, "ficat": 0}
    assert predicted_grades(2, 25.0) == {"jic_stage": 2, "jic_type": "B", "arco": 2, "steinberg": 2, "ficat": 2}
    assert predicted_grades(4, 55.0)["steinberg"] == 5 and predicted_grades(3, 55.0)["steinberg"] == 3


def test_demo_lesion_type_matches_its_truth_through_the_truth_labels():
    """On the demo's own truth label map, the rule gives the generator's JIC type."""
    truth = next(t for t in demo_case.truth() if t["jic_stage"] > 0)
    centre = [truth[c] for c in ("head_x", "head_y", "head_z")]
    crop = hip_crop(io.read_image(demo_case.label_path()), centre, truth["side"], CropSpec(80.0, 1.0), label=True)
    reach = lateral_reach_deg(sitk.GetArrayFromImage(crop), crop.GetOrigin(), crop.GetSpacing(), centre,
                              truth["head_radius_mm"])
    assert jic_type(reach) == truth["jic_type"]


def test_the_segmented_lesion_decides_stage_0_or_not():
    from ONFHAssistLib.analysis.grading import decide_stage

    assert decide_stage([0.5, 0.1, 0.3, 0.1], lesion_ml=4.2) == 2  # most probable ONFH class
    assert decide_stage([0.5, 0.1, 0.3, 0.1], lesion_ml=0.0) == 0
    assert decide_stage([0.2, 0.1, 0.3, 0.4], lesion_ml=0.0) == 0  # no lesion in the head: stage 0, whatever the network says
    assert decide_stage([0.1, 0.2, 0.3, 0.4], lesion_ml=0.9) == 3
    assert decide_stage([0.9, 0.1], lesion_ml=1.0) == 1  # binary system too
