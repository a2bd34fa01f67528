"""Hard negatives for the localiser: no head in view, an all-zero heatmap target, the package slices read right."""
import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
import torch
from ONFHAssistLib.imaging import io
from ONFHAssistLib.imaging.crops import normalise
from ONFHAssistLib.models.localizer import build_localizer
from ONFHAssistLib.training import hard_negatives, localizer_recipe
from ONFHAssistLib.training.scans import Scan

HEAD = np.array([-90.0, 10.0, 0.0])
RADIUS = 24.0


def _volume(flip_z: bool, top_mm: float = 140.0) -> sitk.Image:
    """CT-like box of soft tissue (40 HU) with a bony ball (400 HU) at HEAD, z from −80 mm to top_mm."""
    spacing = np.array([2.0, 2.0, 2.5])
    lo = np.array([-160.0, -90.0, -80.0])
    size = np.round((np.array([160.0, 110.0, top_mm]) - lo) / spacing).astype(int) + 1
    z, y, x = np.meshgrid(*[lo[k] + np.arange(size[k]) * spacing[k] for k in (2, 1, 0)], indexing="ij")
    ball = (x - HEAD[0]) ** 2 + (y - HEAD[1]) ** 2 + (z - HEAD[2]) ** 2 <= RADIUS ** 2
    array = np.where(ball, 400.0, 40.0).astype(np.float32)
    if flip_z:  # stored top slice first, as many DICOM series are
        array = array[::-1]
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing.tolist())
    image.SetOrigin([lo[0], lo[1], float(top_mm if flip_z else lo[2])])
    image.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1) if flip_z else (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return image


@pytest.mark.parametrize("flip_z", [False, True])
def test_the_part_above_the_heads_shows_no_head(flip_z):
    image = _volume(flip_z)
    assert sitk.GetArrayViewFromImage(image).max() == 400.0  # the head is in the full volume
    crop = hard_negatives.headless_above(image, [(HEAD.tolist(), RADIUS)])
    zs = [io.index_to_physical(crop, (0, 0, k))[2] for k in range(crop.GetSize()[2])]
    assert min(zs) >= HEAD[2] + RADIUS + hard_negatives.HEAD_CLEARANCE_MM
    assert max(zs) == pytest.approx(140.0)  # everything above is kept
    assert sitk.GetArrayViewFromImage(crop).max() == 40.0  # not one voxel of the head


def test_no_negative_when_too_little_lies_above_the_heads():
    # 34 mm above the head top minus the clearance leaves 24–30 mm: under the 60 mm a scan must cover
    image = _volume(False, top_mm=HEAD[2] + RADIUS + 40.0)
    assert hard_negatives.headless_above(image, [(HEAD.tolist(), RADIUS)]) is None


def test_package_slab_is_the_dicom_slice_in_hounsfield_units():
    """Oracle: pydicom's own pixel array with its rescale, independent of ITK's reader."""
    slab = hard_negatives.package_slab("CT_small.dcm")
    ds = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    array = sitk.GetArrayFromImage(slab)
    assert array.shape == (hard_negatives.SLAB_SLICES, *hu.shape)
    assert all(np.array_equal(a, hu) for a in array)
    assert min(np.array(slab.GetSize()) * np.array(slab.GetSpacing())) >= io.MIN_EXTENT_MM


def test_recipe_trains_negatives_towards_an_all_zero_heatmap(tmp_path):
    path = tmp_path / "P1_S1.nii.gz"
    sitk.WriteImage(_volume(False), str(path))
    rows = pd.DataFrame({"patient_id": ["P1"], "scan_id": ["P1_S1"], "side": ["R"], "modality": ["ct"],
                         "head_x": [HEAD[0]], "head_y": [HEAD[1]], "head_z": [HEAD[2]], "head_radius_mm": [RADIUS]})
    scan = Scan("P1_S1", "P1", path, None, rows)
    positive = localizer_recipe._cached_inputs([scan], tmp_path / "cache")[0]
    # the whole scan has its head's peak: ≥ exp(−3/2 · (3/9)²) = 0.85 with the centre half a 6 mm cell off a node
    assert positive["target"].max() > 0.8
    items = localizer_recipe._cached_negatives([scan], tmp_path / "cache")
    assert [item["negative"] for item in items] == ["above_P1_S1", "package_CT_small.dcm", "package_693_J2KI.dcm"]
    for item in items:
        assert item["target"].shape == (1, *item["image"].shape)
        assert not item["target"].any(), item["negative"]
    # what the model sees: soft tissue only above the head; bone in the whole scan and in the package CTs
    assert items[0]["image"].max() == pytest.approx(normalise(np.float32([40.0]), "ct")[0], abs=1e-4)
    assert positive["image"].max() == pytest.approx(normalise(np.float32([400.0]), "ct")[0], abs=1e-4)
    assert all(item["image"].max() >= normalise(np.float32([300.0]), "ct")[0] for item in items[1:])
    network = build_localizer(localizer_recipe.FEATURES).train()
    for item in items:  # each one trains: instance normalisation needs more than one bottleneck cell
        heat = network(torch.from_numpy(item["image"])[None, None])
        assert torch.isfinite(localizer_recipe.heatmap_loss(heat, torch.from_numpy(item["target"])[None]))
    again = localizer_recipe._cached_negatives([scan], tmp_path / "cache")  # from the cache
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(items, again))


def test_heatmap_loss_of_a_negative_is_its_mean_squared_prediction():
    pred = torch.rand(1, 1, 4, 5, 6)
    assert torch.isclose(localizer_recipe.heatmap_loss(pred, torch.zeros_like(pred)), (pred ** 2).mean())
    target = torch.zeros_like(pred)
    target[0, 0, 2, 2, 3] = 1.0
    peak = target > localizer_recipe.PEAK_LEVEL
    expected = ((pred - target)[peak] ** 2).mean() + ((pred - target)[~peak] ** 2).mean()
    assert torch.isclose(localizer_recipe.heatmap_loss(pred, target), expected)


def test_each_epoch_draws_half_as_many_negatives_as_scans_without_repeats():
    negatives = [{"negative": f"n{k}"} for k in range(7)]
    rng = np.random.default_rng(0)
    draws = [localizer_recipe._negative_sample(negatives, 10, rng) for _ in range(20)]
    assert all(len({d["negative"] for d in draw}) == len(draw) == 5 for draw in draws)
    assert {d["negative"] for draw in draws for d in draw} == {f"n{k}" for k in range(7)}
    assert len(localizer_recipe._negative_sample(negatives, 1, rng)) == 1
    assert localizer_recipe._negative_sample([], 10, rng) == []


def test_a_file_the_package_does_not_ship_is_left_out(caplog):
    assert hard_negatives.package_slab("not_shipped.dcm") is None
    assert "not_shipped.dcm left out" in caplog.text
