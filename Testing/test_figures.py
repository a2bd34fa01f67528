"""The report's key images: slices through the lesion centroid, orientation letters from the direction
matrix, a window per modality and one colour scale per map for the whole scan, checked on the quantities
`figures.key_images` draws with (a small synthetic scan whose lesion centre is known by construction)."""
import io as bytes_io

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from ONFHAssistLib.analysis import figures
from ONFHAssistLib.analysis.figures import PLANES

HEAD = np.array([0.0, 0.0, 0.0])  # LPS mm
LESION = np.array([0.0, -8.0, 12.0])  # anterosuperior: the axial plane through the head centre misses it
OTHER_HEAD = np.array([40.0, 0.0, 0.0])


def _volume(values: np.ndarray, pixel=sitk.sitkFloat32) -> sitk.Image:
    """An LPS grid of 64³ voxels of 2 mm whose voxel (32, 32, 32) sits at the LPS origin."""
    image = sitk.Cast(sitk.GetImageFromArray(values), pixel)
    image.SetSpacing((2.0, 2.0, 2.0))
    image.SetOrigin((-64.0, -64.0, -64.0))
    return image


def _distance(point) -> np.ndarray:
    z, y, x = np.mgrid[:64, :64, :64]
    return np.sqrt((x * 2 - 64 - point[0]) ** 2 + (y * 2 - 64 - point[1]) ** 2 + (z * 2 - 64 - point[2]) ** 2)


@pytest.fixture(scope="module")
def scan():
    """CT-like scan (HU) with a femoral head, an acetabular shell, a lesion inside the head and a second head."""
    labels = np.zeros((64, 64, 64), np.uint8)
    labels[(_distance(HEAD) > 23) & (_distance(HEAD) < 26) & (_distance(HEAD + [0, 0, 30]) < 40)] = 1
    labels[_distance(HEAD) <= 20] = 2
    labels[_distance(OTHER_HEAD) <= 12] = 2
    labels[_distance(LESION) <= 6] = 3
    hu = np.choose(labels, [0.0, 1000.0, 300.0, 700.0]).astype(np.float32)
    attention = np.where(_distance(HEAD) < 16, 0.2, 0.0) + np.where(_distance(OTHER_HEAD) < 10, 0.05, 0.0)
    gradcam = np.clip(1 - _distance(LESION) / 30, 0, None)
    return _volume(hu), {"labels": _volume(labels, sitk.sitkUInt8), "attention": _volume(attention),
                         "gradcam": _volume(gradcam)}


@pytest.fixture(scope="module")
def drawn(scan):
    """Key images of both hips of the scan (small PNGs: the quantities are what these tests read)."""
    image, maps = scan
    return {"R": figures.key_images(image, maps, _hip(), "ct", dpi=30),
            "L": figures.key_images(image, maps, _hip("L", OTHER_HEAD, 12.0, stage=0, necrosis=0.0), "ct", dpi=30)}


def _hip(side="R", centre=HEAD, radius=20.0, stage=2, necrosis=0.9):
    return {"side": side, "found": True, "center_lps": list(centre), "radius_mm": radius,
            "stage": {"arco": {"label": ["0", "I", "II"][stage], "index": stage}},
            "volumes_ml": {"necrosis": necrosis}, "sranet": {"probability": 0.9}}


def _stored(image: sitk.Image, code: str) -> sitk.Image:
    """The same physical scan stored with other voxel axes (e.g. 'RAS': x and y flipped; 'SLP': permuted)."""
    return sitk.DICOMOrient(image, code)


def test_the_lesion_centre_is_the_centroid_of_this_hips_necrosis_voxels(scan):
    image, maps = scan
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(maps["labels"])
    assert np.allclose(stats.GetCentroid(3), LESION, atol=1e-6)  # the oracle agrees with the construction
    for code in ("LPS", "RAS", "SLP"):
        assert np.allclose(figures.lesion_centre(_stored(maps["labels"], code), _hip()), LESION, atol=1e-6)
    assert figures.lesion_centre(maps["labels"], _hip("L", OTHER_HEAD, 12.0)) is None  # not the other hip's lesion


def test_the_slices_go_through_the_lesion_centroid_and_show_the_lesion(scan, drawn):
    _, maps = scan
    key = drawn["R"]
    assert key.through == "lesion" and np.allclose(key.centre_lps, LESION)
    # the scan's own slice numbers of the lesion centre: voxel index = (LPS mm + 64) / 2
    assert key.slice_index == {"axial": (38, 64), "coronal": (28, 64), "sagittal": (32, 64)}
    for plane in PLANES.values():
        assert (figures.plane_slice(maps["labels"], key.centre_lps, plane, label=True) == 3).any()
    # the old panels went through the head centre and missed this lesion in the axial plane
    assert not (figures.plane_slice(maps["labels"], HEAD, PLANES["axial"], label=True) == 3).any()


def test_without_a_lesion_the_slices_go_through_the_head_centre(drawn):
    key = drawn["L"]
    assert key.through == "head" and np.allclose(key.centre_lps, OTHER_HEAD)
    assert key.slice_index["sagittal"] == (52, 64)


