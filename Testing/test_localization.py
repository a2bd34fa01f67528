"""Localiser plumbing: orientation-free input grid, heatmap encode/decode, and 'not found' reasons."""
import numpy as np
import SimpleITK as sitk
import pytest

from ONFHAssistLib.imaging import io
from ONFHAssistLib.analysis import localization


def _volume():
    rng = np.random.default_rng(0)
    array = rng.normal(100, 20, size=(29, 41, 53)).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 1.5, 3.0))
    image.SetOrigin((-37.13, -29.41, -44.27))  # off the 6 mm lattice: no voxel edge lies exactly on a grid point
    return image


def test_localizer_input_does_not_depend_on_storage_orientation():
    image = _volume()
    reference, grid = localization.localizer_input(image, "mr_t1")
    for code in ("RAS", "LPI", "RPI", "SLA"):  # the same scan stored in other voxel orders
        other, other_grid = localization.localizer_input(sitk.DICOMOrient(image, code), "mr_t1")
        assert other.shape == reference.shape and other_grid.GetOrigin() == pytest.approx(grid.GetOrigin())
        assert np.allclose(other, reference, atol=1e-4)


def test_grid_covers_the_scan_and_is_a_multiple_of_16():
    image = _volume()
    _, grid = localization.localizer_input(image, "ct")
    assert all(n % localization.MULTIPLE == 0 for n in grid.GetSize())
    assert np.allclose(grid.GetDirection(), np.eye(3).ravel())
    for corner in np.ndindex(2, 2, 2):
        point = io.index_to_physical(image, np.array(corner) * (np.array(image.GetSize()) - 1))
        idx = io.physical_to_index(grid, point)
        assert np.all(idx >= -0.5) and np.all(idx <= np.array(grid.GetSize()) - 0.5)


def test_heatmap_peaks_decode_to_the_centres_and_sides():
    _, grid = localization.localizer_input(_volume(), "ct")
    centres = {"R": [-60.3, 3.1, -7.7], "L": [98.9, -6.2, 11.4]}
    heat = localization.heatmap_target(grid, centres.values())
    peaks = localization.decode_peaks(heat, grid)
    assert all(height > 0.8 for _, height in peaks[:2])
    sides = localization.assign_sides(peaks, midline_x=30.0)
    for side, centre in centres.items():
        assert np.linalg.norm(np.array(sides[side][0]) - centre) < 0.3


def test_the_strongest_side_by_side_pair_wins():
    peaks = [([-40.0, -240.0, 350.0], 0.9),  # a bright spot high in the abdomen, no partner
             ([80.0, -170.0, 115.0], 0.7), ([130.0, -90.0, 110.0], 0.6), ([-80.0, -150.0, 130.0], 0.5)]
    sides = localization.assign_sides(peaks, midline_x=0.0)
    assert sides["R"][0] == [-80.0, -150.0, 130.0] and sides["L"][0] == [80.0, -170.0, 115.0]


def test_a_single_peak_is_never_mirrored_into_a_second_head():
    peaks = [([-60.0, 0.0, 0.0], 0.9), ([40.0, 80.0, 0.0], 0.05)]
    sides = localization.assign_sides(peaks, midline_x=-5.0)
    assert sides == {"R": ([-60.0, 0.0, 0.0], 0.9)}  # the weak left peak is below CANDIDATE_MIN_HEIGHT
    assert localization.assign_sides(peaks, midline_x=-80.0) == {"L": ([-60.0, 0.0, 0.0], 0.9)}


def test_each_side_ranks_its_candidates_pair_first():
    peaks = [([-40.0, -240.0, 350.0], 0.9), ([80.0, -170.0, 115.0], 0.7), ([-80.0, -150.0, 130.0], 0.5),
             ([-120.0, -100.0, 60.0], 0.3), ([5.0, -100.0, 60.0], 0.1)]
    ranked = localization.side_candidates(peaks, midline_x=0.0)
    assert [p for p, _ in ranked["R"]] == [[-80.0, -150.0, 130.0], [-40.0, -240.0, 350.0], [-120.0, -100.0, 60.0]]
    assert [p for p, _ in ranked["L"]] == [[80.0, -170.0, 115.0]]


