"""The phantom's truth checked against its own label maps and against lifelines on a large cohort."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from lifelines import CoxPHFitter

from ONFHAssistLib import io, phantom
from ONFHAssistLib.phantom_hips import HAZARD, sample_patient_hips


def _fine_scan(index: int, modality: str = "ct"):
    """A scan at 1 mm around both hips, so label-map measurements are close to the analytic truth."""
    rng = phantom.patient_rng(11, index)
    anat = phantom.sample_anatomy(rng, sample_patient_hips(rng, bilateral_prob=1.0))
    spec = phantom.ScanSpec(size=(250, 80, 80), spacing=(1.0, 1.0, 1.0),
                            direction=phantom.sample_scan_spec(rng).direction)
    image, label = phantom.render(anat, spec, modality, rng)
    return anat, image, label


@pytest.fixture(scope="module")
def fine_scans():
    return [_fine_scan(i, "ct" if i % 2 else "mr_t1") for i in range(4)]


def _label_in_ball(label: sitk.Image, center, radius):
    arr = sitk.GetArrayFromImage(label)
    idx = np.argwhere(np.ones_like(arr, bool))  # z, y, x
    pts = np.asarray(label.GetOrigin()) + idx[:, ::-1] @ (
        np.array(label.GetDirection()).reshape(3, 3) @ np.diag(label.GetSpacing())).T
    inside = np.linalg.norm(pts - center, axis=1) <= radius
    return arr.reshape(-1)[inside]


def test_necrotic_ratio_recomputed_from_labels(fine_scans):
    checked = 0
    for anat, _, label in fine_scans:
        for hip in anat.hips:
            values = _label_in_ball(label, anat.head_center_lps(hip), hip.head_radius_mm)
            ratio = np.sum(values == 3) / max(np.sum(np.isin(values, (2, 3))), 1)
            assert ratio == pytest.approx(hip.necrotic_ratio, abs=0.02), hip
            checked += hip.has_lesion
    assert checked >= 4


def _fit_sphere(points: np.ndarray):
    """Algebraic least-squares sphere: |p|^2 = 2 c.p + (r^2 - |c|^2)."""
    a = np.c_[2 * points, np.ones(len(points))]
    sol, *_ = np.linalg.lstsq(a, (points ** 2).sum(1), rcond=None)
    center = sol[:3]
    return center, np.sqrt(sol[3] + center @ center)


def test_head_centre_matches_sphere_fit_of_head_surface(fine_scans):
    for anat, _, label in fine_scans:
        arr = sitk.GetArrayFromImage(label)
        bone = np.isin(arr, (2, 3))
        from scipy import ndimage

        surface = bone & ~ndimage.binary_erosion(bone)
        idx = np.argwhere(surface)[:, ::-1]
        pts = np.array([label.TransformIndexToPhysicalPoint([int(v) for v in i]) for i in idx])
        for hip in anat.hips:
            c = anat.head_center_lps(hip)
            assert arr[tuple(label.TransformPhysicalPointToIndex(c.tolist())[::-1])] in (2, 3)
            rel = pts - c
            d = np.linalg.norm(rel, axis=1)
            up = anat.rotation()[:, 2]
            medial = -hip.side_sign() * anat.rotation()[:, 0]
            # The free head surface: near radius r, away from the neck (superior or medial half).
            keep = (np.abs(d - hip.head_radius_mm) < 3) & ((rel @ up > 0) | (rel @ medial > 0.3 * d))
            centre, radius = _fit_sphere(pts[keep])
            assert np.linalg.norm(centre - c) < 1.0, (hip, centre, c)
            assert abs(radius - hip.head_radius_mm) < 1.5


def test_lesions_are_inside_their_heads_and_rims_are_visible(fine_scans):
    for anat, image, label in fine_scans:
        arr, lab = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label)
        for hip in anat.hips:
            values = _label_in_ball(label, anat.head_center_lps(hip), hip.head_radius_mm + 0.5)
            assert (np.sum(values == 3) > 0) == hip.has_lesion
        assert np.sum(lab == 3) == sum(
            np.sum(_label_in_ball(label, anat.head_center_lps(h), h.head_radius_mm + 0.5) == 3) for h in anat.hips)
        assert arr[lab == 2].mean() != pytest.approx(arr[lab == 3].mean(), rel=0.05)


def test_generator_is_deterministic_and_grades_consistent(tmp_path):
    a = phantom.write_cohort(tmp_path / "a", 2, seed=5, modality="mixed", spacing=(3.0,))
    b = phantom.write_cohort(tmp_path / "b", 2, seed=5, modality="mixed", spacing=(3.0,))
    ta, tb = pd.read_csv(a / "hips.csv"), pd.read_csv(b / "hips.csv")
    pd.testing.assert_frame_equal(ta, tb)
    for scan in ta.scan_id.unique():
        ia = sitk.GetArrayFromImage(io.read_image(a / "images" / f"{scan}.nii.gz"))
        ib = sitk.GetArrayFromImage(io.read_image(b / "images" / f"{scan}.nii.gz"))
        np.testing.assert_array_equal(ia, ib)
    assert set(ta.modality) == {"mr_t1", "ct"}
    assert (ta.ficat == ta.jic_stage).all() and (ta.arco == ta.jic_stage).all()
    assert ((ta.jic_type == "none") == (ta.sranet_positive == 0)).all()


def test_default_cohort_looks_like_seed_000():
    rows = [h for i in range(70) for h in sample_patient_hips(phantom.patient_rng(0, i))]
    lesion = [h for h in rows if h.has_lesion]
    per_patient = [sum(h.has_lesion for h in rows[2 * i: 2 * i + 2]) for i in range(70)]
    assert set(per_patient) <= {1, 2} and 80 <= len(lesion) <= 105
    events = np.mean([h.event for h in lesion])
    assert 0.35 <= events <= 0.60
    times = [h.time_months for h in lesion]
    assert min(times) >= 1.0 and max(times) <= 174.0


def test_cox_recovers_generator_hazard_coefficients():
    hips = [h for i in range(1400) for h in sample_patient_hips(phantom.patient_rng(99, i)) if h.has_lesion]
    frame = pd.DataFrame([h.covariates() for h in hips], columns=HAZARD.names)
    frame["T"] = [h.time_months for h in hips]
    frame["E"] = [h.event for h in hips]
    fit = CoxPHFitter().fit(frame, "T", "E")
    ci = fit.confidence_intervals_
    for name, beta in zip(HAZARD.names, HAZARD.beta):
        lo, hi = ci.loc[name].to_numpy()
        assert lo <= beta <= hi, (name, beta, lo, hi)
