"""The phantom's truth checked against its own label maps and against lifelines on a large cohort."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from lifelines import CoxPHFitter
from scipy import ndimage

from ONFHAssistLib.imaging import io
from ONFHAssistLib.phantom import cohort as phantom
from ONFHAssistLib.phantom.hips import HAZARD, sample_patient_hips


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


STAGES = (1, 2, 3)


def _one_hip_at_stages(modality: str):
    """One lesion hip re-rendered at stages I, II and III: same geometry, signs, grid and noise."""
    rng = phantom.patient_rng(11, 2)
    anat = phantom.sample_anatomy(rng, sample_patient_hips(rng, bilateral_prob=1.0))
    hip = anat.hips[0]
    scans = {}
    for stage in STAGES:
        staged = replace(hip, jic_stage=stage, collapse_mm=2.0 if stage >= 3 else 0.0)
        one = replace(anat, hips=[staged])
        image, label = phantom.render(one, phantom.head_scan_spec(one, staged, size=72), modality,
                                      np.random.default_rng(7))
        scans[stage] = (sitk.GetArrayFromImage(image).astype(float), sitk.GetArrayFromImage(label), image)
    return anat, hip, scans


@pytest.fixture(scope="module")
def staged_hips():
    return {modality: _one_hip_at_stages(modality) for modality in phantom.MODALITIES}


def _voxels_within(image: sitk.Image, centre, radius) -> np.ndarray:
    """Mask of voxels whose centres lie within `radius` mm of the LPS point `centre`."""
    idx = np.argwhere(np.ones(image.GetSize()[::-1], bool))[:, ::-1]
    pts = np.asarray(image.GetOrigin()) + idx @ (
        np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())).T
    return (np.linalg.norm(pts - centre, axis=1) <= radius).reshape(image.GetSize()[::-1])


def _regions(label: np.ndarray) -> dict[str, np.ndarray]:
    """From the label map alone: the lesion away from the cortex, its edge against normal femur (where
    the band or rim runs), its core 3 voxels in, and normal marrow 3 voxels away from both."""
    lesion, femur = label == 3, label == 2
    deep = ndimage.binary_erosion(lesion | femur, iterations=3)  # off the (subchondral) cortex
    return {"lesion": lesion & deep, "edge": lesion & deep & ndimage.binary_dilation(femur),
            "core": ndimage.binary_erosion(lesion, iterations=3),
            "marrow": femur & deep & ~ndimage.binary_dilation(lesion, iterations=3)}


def test_ct_shows_stage_two_signs_and_barely_shows_stage_one(staged_hips):
    anat, hip, scans = staged_hips["ct"]
    (arr1, lab1, image), (arr2, lab2, _) = scans[1], scans[2]
    np.testing.assert_array_equal(lab1, lab2)  # the stage changes the look, never the lesion
    r = _regions(lab1)
    head = _voxels_within(image, anat.head_center_lps(hip), hip.head_radius_mm)
    marrow = arr1[r["marrow"] & head].mean()
    assert r["core"].sum() > 50
    # Stage I: CT is (nearly) normal, a faint density change only.
    assert abs(arr1[r["lesion"]].mean() - marrow) < 40
    assert arr1[r["edge"]].mean() - marrow < 120
    assert np.mean(arr1[r["lesion"]] > 450) < 0.01
    # Stage II: sclerosis raises the lesion's density, in patches, with a dense rim at its edge.
    assert arr2[r["lesion"]].mean() > arr1[r["lesion"]].mean() + 80
    assert np.mean(arr2[r["core"]] > 450) > 0.10
    assert arr2[r["edge"]].mean() > marrow + 300


def test_mr_band_marks_stage_one_and_stage_two_interior_is_mottled(staged_hips):
    _, _, scans = staged_hips["mr_t1"]
    (arr1, lab1, _), (arr2, _, _) = scans[1], scans[2]
    r = _regions(lab1)
    assert r["core"].sum() > 50
    # Stage I on T1: a low-signal band around a homogeneous interior.
    assert arr1[r["edge"]].mean() < arr1[r["core"]].mean() - 200
    # Stage II: darker, heterogeneous interior (sclerosis and cysts are low on T1).
    assert arr2[r["core"]].mean() < arr1[r["core"]].mean() - 60
    assert arr2[r["core"]].std() > 2.0 * arr1[r["core"]].std()


@pytest.mark.parametrize("modality", phantom.MODALITIES)
def test_cysts_are_fluid_foci_inside_the_lesion_from_stage_two_on(staged_hips, modality):
    anat, hip, scans = staged_hips[modality]
    signs = anat.signs[hip.side]
    assert len(signs.cyst_radii) >= 1
    _, lab1, image = scans[1]
    rot, centre = anat.rotation(), anat.head_center_anatomy(hip)
    inside = np.zeros(lab1.shape, bool)
    for c, r in zip(signs.cyst_centres, signs.cyst_radii):
        lps = rot @ (centre + c) + np.asarray(anat.translation_mm)
        inside |= _voxels_within(image, lps, r - 0.8)
    assert inside.sum() >= 3 and (lab1[inside] == 3).all()
    fluid_below = {"ct": 100.0, "mr_t1": 350.0}[modality]  # water-like HU; T1 fluid below muscle (~300)
    early = scans[1][0][inside].mean()
    for stage in (2, 3):
        arr, lab, _ = scans[stage]
        cyst = arr[inside].mean()
        assert cyst < fluid_below, (stage, cyst)
        assert cyst < early - 150, (stage, cyst, early)
        if modality == "ct":  # on T1 cysts and sclerosis are both low, so only CT sets cysts apart
            assert cyst < arr[_regions(lab)["lesion"] & ~inside].mean() - 100, stage


def test_stage_signs_do_not_use_the_patient_stream(monkeypatch):
    """Signs come from a spawned stream: grades, outcomes, grids and noise draws stay as they were."""
    with_signs = phantom.patient_rng(5, 1)
    anat = phantom.sample_anatomy(with_signs)
    assert set(anat.signs) == {h.side for h in anat.hips if h.has_lesion} != set()
    monkeypatch.setattr(phantom, "sample_signs", lambda hip, rng: None)
    without = phantom.patient_rng(5, 1)
    phantom.sample_anatomy(without)
    assert with_signs.bit_generator.state == without.bit_generator.state
