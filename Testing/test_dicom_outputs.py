"""DICOM SEG and SR of `onfh analyze` on a DICOM series (issue 23), read back with pydicom and highdicom: the
SEG's labels and geometry equal labels.nii.gz on the input grid, the SR's measurements equal analysis.json,
and the SEG loads as a segmentation in an MRML scene (slicer-core)."""
import json
import shutil

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from ONFHAssistLib.analysis import dicom_export
from ONFHAssistLib.analysis.findings import key_findings
from ONFHAssistLib.analysis.results import validate
from ONFHAssistLib.cli import main
from ONFHAssistLib.imaging import io
from ONFHAssistLib.phantom.cohort import write_cohort
from test_identity import TAGS, write_series

SIDE_WORDS = {"R": "right", "L": "left"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One phantom scan (a lesion in one hip) as a DICOM series with patient tags, analysed by the CLI."""
    root = tmp_path_factory.mktemp("dicom_outputs")
    data = write_cohort(root / "data", 1, seed=5, modality="mr_t1", shape=(120, 96, 64), spacing=(3.0, 3.0, 3.0))
    series = write_series(sitk.ReadImage(str(next((data / "images").iterdir()))), root / "series")
    out = root / "out"
    assert main(["analyze", str(series), "--out", str(out), "--device", "cpu", "--progress", "none"]) == 0
    return series, out, json.loads((out / "analysis.json").read_text(encoding="utf-8"))


def _sources(series):
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(series.iterdir())]


def _slice_of(label: sitk.Image, sources) -> dict[str, int]:
    """Which label-map slice each source slice is, from its ImagePositionPatient (no ordering assumed)."""
    origins = np.array([label.TransformIndexToPhysicalPoint((0, 0, k)) for k in range(label.GetDepth())])
    return {ds.SOPInstanceUID: int(np.argmin(np.linalg.norm(origins - np.array(ds.ImagePositionPatient, float), axis=1)))
            for ds in sources}


def test_files_and_identity_are_recorded(run):
    series, out, analysis = run
    validate(analysis)
    assert analysis["files"]["dicom_seg"] == "dicom/seg.dcm" and analysis["files"]["dicom_sr"] == "dicom/sr.dcm"
    assert analysis["patient"] == {"name": "Doe, Jane Maria", "id": "MRN-SECRET-4711", "birth_date": "1945-12-31",
                                   "sex": "F", "anonymised": False}
    assert analysis["study"]["study_instance_uid"] == TAGS["0020|000d"]
    for name in ("seg.dcm", "sr.dcm"):
        ds = pydicom.dcmread(out / "dicom" / name)
        assert str(ds.PatientName) == TAGS["0010|0010"] and ds.PatientID == TAGS["0010|0020"]
        assert ds.StudyInstanceUID == TAGS["0020|000d"] and ds.AccessionNumber == TAGS["0008|0050"]


def test_seg_labels_and_geometry_equal_the_label_map(run):
    series, out, _ = run
    label = io.read_image(out / "labels.nii.gz")
    sources = _sources(series)
    slice_of = _slice_of(label, sources)
    assert sorted(slice_of.values()) == list(range(label.GetDepth()))
    seg = hd.seg.segread(str(out / "dicom" / "seg.dcm"))
    assert seg.FrameOfReferenceUID == TAGS["0020|0052"]
    assert (seg.Rows, seg.Columns) == (label.GetHeight(), label.GetWidth())
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Pelvis", "Femur", "Necrosis"]
    in_order = sorted(slice_of, key=slice_of.get)
    pixels = seg.get_pixels_by_source_instance(in_order, combine_segments=True)
    expected = sitk.GetArrayFromImage(label)
    assert set(np.unique(expected)) == {0, 1, 2, 3}
    assert np.array_equal(pixels, expected)
    shared = seg.SharedFunctionalGroupsSequence[0]
    d = np.array(label.GetDirection()).reshape(3, 3)
    assert np.allclose(shared.PlaneOrientationSequence[0].ImageOrientationPatient, [*d[:, 0], *d[:, 1]], atol=1e-6)
    assert np.allclose(shared.PixelMeasuresSequence[0].PixelSpacing, label.GetSpacing()[1::-1], atol=1e-6)
    for frame in seg.PerFrameFunctionalGroupsSequence:
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        position = np.array(frame.PlanePositionSequence[0].ImagePositionPatient, float)
        assert np.allclose(position, label.TransformIndexToPhysicalPoint((0, 0, slice_of[uid])), atol=1e-4)


def test_read_seg_puts_the_labels_back_on_the_input_grid(run):
    series, out, _ = run
    label = io.read_image(out / "labels.nii.gz")
    back = dicom_export.read_seg(out / "dicom" / "seg.dcm", io.read_image(series))
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(label))
    assert np.allclose(back.GetOrigin(), label.GetOrigin()) and np.allclose(back.GetSpacing(), label.GetSpacing())


def _groups(sr) -> dict[str, dict]:
    """Measurement groups by tracking identifier: numeric values and coded evaluations by concept meaning,
    read from the SR's content tree with plain pydicom."""
    container = next(i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeMeaning == "Imaging Measurements")
    groups = {}
    for group in container.ContentSequence:
        items = {}
        for item in group.ContentSequence:
            name = item.ConceptNameCodeSequence[0].CodeMeaning
            if item.ValueType == "NUM":
                items[name] = (float(item.MeasuredValueSequence[0].NumericValue),
                               item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue)
            elif item.ValueType in ("CODE", "TEXT"):
                items.setdefault(name, []).append(item.ConceptCodeSequence[0].CodeValue if item.ValueType == "CODE"
                                                  else item.TextValue)
        groups[items["Tracking Identifier"][0]] = items
    return groups


def test_sr_measurements_equal_analysis_json(run):
    _, out, analysis = run
    sr = pydicom.dcmread(out / "dicom" / "sr.dcm")
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    groups = _groups(sr)
    kinds = {f["side"]: f["kind"] for f in key_findings(analysis)}
    lesions = 0
    for hip in analysis["hips"]:
        head = groups[f"{SIDE_WORDS[hip['side']]} femoral head"]
        assert head["Finding"] == ["2812003", kinds[hip["side"]]]  # SCT femoral head; the key finding's kind
        if not hip["found"]:
            continue
        assert head["Radius"] == (hip["radius_mm"], "mm") and head["Volume"] == (hip["volumes_ml"]["head"], "ml")
        lesion = groups[f"{SIDE_WORDS[hip['side']]} femoral head necrosis"]
        assert lesion["Volume"] == (hip["volumes_ml"]["necrosis"], "ml")
        assert lesion["Ratio"] == (hip["necrotic_ratio"], "{ratio}")
        assert lesion["ARCO stage"] == [f"arco-{hip['stage']['arco']['label']}"]
        lesions += hip["volumes_ml"]["necrosis"] > 0
    assert lesions == 1


def test_the_seg_loads_as_a_segmentation_in_an_mrml_scene(run):
    """slicer-core reads no DICOM SEG by itself: highdicom turns it into a label map on the input grid and the
    scene bridge makes that a segmentation node, which gives the same labels back."""
    pytest.importorskip("slicer")
    from ONFHAssistLib.slicer import mrml

    series, out, _ = run
    image = io.read_image(series)
    scene = mrml.new_scene()
    volume = mrml.add_volume(scene, image, "input")
    node = mrml.add_segmentation(scene, dicom_export.read_seg(out / "dicom" / "seg.dcm", image), volume, "SEG")
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == [
        "Pelvis", "Femur", "Necrosis"]
    back = mrml.segmentation_to_label(scene, node, volume)
    assert np.array_equal(sitk.GetArrayViewFromImage(back),
                          sitk.GetArrayViewFromImage(io.read_image(out / "labels.nii.gz")))


def test_a_volume_file_input_gets_no_dicom_and_drops_an_old_one(run, tmp_path):
    """Re-analysing into a folder that holds another scan's SEG and SR: they go, not left beside the new results."""
    series, out, _ = run
    again = tmp_path / "out"
    shutil.copytree(out, again)
    volume = io.write_image(io.read_image(series), tmp_path / "scan.nii.gz")
    assert main(["analyze", str(volume), "--out", str(again), "--device", "cpu", "--progress", "none",
                 "--sides", "R"]) == 0
    analysis = json.loads((again / "analysis.json").read_text(encoding="utf-8"))
    assert "dicom_seg" not in analysis["files"] and not list((again / "dicom").glob("*.dcm"))
    assert analysis["patient"]["name"] is None and analysis["study"]["series_instance_uid"] is None


@pytest.fixture(scope="module")
def volume_run(run, tmp_path_factory):
    """The same scan as a NIfTI file, analysed with --dicom (the hip with the lesion only, to keep it short)."""
    series, _, _ = run
    root = tmp_path_factory.mktemp("volume_dicom")
    volume = io.write_image(io.read_image(series), root / "scan.nii.gz")
    out = root / "out"
    assert main(["analyze", str(volume), "--out", str(out), "--device", "cpu", "--progress", "none", "--sides", "L",
                 "--dicom"]) == 0
    return volume, out, json.loads((out / "analysis.json").read_text(encoding="utf-8"))


def test_a_volume_file_gets_a_seg_and_sr_on_request_on_a_new_frame_of_reference(volume_run):
    volume, out, analysis = volume_run
    validate(analysis)
    assert analysis["files"]["dicom_seg"] == "dicom/seg.dcm" and analysis["files"]["dicom_sr"] == "dicom/sr.dcm"
    label = io.read_image(out / "labels.nii.gz")
    back = dicom_export.read_seg(out / "dicom" / "seg.dcm", io.read_image(volume))
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(label))
    assert set(np.unique(sitk.GetArrayViewFromImage(label))) == {0, 1, 2, 3}
    seg = hd.seg.segread(str(out / "dicom" / "seg.dcm"))
    sr = pydicom.dcmread(out / "dicom" / "sr.dcm")
    uids = (seg.FrameOfReferenceUID, seg.StudyInstanceUID, seg.SeriesInstanceUID, sr.SeriesInstanceUID)
    assert all(pydicom.uid.UID(uid).is_valid for uid in uids) and len(set(uids)) == 4
    assert seg.FrameOfReferenceUID != TAGS["0020|0052"] and seg.StudyInstanceUID == sr.StudyInstanceUID
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID not in (seg.SeriesInstanceUID, sr.SeriesInstanceUID)
    assert len(referenced.ReferencedInstanceSequence) == label.GetDepth()  # one header per slice of the volume
    assert seg.Modality == "SEG" and str(seg.PatientName) == "" and seg.PatientID == ""
    d = np.array(label.GetDirection()).reshape(3, 3)
    shared = seg.SharedFunctionalGroupsSequence[0]
    assert np.allclose(shared.PlaneOrientationSequence[0].ImageOrientationPatient, [*d[:, 0], *d[:, 1]], atol=1e-6)
    hip = analysis["hips"][0]
    lesion = _groups(sr)["left femoral head necrosis"]
    assert lesion["Volume"] == (hip["volumes_ml"]["necrosis"], "ml") and lesion["Ratio"] == (hip["necrotic_ratio"], "{ratio}")
    assert analysis["study"]["frame_of_reference_uid"] is None  # the input (a volume file) has none of its own
