"""The realistic phantom generator checked against its own truth: labels, head centres, lesions, tissues."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from ONFHAssistLib.cli import main
from ONFHAssistLib.phantom import cohort, realistic, skeleton
from ONFHAssistLib.phantom.habitus import sample_habitus
from ONFHAssistLib.phantom.hips import sample_patient_hips, surface_half_angle
from ONFHAssistLib.phantom.protocols import T, red_marrow_share, synth_intensities
from scipy import ndimage

PUBLISHED_CT = {"fat": (-120, -60), "muscle": (35, 60), "cancellous": (150, 450), "cortex": (900, 1800),
                "urine": (0, 20)}
# sha256 of a small classic cohort (images, labels, hips.csv), taken before the realistic generator existed
CLASSIC_SHA256 = "45c6cb4392b9a74340ee96c8c097fd320a9f00f31c2befcc452f69e448a3654c"


def _patient(index: int):
    rng = cohort.patient_rng(23, index)
    anat = cohort.sample_anatomy(rng, sample_patient_hips(rng, bilateral_prob=1.0))
    return anat, sample_habitus(rng.spawn(1)[0], anat.head_separation_mm)


def _spec(anat, size=(175, 120, 88), spacing=(2.0, 2.0, 2.5), centre=(0.0, 15.0, -50.0)):
    """Both hips down to the upper diaphysis, LPS-aligned, in the anatomy frame's place."""
    offset = anat.rotation() @ (np.asarray(centre) - cohort.FOV_CENTRE_ANATOMY)
    return cohort.ScanSpec(size, spacing, center_offset_mm=tuple(float(v) for v in offset))


@pytest.fixture(scope="module")
def scans():
    anat, hab = _patient(0)
    spec = _spec(anat)
    out = {m: [sitk.GetArrayFromImage(i) for i in realistic.render(anat, hab, spec, m, np.random.default_rng(1))]
           for m in ("ct", "mr_t1")}
    ref = realistic.render(anat, hab, spec, "ct", np.random.default_rng(1))[1]
    return anat, out, ref


def _points(ref: sitk.Image, idx_zyx: np.ndarray) -> np.ndarray:
    matrix = np.array(ref.GetDirection()).reshape(3, 3) @ np.diag(ref.GetSpacing())
    return np.asarray(ref.GetOrigin()) + idx_zyx[:, ::-1] @ matrix.T


def test_label_contract_and_necrosis_only_in_the_head(scans):
    anat, out, ref = scans
    _, label, tissue = out["ct"]
    assert set(np.unique(label)) <= {0, 1, 2, 3}
    assert {1, 2, 3} <= set(np.unique(label))
    assert np.all(label[tissue == T["cartilage"]] == 0)  # cartilage is background, as the label contract says
    assert np.all(np.isin(label[tissue == T["lesion"]], (3,)))
    necrotic = _points(ref, np.argwhere(label == 3))
    inside = np.zeros(len(necrotic), bool)
    for hip in anat.hips:
        inside |= np.linalg.norm(necrotic - anat.head_center_lps(hip), axis=1) <= hip.head_radius_mm
    assert inside.all()


def _fit_sphere(points: np.ndarray):
    a = np.c_[2 * points, np.ones(len(points))]
    sol, *_ = np.linalg.lstsq(a, (points ** 2).sum(1), rcond=None)
    return sol[:3], np.sqrt(sol[3] + sol[:3] @ sol[:3])


def test_head_centre_in_hips_csv_is_the_sphere_of_the_femur_label(scans):
    anat, out, ref = scans
    bone = np.isin(out["ct"][1], (2, 3))
    surface = _points(ref, np.argwhere(bone & ~ndimage.binary_erosion(bone)))
    rows = {row["side"]: row for row in cohort.hip_rows("P", "S", "ct", anat)}
    for hip in anat.hips:
        centre = np.array([rows[hip.side][k] for k in ("head_x", "head_y", "head_z")])
        rel = surface - centre
        d = np.linalg.norm(rel, axis=1)
        axis = anat.rotation() @ hip.lesion_axis()
        off_lesion = rel @ axis < d * np.cos(surface_half_angle(hip) + 0.3)  # away from any collapse
        fitted, radius = _fit_sphere(surface[(np.abs(d - hip.head_radius_mm) < 3.0) & off_lesion])
        assert np.linalg.norm(fitted - centre) < 1.0, hip.side
        assert radius == pytest.approx(hip.head_radius_mm - 1.0, abs=1.0)  # surface voxels sit inside


