"""Is this a hip scan of a supported kind (issue 18)? CT by Hounsfield units, T1 MR by DICOM tags or by its
tissue intensities; a T2, fat-suppressed or diffusion MR is refused under `--modality auto` and analysed
with a warning when the user names mr_t1.

The synthetic pelvis below is a body ellipse with a subcutaneous fat shell, muscle, two femoral marrow
discs and a bladder deep inside, at the intensities textbooks give each sequence (fat bright on T1; fluid
brightest on T2 and STIR; fat dark when suppressed)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from ONFHAssistLib.analysis.results import validate
from ONFHAssistLib.cli import main
from ONFHAssistLib.imaging import io
from ONFHAssistLib.imaging.crops import guess_modality
from ONFHAssistLib.imaging.modality import check_modality, decide_modality

TISSUES = {  # background, subcutaneous fat, muscle, marrow, bladder fluid
    "ct": dict(air=-1000, fat=-100, muscle=45, marrow=250, fluid=10),
    "t1": dict(air=5, fat=900, muscle=300, marrow=750, fluid=150),
    "t2": dict(air=5, fat=500, muscle=120, marrow=450, fluid=1200),
    "stir": dict(air=5, fat=40, muscle=200, marrow=60, fluid=1000),
    "fat-suppressed t1": dict(air=5, fat=90, muscle=300, marrow=110, fluid=150),
    "flat": dict(air=5, fat=360, muscle=300, marrow=350, fluid=330),  # no contrast to tell a sequence by
}


def pelvis(tissue: str, size=(110, 80, 24), spacing=3.0, seed=0) -> sitk.Image:
    """A synthetic pelvis (x, y, z voxels at `spacing` mm), with noise, as int16."""
    t = TISSUES[tissue]
    z, y, x = np.mgrid[:size[2], :size[1], :size[0]].astype(float) * spacing
    x, y, z = x - x.mean(), y - y.mean(), z - z.mean()
    a, b, fat_mm = 150.0, 100.0, 20.0
    body = (x / a) ** 2 + (y / b) ** 2
    image = np.full(body.shape, t["air"], np.float32)
    image[body < 1] = t["fat"]
    image[(x / (a - fat_mm)) ** 2 + (y / (b - fat_mm)) ** 2 < 1] = t["muscle"]
    for side in (-1, 1):
        image[(x - side * 90) ** 2 + (y + 10) ** 2 < 22**2] = t["marrow"]
    image[x**2 + (y - 30) ** 2 + z**2 < 35**2] = t["fluid"]
    image += np.random.default_rng(seed).normal(0.0, 15.0, image.shape).astype(np.float32)
    out = sitk.GetImageFromArray(np.round(image).astype(np.int16))
    out.SetSpacing([spacing] * 3)
    return out


@pytest.mark.parametrize("tissue, modality, supported, kind", [
    ("ct", "ct", True, "CT"),
    ("t1", "mr_t1", True, "T1-weighted MR"),
    ("t2", "mr_other", False, "T2-weighted or fat-suppressed MR"),
    ("stir", "mr_other", False, "T2-weighted or fat-suppressed MR"),
    ("fat-suppressed t1", "mr_other", False, "fat-suppressed MR"),
])
def test_intensities_tell_the_sequence(tissue, modality, supported, kind):
    decision = decide_modality(pelvis(tissue))
    assert (decision.modality, decision.supported, decision.kind) == (modality, supported, kind), decision
    assert decision.verified and decision.evidence["basis"] == ("hounsfield" if tissue == "ct" else "intensity")


def one_hip_view_with_coil_shading(tissue: str, gain: float = 5.0) -> sitk.Image:
    """The left 70 of the pelvis' 110 columns (the body cut by the field of view), brightened towards the cut
    edge up to `gain` times, as a receive coil beside the hip shades a real scan."""
    image = pelvis(tissue)
    array = sitk.GetArrayFromImage(image).astype(np.float32)[:, :, :70]
    x = np.linspace(0.0, 1.0, array.shape[2])
    out = sitk.GetImageFromArray(np.round(array * (1.0 + (gain - 1.0) * x**4)).astype(np.int16))
    out.SetSpacing(image.GetSpacing())
    return out


@pytest.mark.parametrize("tissue, modality, verified", [("t1", "mr_t1", True), ("t2", "mr_other", True),
                                                        ("stir", "mr_other", True)])
def test_coil_shading_does_not_change_the_sequence(tissue, modality, verified):
    """Without the shading correction the shaded T1 view was 'MR of unverified sequence' (fat ratio 1.38)."""
    decision = decide_modality(one_hip_view_with_coil_shading(tissue))
    assert (decision.modality, decision.verified) == (modality, verified), decision


def test_a_scan_too_small_to_correct_for_shading_is_judged_as_it_is():
    """An 8 x 8 x 4 MR at 3 mm: N4's fitting grid would be 3 x 3 x 1 voxels (SimpleITK raised on it)."""
    image = sitk.GetImageFromArray(np.random.default_rng(0).normal(100.0, 5.0, (4, 8, 8)).astype(np.int16))
    image.SetSpacing([3.0] * 3)
    assert decide_modality(image).kind == "MR of unverified sequence"


