"""The "segmentation" training population: more healthy hips, and lesions that leave the weight-bearing
dome, so a segmenter cannot learn the lesion's place instead of its look (README, Real scans)."""
import numpy as np

from ONFHAssistLib.phantom import cohort as phantom
from ONFHAssistLib.phantom.hips import PRESETS, lesion_masks, sample_patient_hips


def _hips(preset: str, patients: int = 300) -> list:
    return [h for i in range(patients) for h in sample_patient_hips(phantom.patient_rng(3, i), preset=PRESETS[preset])]


def _angle_from_vertical_deg(hip) -> float:
    return float(np.degrees(np.arccos(hip.lesion_axis()[2])))


def test_most_hips_are_healthy_and_many_lesions_leave_the_dome():
    hips = _hips("segmentation")
    assert np.mean([not h.has_lesion for h in hips]) >= 0.5
    off_dome = [_angle_from_vertical_deg(h) > 30.0 for h in hips if h.has_lesion]
    assert 0.2 <= np.mean(off_dome) <= 0.5
    clinical = [_angle_from_vertical_deg(h) for h in _hips("default") if h.has_lesion]
    assert max(clinical) < 30.0  # every clinical lesion sits under the dome: the prior this preset breaks


def test_off_dome_lesions_are_real_lesions_inside_the_head():
    rng = np.random.default_rng(0)
    for hip in [h for h in _hips("segmentation", 80) if h.has_lesion and _angle_from_vertical_deg(h) > 30.0]:
        r = hip.head_radius_mm
        pts = rng.uniform(-r, r, size=(20000, 3))
        masks = lesion_masks(hip, pts)
        assert masks["lesion"].any() and not (masks["lesion"] & ~masks["head"]).any()
        centroid = pts[masks["lesion"]].mean(axis=0)
        assert centroid @ hip.lesion_axis() > 0.3 * r  # subchondral, on the side its axis points to
        assert 0.0 < hip.necrotic_ratio < 0.5


def test_ct_stage_one_lesions_are_trained_as_femur_on_phantoms_only(tmp_path):
    """ARCO stage I is normal on CT: on a phantom its drawn lesion is labelled femur for training (the image
    cannot show it); an annotator's dataset is trusted as drawn."""
    import json

    import pandas as pd
    from ONFHAssistLib.training.segmentation_recipe import _visible, invisible_lesions

    table = pd.DataFrame({"crop": ["a", "b", "c", "d"], "modality": ["ct", "ct", "mr_t1", "ct"],
                          "jic_stage": [1, 2, 1, 0]})
    (tmp_path / "dataset.json").write_text(json.dumps({"generator": "ONFHAssistLib.phantom"}))
    assert invisible_lesions(table, tmp_path) == {"a"}
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "mine"}))
    assert invisible_lesions(table, tmp_path) == set()
    (tmp_path / "dataset.json").write_text("{damaged")  # not a phantom's: trusted as drawn, no traceback
    assert invisible_lesions(table, tmp_path) == set()
    label = np.array([0, 1, 2, 3, 3])
    assert _visible((None, label), True)[1].tolist() == [0, 1, 2, 2, 2]
    assert _visible((None, label), False)[1].tolist() == [0, 1, 2, 3, 3]