def test_slice_numbers_follow_the_storage_order_of_the_scan(scan):
    image, _ = scan
    ras = _stored(image, "RAS")  # x and y voxel axes reversed: index k becomes 63 - k
    assert figures.slice_position(ras, LESION, PLANES["sagittal"]) == (63 - 32, 64)
    assert figures.slice_position(ras, LESION, PLANES["coronal"]) == (63 - 28, 64)
    assert figures.slice_position(ras, LESION, PLANES["axial"]) == (38, 64)


@pytest.mark.parametrize("direction, plane, expected", [
    (np.eye(3), "axial", "R L A P"),  # radiological: patient's right on the viewer's left, anterior up
    (np.eye(3), "coronal", "R L S I"),
    (np.eye(3), "sagittal", "A P S I"),
    (np.diag([-1.0, 1.0, 1.0]), "axial", "L R A P"),  # x stored right-to-left: left and right swap
    (np.diag([-1.0, -1.0, 1.0]), "axial", "L R P A"),  # RAS storage
    (np.diag([1.0, 1.0, -1.0]), "coronal", "R L I S"),  # z stored head-to-foot
    (np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float), "axial", "A P I S"),  # permuted axes: letters follow
])
def test_orientation_letters_follow_the_direction_matrix(direction, plane, expected):
    letters = figures.edge_letters(direction.ravel(), PLANES[plane])
    assert " ".join(letters[e] for e in ("left", "right", "top", "bottom")) == expected


def test_a_scan_stored_flipped_is_shown_in_the_same_radiological_orientation(scan, drawn):
    """The display grid is resampled through the scan's direction cosines, so the storage order of the
    voxels changes neither the picture nor its letters."""
    image, maps = scan
    for code in ("RAS", "SLP"):
        for plane in PLANES.values():
            assert np.allclose(figures.plane_slice(_stored(image, code), LESION, plane),
                               figures.plane_slice(image, LESION, plane))
        assert figures.key_images(_stored(image, code), maps, _hip(), "ct", dpi=30).letters == drawn["R"].letters


def test_ct_gets_a_fixed_bone_window_and_mr_the_percentiles_of_its_pixels():
    rng = np.random.default_rng(0)
    pixels = np.concatenate([rng.normal(500.0, 150.0, 5000), [np.nan] * 100])  # NaN: outside the scan
    assert figures.display_window("ct", pixels) == (300.0 - 600.0, 300.0 + 600.0)  # W 1200 / L 300 HU
    assert figures.display_window("ct", pixels * 3) == (-300.0, 900.0)
    assert np.allclose(figures.display_window("mr_t1", pixels), np.nanpercentile(pixels, (1, 99.5)))


def test_the_colour_scales_are_the_same_for_both_hips(drawn):
    right, left = drawn["R"], drawn["L"]
    assert right.limits == left.limits
    assert right.limits["gradcam"] == (0.0, 1.0)
    assert right.limits["attention"] == pytest.approx((0.0, 0.2))  # the scan's maximum, not the hip's (0.05)


@pytest.mark.parametrize("stage, necrosis, evidence", [(2, 0.9, True), (0, 0.0, False), (2, 0.0, False),
                                                      (0, 0.9, False)])
def test_gradcam_reads_as_evidence_only_for_a_predicted_onfh_stage_with_a_lesion(stage, necrosis, evidence):
    assert figures.gradcam_is_evidence(_hip(stage=stage, necrosis=necrosis)) is evidence
    assert figures.gradcam_is_evidence({"stage": {}, "volumes_ml": None}) is False


def test_the_key_images_are_large_enough_to_print(scan):
    image, maps = scan
    png = figures.key_images(image, maps, _hip(), "ct").png
    width, height = Image.open(bytes_io.BytesIO(png)).size
    assert width / 7.5 >= 150 and height >= 1100  # ≥ 150 dpi across an A4 page's 7.5-inch text width


def test_the_segment_overlay_has_orientation_letters_that_agree_with_the_anatomy(scan, monkeypatch, tmp_path):
    """`coronal_overlay_png` (onfh segment): the second head (patient's left, +x) lies on the side lettered L
    and the acetabular shell (above the head) on the side lettered S, also for a scan stored as RAS."""
    image, maps = scan
    drawn = []
    monkeypatch.setattr(figures, "_save_png", lambda fig, path: drawn.append(fig) or path)
    hips = [_hip(), {"side": "L", "found": False, "reason": "not looked for", "candidate_lps": None}]
    for code in ("LPS", "RAS"):
        figures.coronal_overlay_png(_stored(image, code), _stored(maps["labels"], code), hips, tmp_path / "o.png", "t")
        ax = drawn[-1].axes[0]
        where = {t.get_text(): t.get_position() for t in ax.texts}
        assert set(where) == {"R", "L", "S", "I"}
        labels = np.asarray(ax.images[1].get_array())  # rows: I→S (origin lower), columns: 1 mm across 160 mm
        other_head = np.argwhere(labels[:, 110:] == 2)  # x > +30 mm: only the second head
        shell_rows = np.argwhere(labels == 1)[:, 0]
        assert len(other_head) and where["L"][0] > 0.9 and where["R"][0] < 0.1
        assert shell_rows.mean() > 80 and where["S"][1] > 0.9 and where["I"][1] < 0.1