def test_the_ratios_follow_the_tissue_intensities():
    """Fat ratio: subcutaneous fat over the body's median tissue (muscle here); fluid ratio: the bladder over fat.
    Within 20 %: the coil-shading correction takes a smooth ring of fat around a uniform body partly for
    shading (fat ratio 2.56 of 3.0; without it 2.90), far above the 1.5 that tells T1."""
    t1 = decide_modality(pelvis("t1")).evidence
    t2 = decide_modality(pelvis("t2")).evidence
    assert t1["fat_ratio"] == pytest.approx(900 / 300, rel=0.2) and t1["fluid_ratio"] < 1.0
    assert t2["fluid_ratio"] == pytest.approx(1200 / 500, rel=0.2)


def test_without_contrast_it_is_taken_as_t1_but_not_verified():
    decision = decide_modality(pelvis("flat"))
    assert (decision.modality, decision.supported, decision.verified) == ("mr_t1", True, False)
    assert decision.kind == "MR of unverified sequence"


def test_an_unverified_sequence_is_analysed_as_t1_with_a_warning(tmp_path):
    path = io.write_image(pelvis("flat"), tmp_path / "flat.nii.gz")
    modality, record, warnings = check_modality(io.read_image(path), path, "auto")
    assert (modality, record["verified"], record["chosen_by"]) == ("mr_t1", False, "auto")
    assert len(warnings) == 1 and warnings[0].startswith("MR sequence not verified (no DICOM tags tell it")


def test_guess_modality_keeps_the_model_input_scale():
    """Its callers (training, `onfh segment`) get "ct" or "mr_t1"; a T2 scan still gets the MR scale."""
    assert [guess_modality(pelvis(t)) for t in ("ct", "t1", "t2")] == ["ct", "mr_t1", "mr_t1"]
    ct = sitk.GetArrayFromImage(pelvis("ct"))
    shifted = sitk.GetImageFromArray((ct + 1024).astype(np.int16))  # raw CT numbers: air at 24, not HU
    assert guess_modality(shifted) == "mr_t1"


def _with_tags(image: sitk.Image, folder, tags: dict[str, str]):
    """A DICOM MR series of `image` whose slices carry `tags`."""
    io.write_dicom_series(image, folder, "MR")
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for path in sorted(folder.glob("*.dcm")):
        slice_ = sitk.ReadImage(str(path))
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(path))
        writer.Execute(slice_)
    return folder


TE_90 = {"0008|103e": "cor tse", "0018|0020": "SE", "0018|0080": "4000", "0018|0081": "90"}
T1_TAGS = {"0008|103e": "cor tse", "0018|0020": "SE", "0018|0080": "500", "0018|0081": "12"}


