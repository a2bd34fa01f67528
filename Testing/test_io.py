"""io.py against independent oracles: exact geometry algebra, linear fields, and file round trips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from ONFHAssistLib.imaging import io
from ONFHAssistLib.errors import InputError
from ONFHAssistLib.phantom.anatomy import rotation_matrix

REAL_CT = Path(__file__).resolve().parents[2] / "shared/data/real/totalsegmentator_example/example_ct.nii.gz"


def _oblique_image(angles, spacing, origin, size=(12, 11, 10)) -> sitk.Image:
    img = sitk.Image(list(size), sitk.sitkFloat64)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(rotation_matrix(angles).ravel().tolist())
    return img


# Angles of 0 < |a| < 1e-6 degrees are left out: their direction cosines go subnormal (< 1e-308), where
# ITK's index/physical transforms return NaN; no scanner writes such a direction.
ANGLE = st.floats(-40, 40).filter(lambda a: a == 0.0 or abs(a) > 1e-6)
geometry = st.tuples(
    st.tuples(*[ANGLE] * 3),
    st.tuples(*[st.floats(0.4, 3.0)] * 3),
    st.tuples(*[st.floats(-200, 200)] * 3),
    st.floats(-150, 150),
)


@settings(max_examples=40, deadline=None)
@given(geometry)
def test_mirror_twice_is_identity(geom):
    angles, spacing, origin, plane = geom
    img = _oblique_image(angles, spacing, origin)
    arr = np.random.default_rng(0).normal(size=img.GetSize()[::-1])
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(_oblique_image(angles, spacing, origin))
    back = io.mirror(io.mirror(img, plane), plane)
    np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(back.GetDirection(), img.GetDirection(), atol=1e-12)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), arr)


@settings(max_examples=40, deadline=None)
@given(geometry, st.tuples(*[st.floats(0, 1)] * 3))
def test_point_through_mirror_and_crop_and_back(geom, frac):
    angles, spacing, origin, plane = geom
    img = _oblique_image(angles, spacing, origin)
    point = io.index_to_physical(img, np.array(frac) * (np.array(img.GetSize()) - 1))
    mirrored = io.mirror(img, plane)
    # The voxel that held `point` sits at the reflected point in the mirrored image.
    idx = io.physical_to_index(img, point)
    np.testing.assert_allclose(io.index_to_physical(mirrored, idx), io.mirror_point(point, plane), atol=1e-6)
    crop = io.crop_box(mirrored, io.mirror_point(point, plane) + 3.0, 30.0, (0.7, 0.9, 1.1))
    in_crop = io.physical_to_index(crop, io.mirror_point(point, plane))
    back = io.mirror_point(io.index_to_physical(crop, in_crop), plane)
    assert np.linalg.norm(back - point) < 1e-6


@settings(max_examples=15, deadline=None)
@given(geometry)
def test_crop_of_mirrored_linear_field_samples_the_reflection(geom):
    """Linear interpolation is exact on a linear field, so crop values must equal f(reflected point)."""
    angles, spacing, origin, plane = geom
    ref = _oblique_image(angles, spacing, origin, size=(20, 20, 20))
    coeff = np.array([0.3, -0.7, 1.1])
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in ref.GetSize()], indexing="ij"), -1).reshape(-1, 3)
    phys = np.asarray(ref.GetOrigin()) + idx @ (np.array(ref.GetDirection()).reshape(3, 3) @ np.diag(spacing)).T
    arr = np.zeros(ref.GetSize()[::-1])
    arr[idx[:, 2], idx[:, 1], idx[:, 0]] = phys @ coeff
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(ref)
    centre = io.index_to_physical(img, np.array(img.GetSize()) / 2.0)
    mirrored = io.mirror(img, plane)
    crop = io.crop_box(mirrored, io.mirror_point(centre, plane), 4 * min(spacing), min(spacing))
    values = sitk.GetArrayFromImage(crop)
    for k in [(0, 0, 0), (1, 2, 3), tuple(np.array(crop.GetSize()) - 1)]:
        q = io.index_to_physical(crop, k)
        assert values[k[2], k[1], k[0]] == pytest.approx(io.mirror_point(q, plane) @ coeff, abs=1e-6)


def test_write_read_round_trip_all_formats(tmp_path):
    rng = np.random.default_rng(1)
    img = sitk.GetImageFromArray(rng.integers(-1000, 3000, size=(9, 10, 11)).astype(np.int16))
    img.SetSpacing((0.8, 1.2, 2.5))
    img.SetOrigin((-10.5, 20.25, 3.0))
    img.SetDirection(rotation_matrix((5, -10, 20)).ravel().tolist())
    for suffix in (".nii.gz", ".nrrd", ".mha"):
        back = io.read_image(io.write_image(img, tmp_path / f"v{suffix}"))
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(img))
        np.testing.assert_allclose(back.GetSpacing(), img.GetSpacing(), atol=1e-5)
        np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(back.GetDirection(), img.GetDirection(), atol=1e-5)
    assert not list(tmp_path.glob(".tmp-*"))


def test_dicom_series_round_trip(tmp_path):
    img = sitk.GetImageFromArray(np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8))
    img.SetSpacing((0.7, 0.7, 2.0))
    img.SetOrigin((1.0, -2.0, 30.0))
    back = io.read_image(io.write_dicom_series(img, tmp_path / "series"))
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(img))
    np.testing.assert_allclose(back.GetSpacing(), img.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-4)


def test_orientation_code_and_canonical():
    img = sitk.Image([5, 6, 7], sitk.sitkUInt8)
    img.SetDirection(np.diag([-1.0, -1.0, 1.0]).ravel().tolist())
    assert io.orientation_code(img) == "RAS"
    can = io.canonical(img)
    assert io.orientation_code(can) == "LPS"
    # Same physical extent: the far corner of one is a corner of the other.
    corners = {tuple(np.round(io.index_to_physical(can, np.array(c) * (np.array(can.GetSize()) - 1)), 6))
               for c in np.ndindex(2, 2, 2)}
    assert tuple(np.round(io.index_to_physical(img, (4, 5, 0)), 6)) in corners


def _write_nrrd(path: Path, header: str, data: bytes = b"") -> Path:
    path.write_bytes(header.encode() + b"\n" + data)
    return path


def _bad_inputs(tmp: Path) -> dict[str, Path]:
    good = sitk.GetImageFromArray(np.zeros((8, 8, 8), np.int16))
    io.write_image(good, tmp / "good.nii.gz")
    raw = (tmp / "good.nii.gz").read_bytes()
    cases = {"missing": tmp / "nothing.nii.gz"}
    (tmp / "trunc.nii.gz").write_bytes(raw[: len(raw) // 2])
    cases["truncated gzip"] = tmp / "trunc.nii.gz"
    (tmp / "magic.nii").write_bytes(b"this is not an image" * 30)
    cases["wrong magic"] = tmp / "magic.nii"
    sitk.WriteImage(sitk.Image([8, 8], sitk.sitkInt16), str(tmp / "flat.nrrd"))
    cases["2D"] = tmp / "flat.nrrd"
    sitk.WriteImage(sitk.Image([4, 4, 4, 3], sitk.sitkInt16), str(tmp / "four.nii.gz"))
    cases["4D"] = tmp / "four.nii.gz"
    sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkVectorFloat32, 3), str(tmp / "vec.nrrd"))
    cases["vector"] = tmp / "vec.nrrd"
    nan = np.zeros((8, 8, 8), np.float32)
    nan[2, 3, 4] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(nan), str(tmp / "nan.nrrd"))
    cases["NaN"] = tmp / "nan.nrrd"
    inf = nan.copy()
    inf[2, 3, 4] = np.inf
    sitk.WriteImage(sitk.GetImageFromArray(inf), str(tmp / "inf.mha"))
    cases["Inf"] = tmp / "inf.mha"
    body = np.zeros((8, 8, 8), np.int16).tobytes()
    cases["zero spacing"] = _write_nrrd(tmp / "zsp.nrrd", "NRRD0004\ntype: short\ndimension: 3\nsizes: 8 8 8\n"
                                        "space: left-posterior-superior\nspace directions: (0,0,0) (0,1,0) (0,0,1)\n"
                                        "space origin: (0,0,0)\nendian: little\nencoding: raw\n", body)
    cases["singular direction"] = _write_nrrd(tmp / "sing.nrrd", "NRRD0004\ntype: short\ndimension: 3\nsizes: 8 8 8\n"
                                              "space: left-posterior-superior\nspace directions: (1,0,0) (1,0,0) (0,0,1)\n"
                                              "space origin: (0,0,0)\nendian: little\nencoding: raw\n", body)
    sitk.WriteImage(sitk.Image([1, 1, 1], sitk.sitkInt16), str(tmp / "one.nrrd"))
    cases["1 voxel"] = tmp / "one.nrrd"
    cases["huge header"] = _write_nrrd(tmp / "huge.nrrd", "NRRD0004\ntype: short\ndimension: 3\n"
                                       "sizes: 100000 100000 100000\nendian: little\nencoding: raw\n", b"\0" * 64)
    (tmp / "empty_dir").mkdir()
    cases["folder without DICOM"] = tmp / "empty_dir"
    return cases


def test_bad_inputs_raise_one_clear_sentence(tmp_path):
    for name, path in _bad_inputs(tmp_path).items():
        with pytest.raises(InputError) as err:
            io.read_image(path)
        message = str(err.value)
        assert str(path) in message, name
        assert "\n" not in message and message.endswith("."), (name, message)


def test_cli_turns_bad_input_into_exit_2(tmp_path, capsys):
    from ONFHAssistLib.cli import main

    assert main(["dataset", "validate", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    assert main(["phantom", "--out", str(tmp_path / "x"), "--patients", "0"]) == 2
    assert main(["no-such-command"]) == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(not REAL_CT.exists(), reason="shared real CT not present")
def test_real_ct_loads_round_trips_and_reports_orientation(tmp_path):
    img = io.read_image(REAL_CT)
    assert img.GetSize() == (122, 101, 112)
    np.testing.assert_allclose(img.GetSpacing(), (3.0, 3.0, 3.0), atol=1e-4)
    # SimpleITK reports the NIfTI header's orientation; compare with nibabel-free arithmetic on the sform.
    direction = np.array(img.GetDirection()).reshape(3, 3)
    assert io.orientation_code(img) == sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(direction.ravel())
    summary = io.describe(img)
    assert summary["size"] == [122, 101, 112] and summary["intensity_range"][1] > 2000
    for suffix in (".nii.gz", ".nrrd"):
        back = io.read_image(io.write_image(img, tmp_path / f"ct{suffix}"))
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(img))
        assert back.GetPixelID() == img.GetPixelID()
        np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(back.GetDirection(), img.GetDirection(), atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(geometry, st.sampled_from(["R", "L"]))
def test_hip_crop_and_its_in_view_mask_match_cropping_a_mirrored_copy(geom, side):
    """`hip_crop` reflects the box's grid instead of copying the scan, and `crops.in_view` reads the scan's
    extent from its geometry: both must give what mirroring the whole image and cropping it gives."""
    from ONFHAssistLib.imaging.crops import CropSpec, hip_crop, in_view
    angles, spacing, origin, _ = geom
    grid = _oblique_image(angles, spacing, origin, size=(20, 18, 16))
    img = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=grid.GetSize()[::-1]))
    img.CopyInformation(grid)
    corner = io.index_to_physical(img, (2, 3, 1))  # near an edge: part of the crop lies outside the scan
    spec = CropSpec(box_mm=24.0, spacing_mm=1.5)
    source = io.mirror(img, corner[0]) if side == "L" else img
    old = io.crop_box(source, corner, spec.box_mm, spec.spacing_mm)
    new = hip_crop(img, corner, side, spec)
    np.testing.assert_allclose(sitk.GetArrayFromImage(new), sitk.GetArrayFromImage(old), atol=1e-5)
    ones = sitk.Image(img.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(img)
    scanned = sitk.GetArrayFromImage(io.crop_box(io.mirror(ones, corner[0]) if side == "L" else ones, corner,
                                                 spec.box_mm, spec.spacing_mm, label=True)) > 0
    mask = in_view(img, corner, side, spec)
    assert 0 < scanned.sum() < scanned.size
    assert (mask != scanned).mean() < 0.01  # only points exactly half a voxel from the edge may differ


@settings(max_examples=20, deadline=None)
@given(geometry)
def test_points_inside_reads_the_index_as_simpleitk_does(geom):
    """`io.points_inside` maps points to continuous indices with its own matrix; SimpleITK's transform is the oracle."""
    angles, spacing, origin, _ = geom
    img = _oblique_image(angles, spacing, origin)
    indices = np.random.default_rng(1).uniform(-1.0, 1.0, (50, 3)) * np.array(img.GetSize())
    points = np.array([io.index_to_physical(img, k) for k in indices])  # about half inside, half outside
    expected = [np.all(np.array(img.TransformPhysicalPointToContinuousIndex(p.tolist())) >= -0.5)
                and np.all(np.array(img.TransformPhysicalPointToContinuousIndex(p.tolist()))
                           < np.array(img.GetSize()) - 0.5) for p in points]
    assert io.points_inside(img, points).tolist() == expected
    assert 0 < sum(expected) < len(expected)
