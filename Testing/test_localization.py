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


def test_a_single_head_takes_its_side_from_the_midline():
    peaks = [([-60.0, 0.0, 0.0], 0.9), ([40.0, 80.0, 0.0], 0.05)]
    sides = localization.assign_sides(peaks, midline_x=-5.0)
    assert sides["R"][0] == [-60.0, 0.0, 0.0] and sides["L"][1] == 0.0
    assert sides["L"][0][0] == pytest.approx(50.0)  # the mirror of the found head about the midline
    assert localization.assign_sides(peaks, midline_x=-80.0)["L"][0] == [-60.0, 0.0, 0.0]


def _ct_with_ball(value):
    array = np.full((40, 40, 40), -50.0, np.float32)
    zz, yy, xx = np.indices(array.shape)
    array[(zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 < 64] = value  # a ball of radius 16 mm (17 ml)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 2.0))
    return image, list(io.index_to_physical(image, (20, 20, 20)))


def test_metal_head_is_reported_as_an_implant():
    image, centre = _ct_with_ball(3000.0)
    estimate = localization._judge(image, "ct", "L", centre, 0.9)
    assert not estimate.found and "implant" in estimate.reason


def test_native_bone_passes_and_weak_peaks_are_refused():
    image, centre = _ct_with_ball(600.0)
    assert localization._judge(image, "ct", "R", centre, 0.9).found
    weak = localization._judge(image, "ct", "R", centre, 0.1)
    assert not weak.found and "low confidence" in weak.reason
    outside = localization._judge(image, "ct", "R", [500.0, 0.0, 0.0], 0.9)
    assert not outside.found and "field of view" in outside.reason
