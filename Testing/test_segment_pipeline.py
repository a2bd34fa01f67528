"""Segmentation plumbing with a seeded, untrained DynUNet: exact input grid, mirror equivariance, model errors."""
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from ONFHAssistLib.imaging import io
from ONFHAssistLib.models import store as modelstore, networks
from ONFHAssistLib.cli import main
from ONFHAssistLib.models.segmentation import build_segmenter
from ONFHAssistLib.analysis.segment import segment_hip, to_input_grid


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return build_segmenter((4, 8, 8, 8)).eval()


def _oblique_scan():
    rng = np.random.default_rng(1)
    array = rng.normal(300, 80, size=(40, 60, 90)).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.7, 1.6, 2.3))
    image.SetOrigin((-70.3, -45.1, -40.6))
    c, s = np.cos(0.12), np.sin(0.12)
    image.SetDirection([c, 0, s, 0, 1, 0, -s, 0, c])
    return image


def test_label_map_lands_on_the_input_grid_exactly(network):
    image = _oblique_scan()
    centre = list(io.index_to_physical(image, (30, 30, 20)))
    hip = segment_hip(network, image, centre, "R", "mr_t1", torch.device("cpu"))
    label = to_input_grid([hip], image)
    assert label.GetSize() == image.GetSize()
    assert label.GetSpacing() == image.GetSpacing() and label.GetOrigin() == image.GetOrigin()
    assert label.GetDirection() == image.GetDirection()
    assert set(np.unique(sitk.GetArrayViewFromImage(label))) <= {0, 1, 2, 3}


def test_mirrored_input_gives_the_mirrored_label_map(network):
    """A left hip, and the same scan reflected so that hip becomes a right hip, give the same voxels."""
    image = _oblique_scan()
    centre = io.index_to_physical(image, (60, 30, 20))
    plane = 3.7
    mirrored = io.mirror(image, plane)
    device = torch.device("cpu")
    left = to_input_grid([segment_hip(network, image, list(centre), "L", "mr_t1", device)], image)
    right = to_input_grid([segment_hip(network, mirrored, list(io.mirror_point(centre, plane)), "R", "mr_t1", device)],
                          mirrored)
    a, b = sitk.GetArrayViewFromImage(left), sitk.GetArrayViewFromImage(right)
    assert a.any() and np.mean(a == b) > 0.999  # identical up to interpolation ties at label borders


def test_tampered_or_wrong_models_are_refused(tmp_path, network):
    folder = tmp_path / "seg"
    modelstore.save_model(folder, network, {"name": "t", "task": "segmentation", "version": "1", "features": [4, 8, 8, 8]})
    assert networks.load("segmentation", str(folder), torch.device("cpu"))[0] is not None
    with pytest.raises(Exception, match="cannot be used"):
        networks.load("localizer", str(folder), torch.device("cpu"))
    weights = folder / modelstore.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(Exception, match="checksum"):
        networks.load("segmentation", str(folder), torch.device("cpu"))


def test_evaluate_cli_with_a_missing_model_exits_2(tmp_path, capsys):
    data = tmp_path / "data"
    main(["phantom", "--out", str(data), "--patients", "1", "--seed", "5", "--shape", "40", "40", "30",
          "--spacing", "6", "--progress", "none"])
    code = main(["evaluate", "segmentation", "--data", str(data), "--model", str(tmp_path / "nothing"),
                 "--progress", "none"])
    assert code == 2
    assert "no segmentation model" in capsys.readouterr().err


def test_a_lesion_against_the_pelvis_is_dropped_one_inside_the_head_is_kept():
    """Two lesions of the same size: one subchondral, 3 mm of joint space from the pelvis (kept), one pressed
    against the pelvis label over its whole top (the acetabular roof through an unresolved joint: dropped)."""
    from ONFHAssistLib.analysis.segment import MAX_CONTACT_SHARE, _drop_touching

    pelvis = np.zeros((40, 40, 40), bool)
    pelvis[30:, :, :] = True  # a slab above z = 30
    inside, roof = np.zeros_like(pelvis), np.zeros_like(pelvis)
    inside[20:28, 5:13, 5:13] = True  # top face 4.5 mm below the slab
    inside[28:30, 8, 8] = True  # ... but a two-voxel spike (partial volume) reaches it: one voxel of 514 touches
    roof[22:30, 25:33, 25:33] = True  # top face against the slab: 1/8 of its voxels within 1.5 mm
    kept = _drop_touching(inside | roof, pelvis, (1.5, 1.5, 1.5))
    assert np.array_equal(kept, inside)
    assert 1 / 8 >= MAX_CONTACT_SHARE  # the roof's contact share is what the rule refuses