@pytest.mark.parametrize("tags, modality, kind", [
    (TE_90, "mr_other", "T2-weighted MR"),
    ({**T1_TAGS, "0018|0082": "150"}, "mr_other", "fat-suppressed MR (STIR)"),
    ({**T1_TAGS, "0008|103e": "t1_tse_cor_fs"}, "mr_other", "fat-suppressed MR"),
    ({**T1_TAGS, "0018|0022": "PFP\\FS"}, "mr_other", "fat-suppressed MR"),
    ({"0008|103e": "ep2d_diff_b800", "0018|0020": "EP"}, "mr_other", "diffusion-weighted MR"),
    ({"0008|103e": "T2 FLAIR"}, "mr_other", "T2-weighted MR"),
    ({**T1_TAGS, "0018|0080": "3000"}, "mr_other", "proton-density- or T2-weighted MR"),
    (T1_TAGS, "mr_t1", "T1-weighted MR"),
    ({"0008|103e": "COR T1 FSE"}, "mr_t1", "T1-weighted MR"),  # FSE is not FS
])
def test_dicom_tags_decide_over_intensities(tags, modality, kind, tmp_path):
    """The series holds the T2-like pelvis, so a T1 answer can come from the tags alone."""
    series = _with_tags(pelvis("t2"), tmp_path / "series", tags)
    read = io.dicom_tags(series)
    assert all(read[tag] == value for tag, value in tags.items()), read
    decision = decide_modality(io.read_image(series), read)
    assert (decision.modality, decision.kind) == (modality, kind), decision
    assert decision.evidence["basis"] == "dicom tags"


def test_dicom_tags_of_a_volume_file_are_empty(tmp_path):
    path = io.write_image(pelvis("t1"), tmp_path / "scan.nii.gz")
    assert io.dicom_tags(path) == {}


def test_auto_refuses_an_unsupported_series_with_one_line_and_exit_2(tmp_path, capsys):
    series = _with_tags(pelvis("t1"), tmp_path / "series", TE_90)
    out = tmp_path / "out"
    code = main(["analyze", str(series), "--out", str(out), "--device", "cpu", "--progress", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: series: the scan looks like T2-weighted MR (echo time 90 ms is over 60 ms)")
    assert "only T1-weighted MR and CT are supported" in err[0]
    assert not out.exists()


@pytest.fixture(scope="module")
def forced_t2(tmp_path_factory):
    """A T2-like scan analysed with --modality mr_t1: analysed, with a warning."""
    folder = tmp_path_factory.mktemp("forced")
    path = io.write_image(pelvis("t2"), folder / "t2.nii.gz")
    code = main(["analyze", str(path), "--out", str(folder / "out"), "--modality", "mr_t1", "--device", "cpu",
                 "--progress", "none"])
    return code, folder / "out"


def test_a_named_modality_is_obeyed_with_a_warning(forced_t2):
    code, out = forced_t2
    assert code == 0
    analysis = json.loads((out / "analysis.json").read_text(encoding="utf-8"))
    validate(analysis)
    warning = ("the scan looks like T2-weighted or fat-suppressed MR (the brightest tissue deep in the body is "
               f"{analysis['input']['modality_check']['evidence']['fluid_ratio']:g} x subcutaneous fat, which T1 "
               "never shows) but was analysed as mr_t1 as asked: results are not reliable.")
    assert warning in analysis["warnings"]
    assert warning.split(" (")[0] in (out / "report.html").read_text(encoding="utf-8")


def test_the_decision_is_recorded_in_the_input_block(forced_t2):
    _, out = forced_t2
    check = json.loads((out / "analysis.json").read_text(encoding="utf-8"))["input"]["modality_check"]
    assert (check["modality"], check["supported"], check["chosen_by"]) == ("mr_other", False, "user")
    assert check["evidence"]["basis"] == "intensity" and check["evidence"]["fluid_ratio"] >= 1.5