def test_acetabular_roof_gives_the_sampled_centre_edge_angle_and_joint_space():
    """Read off the built bone: where the roof ends laterally in the head's coronal plane (Wiberg's LCE
    angle, ray-cast outside the joint sphere the renderer keeps free), and, on a rendered 0.2 mm column
    of labels above the head, the gap between femur and pelvis (the joint space)."""
    gaps = 0
    for index in range(3):
        anat, hab = _patient(index)
        for hip in anat.hips:
            c, s, r = anat.head_center_anatomy(hip), hip.side_sign(), hip.head_radius_mm
            prims = skeleton.hemipelvis(anat, hab, hip)
            phi, dist = np.meshgrid(np.radians(np.arange(-10, 80, 0.25)),
                                    np.arange(r + hab.joint_space_mm, r + 20.0, 0.1), indexing="ij")
            x, z = c[0] + s * dist * np.sin(phi), c[2] + dist * np.cos(phi)
            covered = (np.min([p.sdf(x, np.zeros_like(x), z) for p in prims], axis=0) < 0).any(axis=1)
            assert np.degrees(phi[np.argmax(~covered) - 1, 0]) == pytest.approx(hab.lce_deg, abs=1.5)
            if hip.collapse_mm > 0:  # a flattened dome widens the gap; the roof is still checked above
                continue
            spec = cohort.ScanSpec((1, 1, 200), (0.2, 0.2, 0.2), center_offset_mm=tuple(
                anat.rotation() @ (c + np.array([0.0, 0.0, r + 5.0]) - cohort.FOV_CENTRE_ANATOMY)))
            column = sitk.GetArrayFromImage(realistic.render(anat, hab, spec, "ct", np.random.default_rng(0))[1])[:, 0, 0]
            femur_end = np.nonzero(np.isin(column, (2, 3)))[0].max()
            pelvis_start = np.nonzero(column == 1)[0].min()
            assert (pelvis_start - femur_end - 1) * 0.2 == pytest.approx(hab.joint_space_mm, abs=0.3)
            gaps += 1
    assert gaps >= 3


def _median(image, mask):
    mask = ndimage.binary_erosion(mask)
    assert mask.sum() > 20
    return float(np.median(image[mask]))


def test_ct_tissues_within_published_ranges(scans):
    """Cancellous bone as the femoral heads have it: below them trabeculae are sparse and marrow fatty, so the
    published range of cancellous bone does not apply there (the next test)."""
    anat, out, ref = scans
    image, label, tissue = out["ct"]
    heads = np.zeros(label.shape, bool)
    for hip in anat.hips:
        centre = anat.head_center_lps(hip)
        inside = np.linalg.norm(_points(ref, np.indices(label.shape).reshape(3, -1).T) - centre, axis=1)
        heads |= (inside < hip.head_radius_mm - 3.0).reshape(label.shape)
    masks = {"fat": tissue == T["fat"], "muscle": tissue == T["muscle"], "urine": tissue == T["urine"],
             "cancellous": (tissue == T["cancellous"]) & heads, "cortex": (tissue == T["cortex"]) & (label == 2)}
    for name, (lo, hi) in PUBLISHED_CT.items():
        assert lo <= _median(image, masks[name]) <= hi, name


def test_below_the_head_each_femur_reads_fattier_than_its_head(scans):
    """Sparse trabeculae and fatty marrow below the head (`realistic.SPARSE_FAT_SHARE`): on CT each proximal
    femur's cancellous bone reads well under its head's (without it, this patient: 223 vs 218 HU). Until
    2026-12-03 only the right femur got it: the box missed the left greater trochanter."""
    anat, out, ref = scans
    image, label, tissue = out["ct"]
    idx = np.argwhere((label == 2) & (tissue == T["cancellous"]))
    where = _points(ref, idx)
    gaps = [np.linalg.norm(where - anat.head_center_lps(h), axis=1) - h.head_radius_mm for h in anat.hips]
    for side, gap in enumerate(gaps):
        own = gap == np.min(gaps, 0)  # this femur, not the other one
        head, below = (np.median(image[tuple(idx[own & m].T)]) for m in (gap < -3.0, gap > 3.0))
        assert below < head - 50.0, (anat.hips[side].side, head, below)


def test_pelvis_away_from_the_acetabulum_reads_fattier_than_around_it(scans):
    """The iliac blade and sacral alae are sparse-trabecular (`realistic.DENSE_PELVIS_RADII`); the bone around
    the acetabulum is not."""
    anat, out, ref = scans
    image, label, tissue = out["ct"]
    idx = np.argwhere((label == 1) & (tissue == T["cancellous"]))
    where = _points(ref, idx)
    radii = np.min([np.linalg.norm(where - anat.head_center_lps(h), axis=1) / h.head_radius_mm for h in anat.hips], 0)
    near, far = (np.median(image[tuple(idx[m].T)]) for m in (radii < realistic.DENSE_PELVIS_RADII - 0.1,
                                                               radii > realistic.DENSE_PELVIS_RADII + 0.1))
    assert far < near - 40.0, (near, far)