def _ct_with_ball(value):
    array = np.full((40, 40, 40), -50.0, np.float32)
    zz, yy, xx = np.indices(array.shape)
    array[(zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 < 64] = value  # a ball of radius 16 mm (17 ml)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 2.0))
    return image, list(io.index_to_physical(image, (20, 20, 20)))


def test_metal_near_a_candidate_refuses_the_hip():
    image, centre = _ct_with_ball(3000.0)
    estimate = localization.screen(image, "ct", "L", centre, 0.9)
    assert not estimate.found and estimate.reason.startswith("metal in the hip")
    assert estimate.extras["metal_ml"] == pytest.approx(localization.metal_volume_ml(image, centre), abs=0.005)


def test_metal_volume_counts_the_scans_own_voxels():
    image, centre = _ct_with_ball(3000.0)  # voxels of 8 µl, all within 16 mm of the centre
    inside = int(np.sum(sitk.GetArrayViewFromImage(image) > localization.METAL_HU))
    assert localization.metal_volume_ml(image, centre) == pytest.approx(inside * 8.0 / 1000.0)
    assert localization.metal_volume_ml(image, [centre[0] + 500.0, centre[1], centre[2]]) == 0.0


def test_native_bone_passes_and_out_of_view_is_refused():
    image, centre = _ct_with_ball(600.0)
    assert localization.screen(image, "ct", "R", centre, 0.9).found
    outside = localization.screen(image, "ct", "R", [500.0, 0.0, 0.0], 0.9)
    assert not outside.found and "field of view" in outside.reason


def test_without_a_midline_every_peak_is_a_candidate_for_both_sides():
    peaks = [([-90.0, 0.0, 0.0], 0.8), ([10.0, 0.0, 0.0], 0.5)]
    ranked = localization.side_candidates(peaks, midline_x=None)
    assert ranked["R"] == ranked["L"] == peaks


def _body_scan(width_mm: float, shift_mm: float = 0.0, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> sitk.Image:
    """A CT of a 300 × 200 mm elliptic body in air, `width_mm` wide in LPS x and centred `shift_mm` off it."""
    n = (int(width_mm / 4), 60, 20)
    image = sitk.Image(n, sitk.sitkFloat32)
    image.SetSpacing((4.0, 4.0, 4.0))
    image.SetDirection(direction)
    half = (np.array(n) - 1) * 4.0 / 2.0
    image.SetOrigin(tuple(np.array([shift_mm, 0.0, 0.0]) - np.array(direction).reshape(3, 3) @ half))
    points = np.array([io.index_to_physical(image, idx) for idx in np.ndindex(*n)])
    inside = (points[:, 0] / 150.0) ** 2 + (points[:, 1] / 100.0) ** 2 <= 1.0
    values = np.where(inside, 40.0, -1000.0).reshape(n)  # ndindex runs x slowest: (x, y, z) order
    out = sitk.GetImageFromArray(values.transpose(2, 1, 0).astype(np.float32))
    out.CopyInformation(image)
    return out


def test_the_midline_is_the_body_centre_the_cut_edge_or_unknown():
    whole = _body_scan(400.0)  # air on both sides of the body
    assert localization.midline_x(whole, "ct") == localization.body_midline_x(whole)
    right_hip = _body_scan(200.0, shift_mm=-90.0)  # x −190…10: the body goes on beyond the +x edge
    assert localization.midline_x(right_hip, "ct") == pytest.approx(10.0, abs=8.0)  # that edge (8 mm grid)
    flipped = (-1, 0, 0, 0, -1, 0, 0, 0, 1)  # stored RAS-wise: still decided along LPS x
    left_hip = _body_scan(200.0, shift_mm=90.0, direction=flipped)
    assert localization.midline_x(left_hip, "ct") == pytest.approx(-10.0, abs=8.0)
    assert localization.midline_x(_body_scan(120.0), "ct") is None  # inside the body at both edges