def test_pelvis_drawn_inside_the_head_becomes_head_and_the_acetabulum_stays_pelvis():
    """A 24 mm head whose medial third the network called pelvis (as on the real CT), in a hemispherical
    acetabulum 3 mm outside it: the head's pelvis voxels turn femur, the acetabulum keeps every voxel, and the
    sphere refitted to the whole head lands on its centre."""
    from ONFHAssistLib.analysis.segment import postprocess

    spacing = np.array([1.5, 1.5, 1.5])
    zyx = (np.indices((64, 64, 64)).T * spacing).T  # mm, (3, z, y, x)
    centre = np.array([48.0, 48.0, 48.0])
    distance = np.sqrt(((zyx - centre[:, None, None, None]) ** 2).sum(0))
    head, acetabulum = distance <= 24.0, (distance >= 27.0) & (distance <= 33.0) & (zyx[0] >= 48.0)
    labels = np.zeros((64, 64, 64), np.uint8)
    labels[head] = 2
    labels[acetabulum] = 1
    medial = head & (zyx[2] >= 60.0)  # the head's medial third
    labels[medial] = 1
    out, sphere = postprocess(labels, np.zeros(3), spacing, (centre + [0.0, 3.0, -4.0])[::-1])
    assert (out[medial & (distance <= 22.5)] == 2).all()
    assert (out[acetabulum] == 1).all()
    assert np.linalg.norm(sphere.center_xyz - centre[::-1]) < 1.0 and abs(sphere.radius_mm - 24.0) < 1.0


def test_the_roof_drawn_as_femur_goes_back_to_the_pelvis_and_the_head_is_fitted_below_it():
    """A 24 mm head seated in an acetabulum with no joint space between them (a thick-slice CT), whose lowest
    4.5 mm over the head's top the network called femur (as on the real CT): that band turns pelvis, and the
    sphere, fitted where the femur faces soft tissue, lands on the head, not on head and band together."""
    from ONFHAssistLib.analysis.segment import ROOF_CONE_DEG, postprocess

    spacing = np.array([1.5, 1.5, 1.5])
    zyx = (np.indices((64, 64, 64)).T * spacing).T  # mm, (3, z, y, x)
    centre = np.array([40.0, 48.0, 48.0])
    distance = np.sqrt(((zyx - centre[:, None, None, None]) ** 2).sum(0))
    up = (zyx[0] - centre[0]) / np.maximum(distance, 1e-6)  # cosine of the angle from straight up (+z)
    head, acetabulum = distance <= 24.0, (distance > 24.0) & (distance <= 33.0) & (up >= 0.0)
    band = acetabulum & (distance <= 28.5) & (up >= np.cos(np.radians(30.0)))
    labels = np.zeros((64, 64, 64), np.uint8)
    labels[head | band] = 2
    labels[acetabulum & ~band] = 1
    out, sphere = postprocess(labels, np.zeros(3), spacing, (centre + [4.0, 3.0, -3.0])[::-1])
    assert (out[band & (distance > 25.5)] == 1).all()  # beyond the head's partial-volume margin: pelvis
    assert (out[head & (distance <= 22.5)] == 2).all() and (out[acetabulum & ~band] == 1).all()
    assert np.linalg.norm(sphere.center_xyz - centre[::-1]) < 0.75 and abs(sphere.radius_mm - 24.0) < 0.75
    assert ROOF_CONE_DEG > 30.0  # the band lies inside the cone the rule clears