def test_pelvic_red_marrow_gives_way_to_fat_with_age():
    """Iliac-crest cellularity is about (100 - age) % (`protocols.red_marrow_share`)."""
    assert [red_marrow_share(a) for a in (10, 30, 55, 80, 95)] == pytest.approx([0.8, 0.7, 0.45, 0.2, 0.2])


def test_mr_t1_fat_brighter_than_muscle_brighter_than_cortex(scans):
    image, _, tissue = scans[1]["mr_t1"]
    fat, muscle, cortex = (_median(image, tissue == T[n]) for n in ("fat", "muscle", "cortex"))
    assert fat > 1.5 * muscle > 1.5 * 2 * cortex


def test_same_seed_same_scan_and_other_seed_differs():
    anat, hab = _patient(1)
    spec = _spec(anat, size=(60, 50, 30), spacing=(4.0, 4.0, 4.0))
    a, b, c = (sitk.GetArrayFromImage(realistic.render(anat, hab, spec, "mr_t1", np.random.default_rng(s))[0])
               for s in (5, 5, 6))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_synth_intensities_are_what_the_tissues_get():
    anat, hab = _patient(2)
    spec = _spec(anat, size=(90, 60, 40), spacing=(3.5, 3.5, 4.0))
    means = synth_intensities(np.random.default_rng(3))
    image, _, tissue = (sitk.GetArrayFromImage(i) for i in realistic.render(anat, hab, spec, "ct", np.random.default_rng(4), means))
    for name in ("fat", "muscle"):
        assert _median(image, tissue == T[name]) == pytest.approx(means[name], abs=40.0), name


def _classic_digest(root) -> str:
    h = hashlib.sha256()
    for p in sorted((root / "images").glob("*")) + sorted((root / "labels").glob("*")):
        h.update(sitk.GetArrayFromImage(sitk.ReadImage(str(p))).tobytes())
    h.update((root / "hips.csv").read_bytes())
    return h.hexdigest()


def test_classic_generator_unchanged(tmp_path):
    cohort.write_cohort(tmp_path, 2, 5, "mixed", shape=(40, 32, 24), spacing=[3.0])
    assert _classic_digest(tmp_path) == CLASSIC_SHA256
    assert json.loads((tmp_path / "dataset.json").read_text())["anatomy"] == "classic"


def test_cli_realistic_cohort_keeps_the_truth(tmp_path):
    args = ["phantom", "--patients", "2", "--seed", "4", "--modality", "mixed", "--shape", "48", "40", "24",
            "--spacing", "4", "--progress", "none"]
    assert main([*args, "--out", str(tmp_path / "r"), "--generator", "realistic"]) == 0
    assert main([*args, "--out", str(tmp_path / "c")]) == 0
    meta = json.loads((tmp_path / "r" / "dataset.json").read_text())
    assert meta["anatomy"] == "realistic" and meta["generator"] == "ONFHAssistLib.phantom"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "r" / "hips.csv"), pd.read_csv(tmp_path / "c" / "hips.csv"))
    label = sitk.ReadImage(str(tmp_path / "r" / "labels" / "P0040000_S1.nii.gz"))
    assert label.GetSize() == (48, 40, 24) and label.GetSpacing() == (4.0, 4.0, 4.0)


def test_synth_share_gives_listed_scans_random_contrast_and_keeps_every_anatomy(tmp_path):
    kwargs = {"shape": (48, 40, 24), "spacing": [4.0], "generator": "realistic"}
    cohort.write_cohort(tmp_path / "plain", 4, 8, "ct", **kwargs)
    cohort.write_cohort(tmp_path / "synth", 4, 8, "ct", synth_share=0.5, **kwargs)
    meta = json.loads((tmp_path / "synth" / "dataset.json").read_text())
    assert meta["synth_share"] == 0.5 and 0 < len(meta["synth_scans"]) < 4
    for scan in sorted((tmp_path / "plain" / "labels").glob("*.nii.gz")):
        labels, images = ([sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / kind / sub / scan.name)))
                           for kind in ("plain", "synth")] for sub in ("labels", "images"))
        assert np.array_equal(*labels)
        air = images[0] < -900  # the plain CT's air: -1000 HU; a random contrast gives it 0-1000
        synth = scan.name.replace(".nii.gz", "") in meta["synth_scans"]
        assert (np.median(images[1][air]) > -900) == synth, scan.name
    assert main(["phantom", "--out", str(tmp_path / "c"), "--patients", "1", "--synth-share", "0.5"]) == 2
    assert main(["phantom", "--out", str(tmp_path / "c"), "--patients", "1", "--generator", "realistic",
                 "--synth-share", "1.5"]) == 2