def test_segment_hip_reports_the_ct_bone_it_added(network, monkeypatch):
    """A CT whose 20 mm femoral head is bone (140 HU, fatty) in muscle (50 HU); the network draws only its upper
    half. The millilitres the Hounsfield scale adds are the lower half's voxels, counted from the geometry; on MR
    nothing is added."""
    from ONFHAssistLib.analysis import segment

    spacing, centre = 1.5, np.array([60.75, 60.75, 60.75])  # the crop's voxels fall on the image's: no blur
    zyx = (np.indices((80, 80, 80)).T * spacing).T
    ball = (((zyx - centre[:, None, None, None]) ** 2).sum(0) <= 20.0 ** 2)
    image = sitk.GetImageFromArray(np.where(ball, 140.0, 50.0).astype(np.float32))
    image.SetSpacing((spacing,) * 3)
    crop_points = segment.hip_crop(image, centre, "R", segment.INFER_SPEC)  # the crop grid the network sees
    crop_zyx = (np.indices(sitk.GetArrayViewFromImage(crop_points).shape).T * spacing).T + \
        np.array(crop_points.GetOrigin())[::-1, None, None, None]
    crop_ball = ((crop_zyx - centre[:, None, None, None]) ** 2).sum(0) <= 20.0 ** 2
    upper = crop_ball & (crop_zyx[0] >= centre[0])
    real_predict = segment.predict_crop

    def upper_half_only(net, crop, device):
        real_predict(net, crop, device)  # the network still runs: its features are taken as always
        return np.stack([~upper, np.zeros_like(upper), upper, np.zeros_like(upper)]).astype(np.float32)

    monkeypatch.setattr(segment, "predict_crop", upper_half_only)
    ct = segment.segment_hip(network, image, centre, "R", "ct", torch.device("cpu"))
    lower_ml = (crop_ball & ~upper).sum() * spacing ** 3 / 1000.0
    assert ct.bone_added_ml == pytest.approx(lower_ml, rel=1e-6)
    assert segment.segment_hip(network, image, centre, "R", "mr_t1", torch.device("cpu")).bone_added_ml == 0.0


def test_a_lesion_the_scan_cannot_resolve_is_dropped():
    """A 2.1 ml lesion inside a head: kept from a 1 mm or 3 mm scan, dropped from a 5 mm one, where it spans
    fewer than 27 of the scan's own voxels (17 of 125 mm³)."""
    from ONFHAssistLib.analysis.segment import MIN_NECROSIS_ML, min_lesion_ml, postprocess

    spacing = np.array([1.5, 1.5, 1.5])
    zyx = (np.indices((64, 64, 64)).T * spacing).T  # mm, (3, z, y, x)
    centre = np.array([48.0, 48.0, 48.0])
    labels = np.zeros((64, 64, 64), np.uint8)
    labels[((zyx - centre[:, None, None, None]) ** 2).sum(0) <= 24.0 ** 2] = 2
    lesion_centre = centre + [12.0, 0.0, 0.0]
    lesion = ((zyx - lesion_centre[:, None, None, None]) ** 2).sum(0) <= 8.0 ** 2
    labels[lesion] = 3
    lesion_ml = lesion.sum() * spacing.prod() / 1000.0
    assert 2.0 < lesion_ml < 2.3
    assert min_lesion_ml((1.0, 1.0, 1.0)) == MIN_NECROSIS_ML
    assert min_lesion_ml((3.0, 3.0, 3.0)) == MIN_NECROSIS_ML  # 27 × 27 mm³ = 0.73 ml
    assert min_lesion_ml((5.0, 5.0, 5.0)) == pytest.approx(27 * 125 / 1000.0)
    for source, kept in (((1.0, 1.0, 1.0), True), ((3.0, 3.0, 3.0), True), ((5.0, 5.0, 5.0), False)):
        out, sphere = postprocess(labels, np.zeros(3), spacing, centre[::-1], min_ml=min_lesion_ml(source))
        assert sphere is not None
        assert (out == 3).any() == kept, source


def test_the_dropped_lesion_warning_names_the_resolution_floor_only_when_it_applies():
    """27 voxels of 5 × 5 × 5 mm = 3.375 ml, shown as 3.4; at 1 mm the floor is the 0.8 ml speck rule and unnamed."""
    from ONFHAssistLib.analysis.hipfinder import HipFinding
    from ONFHAssistLib.analysis.pipeline import _lesion_dropped
    from ONFHAssistLib.analysis.segment import HipSegmentation, min_lesion_ml

    def warning(spacing, dropped_ml):
        seg = HipSegmentation("R", None, [0.0, 0.0, 0.0], None, None, dropped_ml, min_lesion_ml(spacing))
        return _lesion_dropped(HipFinding(None, seg, None))

    assert "under 3.4 ml" in warning((5.0, 5.0, 5.0), 0.7) and warning((5.0, 5.0, 5.0), 0.7).startswith("0.7 ml")
    assert "resolve" not in warning((1.0, 1.0, 1.0), 0.7)
    assert warning((5.0, 5.0, 5.0), 0.01) == ""