def test_two_workers_draw_the_same_cohort_as_one(tmp_path):
    """Patients drawn in parallel processes: same images, labels, hips.csv and random-contrast list."""
    kwargs = {"shape": (48, 40, 24), "spacing": [4.0], "generator": "realistic", "synth_share": 0.5}
    cohort.write_cohort(tmp_path / "one", 3, 8, "mixed", **kwargs)
    assert main(["phantom", "--out", str(tmp_path / "two"), "--patients", "3", "--seed", "8", "--modality", "mixed",
                 "--shape", "48", "40", "24", "--spacing", "4", "--generator", "realistic", "--synth-share", "0.5",
                 "--workers", "2", "--progress", "none"]) == 0
    for sub in ("images", "labels"):
        names = sorted(p.name for p in (tmp_path / "one" / sub).glob("*.nii.gz"))
        assert names == sorted(p.name for p in (tmp_path / "two" / sub).glob("*.nii.gz")) and len(names) == 3
        for name in names:
            one, two = (sitk.ReadImage(str(tmp_path / run / sub / name)) for run in ("one", "two"))
            assert np.array_equal(sitk.GetArrayFromImage(one), sitk.GetArrayFromImage(two)), name
            assert one.GetOrigin() == two.GetOrigin() and one.GetDirection() == two.GetDirection()
    assert (tmp_path / "one" / "hips.csv").read_bytes() == (tmp_path / "two" / "hips.csv").read_bytes()
    assert json.loads((tmp_path / "one" / "dataset.json").read_text()) == \
        json.loads((tmp_path / "two" / "dataset.json").read_text())
    assert main(["phantom", "--out", str(tmp_path / "c"), "--patients", "1", "--workers", "0"]) == 2


def test_abdomen_pelvis_ct_can_end_inside_the_femoral_heads():
    """Its last slice lies 10–40 mm (× habitus scale, ± the 8 mm field-of-view jitter) below the head centres."""
    anat, hab = _patient(0)
    drawn = [realistic.sample_spec(np.random.default_rng(seed), anat, hab, "ct") for seed in range(60)]
    lowest = []
    for spec, fov in drawn:
        if fov == "abdomen_pelvis":
            centre = anat.rotation().T @ np.asarray(spec.center_offset_mm) + cohort.FOV_CENTRE_ANATOMY
            lowest.append(centre[2] - (spec.size[2] - 1) * spec.spacing[2] / 2.0)
    assert len(lowest) >= 5
    assert all(-40.0 * hab.scale - 8.5 <= z <= -10.0 * hab.scale + 8.5 for z in lowest), lowest
    assert min(lowest) < -25.0 and max(lowest) > -20.0  # the edge is drawn, not fixed


def test_thick_slices_average_their_sub_slices(monkeypatch):
    """Slice profile: at 3 mm the cortex of the femoral heads, a thin shell that the slices cut obliquely,
    is averaged with the marrow and cartilage beside it (lower median HU than point sampling gives), while
    the truth is the label at each slice's centre."""
    anat, hab = _patient(0)
    spec = _spec(anat, size=(88, 60, 70), spacing=(4.0, 4.0, 3.0))
    renders = {}
    for sub in (1, realistic.SUBSLICES):
        monkeypatch.setattr(realistic, "SUBSLICES", sub)
        renders[sub] = realistic.render(anat, hab, spec, "ct", np.random.default_rng(2))
    point, label, tissue = (sitk.GetArrayFromImage(i) for i in renders[1])
    profile, label_p, tissue_p = (sitk.GetArrayFromImage(i) for i in renders[realistic.SUBSLICES])
    assert np.array_equal(label, label_p)  # geometry only; soft-tissue fields are random, so the maps differ a little
    assert np.mean(tissue == tissue_p) > 0.95
    cortex = np.argwhere((tissue == T["cortex"]) & (label == 2))
    where = _points(renders[1][0], cortex)
    near_head = np.zeros(len(cortex), bool)
    for hip in anat.hips:
        near_head |= np.linalg.norm(where - anat.head_center_lps(hip), axis=1) < hip.head_radius_mm + 1.0
    head_cortex = tuple(cortex[near_head].T)  # a shell one voxel thin: not eroded as `_median` would
    assert len(head_cortex[0]) > 100
    assert np.median(profile[head_cortex]) < np.median(point[head_cortex]) - 40.0
    assert _median(profile, tissue == T["fat"]) == pytest.approx(_median(point, tissue == T["fat"]), abs=10.0)
