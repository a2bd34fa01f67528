"""The analysis as DICOM objects a PACS keeps beside the images: a SEG of pelvis, femur and necrosis on the
input series' frame of reference, and a TID 1500 measurement report (Comprehensive 3D SR) per hip.

Written by default for a DICOM series input: both objects are built with highdicom from the input slices'
headers, reduced to geometry and UIDs plus the patient and study attributes
`imaging.dicom_tags.derived_identity` allows (so `--anonymise` reaches the DICOM files too). For a volume file
they are written on request (`onfh analyze --dicom`) on slice headers made from the volume's geometry
(`volume_sources`) with new study, series, instance and frame-of-reference UIDs and no patient data: the SEG
then lies on a frame of reference of its own, and the series it names exists nowhere (no image series is
synthesised: that would put images in a PACS that no scanner made).
highdicom and pydicom are imported only when a file is written: Slicer's Python does not ship highdicom, and
its panel hands the analysis a volume file, never a series.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__, resources
from ..atomic import atomic_path
from ..imaging import dicom_tags, io
from .findings import key_findings

SEG_FILE, SR_FILE = "dicom/seg.dcm", "dicom/sr.dcm"
FILES = (SEG_FILE, SR_FILE)
LOCAL_SCHEME = "99ONFH"  # private coding scheme ("99" prefix, DICOM PS3.16 8.2) for stages and finding kinds
MANUFACTURER = "ONFH Assist"
# all that is kept of a source slice: what highdicom needs to build a SEG or SR on it
SOURCE_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
            "Modality", "SeriesNumber", "InstanceNumber", "Rows", "Columns", "PixelSpacing", "ImagePositionPatient",
            "ImageOrientationPatient", "SliceThickness", "PositionReferenceIndicator")
SIDE_NAMES = {"R": "right", "L": "left"}
SYSTEM_NAMES = {"arco": "ARCO", "ficat": "Ficat", "jic_stage": "JIC", "ficat3": "Ficat (3 classes)"}
KIND_MEANINGS = {"lesion": "ONFH suspected", "none": "no necrosis found", "not_found": "hip not found",
                 "collapsed": "collapse already present", "unreliable": "not reliable: scan unlike the training data",
                 "metal": "metal in the hip"}


def source_datasets(series: str | Path, anonymise: bool) -> list:
    """The input series' slice headers in the order SimpleITK stacked them (so frame k is label slice k)."""
    import pydicom

    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series))
    reduced = []
    for name in files:
        full = pydicom.dcmread(name, stop_before_pixels=True)
        ds = pydicom.Dataset()
        for keyword in SOURCE_KEYWORDS:
            if keyword in full:
                setattr(ds, keyword, full.data_element(keyword).value)
        for keyword, value in dicom_tags.derived_identity(full, anonymise).items():
            setattr(ds, keyword, value)
        reduced.append(ds)
    return reduced


SOP_CLASSES = {"ct": ("CT", "1.2.840.10008.5.1.4.1.1.2"), "mr_t1": ("MR", "1.2.840.10008.5.1.4.1.1.4")}


def volume_sources(image: sitk.Image, modality: str) -> list:
    """Header-only slices (frame k = slice k of `image`) for a volume file's SEG and SR: CT or MR image slices
    with the volume's geometry, new UIDs (one study, series and frame of reference) and empty patient and study
    attributes (a volume file holds none)."""
    import highdicom as hd
    import pydicom

    dicom_modality, sop_class = SOP_CLASSES[modality]
    d = image.GetDirection()
    shared = {"SOPClassUID": sop_class, "StudyInstanceUID": hd.UID(), "SeriesInstanceUID": hd.UID(),
              "FrameOfReferenceUID": hd.UID(), "Modality": dicom_modality, "SeriesNumber": 1,
              "Rows": image.GetHeight(), "Columns": image.GetWidth(),
              "PixelSpacing": [float(image.GetSpacing()[1]), float(image.GetSpacing()[0])],
              "ImageOrientationPatient": [float(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7])],
              "SliceThickness": float(image.GetSpacing()[2]), "PositionReferenceIndicator": "",
              **{keyword: "" for keyword in (*dicom_tags.DERIVED_DROPPED, *dicom_tags.DERIVED_KEPT)}}
    sources = []
    for k in range(image.GetDepth()):
        ds = pydicom.Dataset()
        for keyword, value in shared.items():
            setattr(ds, keyword, value)
        ds.SOPInstanceUID, ds.InstanceNumber = hd.UID(), k + 1
        ds.ImagePositionPatient = [float(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
        sources.append(ds)
    return sources


def _coded(term: dict):
    from highdicom.sr import CodedConcept

    return CodedConcept(term["CodeValue"], term["CodingSchemeDesignator"], term["CodeMeaning"])


def segment_descriptions(models: list[dict]) -> list:
    """One segment per label of ONFH.term.json (category and type codes, display colour), automatic, named
    after the segmentation model that drew it."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    model = next((m for m in models if m["task"] == "segmentation"), {"name": "segmentation", "version": "?"})
    algorithm = hd.AlgorithmIdentificationSequence(name=model["name"], version=model["version"],
                                                   family=codes.cid7162.ArtificialIntelligence)
    segments = []
    for category in json.loads(resources.TERMS.read_text(encoding="utf-8"))["SegmentationCodes"]["Category"]:
        for term in category["Type"]:
            segments.append(hd.seg.SegmentDescription(
                segment_number=int(term["labelValue"]), segment_label=term["CodeMeaning"],
                segmented_property_category=_coded(category), segmented_property_type=_coded(term),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
                display_color=hd.color.CIELabColor.from_rgb(*term["recommendedDisplayRGBValue"])))
    return sorted(segments, key=lambda s: s.SegmentNumber)


def write_seg(label: sitk.Image, sources: list, models: list[dict], path: str | Path) -> Path:
    """A binary DICOM SEG of every label on the source slices (empty slices left out), written atomically."""
    import highdicom as hd

    array = sitk.GetArrayFromImage(label).astype(np.uint8)  # (slice, row, column) = the source frames
    if array.shape[0] != len(sources):
        raise ValueError(f"the label map has {array.shape[0]} slices but the series {len(sources)}")
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=array, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(models), series_instance_uid=hd.UID(), series_number=9001,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name=MANUFACTURER, software_versions=__version__, device_serial_number="none",
        series_description="ONFH Assist segmentation (not for clinical use)")
    return _save(seg, path)


def read_seg(path: str | Path, reference: sitk.Image) -> sitk.Image:
    """A DICOM SEG back as a label map (value = segment number) on the grid of `reference` (the series it
    segments: the SEG itself holds only its non-empty slices), e.g. to load it into Slicer as a segmentation
    through `slicer.mrml.add_segmentation`."""
    import highdicom as hd

    volume = hd.seg.segread(str(path)).get_volume(combine_segments=True, dtype=np.uint8)
    affine = np.asarray(volume.affine, float)  # (slice, row, column) index -> LPS mm
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.asarray(volume.array, np.uint8))  # numpy (k, j, i) -> ITK (i, j, k)
    direction = affine[:3, :3] / spacing
    image.SetSpacing([float(s) for s in spacing[::-1]])
    image.SetDirection([float(v) for v in direction[:, ::-1].ravel()])
    image.SetOrigin([float(v) for v in affine[:3, 3]])
    return io.resample_to(image, reference, label=True)


def _local(value: str, meaning: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(value, LOCAL_SCHEME, meaning[:64])


def hip_groups(analysis: dict, findings: list[dict]) -> list:
    """TID 1501 measurement groups: per found hip its femoral head (radius, volume) and necrotic lesion
    (volume, ratio of the head, stage per grading system); per hip the key finding's kind, coded."""
    import highdicom.sr as hsr
    from pydicom.sr.codedict import codes

    seg_model = next((m for m in analysis["models"] if m["task"] == "segmentation"), None)
    algorithm = hsr.AlgorithmIdentification(seg_model["name"], seg_model["version"]) if seg_model else None
    kinds = {f["side"]: f["kind"] for f in findings}
    groups = []
    for hip in sorted(analysis["hips"], key=lambda h: h["side"] != "R"):
        side = hip["side"]
        site = [hsr.FindingSite(codes.SCT.FemoralHead, laterality=codes.SCT.Right if side == "R" else codes.SCT.Left)]
        kind = kinds[side]
        evaluations = [hsr.QualitativeEvaluation(codes.DCM.Finding, _local(kind, KIND_MEANINGS.get(kind, kind)))]
        measures = []
        if hip["found"]:
            measures = [hsr.Measurement(codes.SCT.Radius, hip["radius_mm"], codes.UCUM.Millimeter),
                        hsr.Measurement(codes.SCT.Volume, hip["volumes_ml"]["head"], _millilitre())]
        groups.append(hsr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hsr.TrackingIdentifier(_uid(), f"{SIDE_NAMES[side]} femoral head"),
            finding_type=codes.SCT.FemoralHead, finding_sites=site, algorithm_id=algorithm,
            measurements=measures or None, qualitative_evaluations=evaluations))
        if not hip["found"]:
            continue
        names = {system: SYSTEM_NAMES.get(system, system) for system in hip["stage"]}
        stages = [hsr.QualitativeEvaluation(_local(f"{system}-stage", f"{names[system]} stage"),
                                            _local(f"{system}-{stage['label']}", f"{names[system]} {stage['label']}"))
                  for system, stage in hip["stage"].items()]
        groups.append(hsr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hsr.TrackingIdentifier(_uid(), f"{SIDE_NAMES[side]} femoral head necrosis"),
            finding_type=codes.SCT.Necrosis, finding_sites=site, algorithm_id=algorithm,
            measurements=[hsr.Measurement(codes.SCT.Volume, hip["volumes_ml"]["necrosis"], _millilitre()),
                          hsr.Measurement(codes.SCT.Ratio, hip["necrotic_ratio"], codes.UCUM.Ratio)],
            qualitative_evaluations=stages or None))
    return groups


def _millilitre():
    from highdicom.sr import CodedConcept

    return CodedConcept("ml", "UCUM", "milliliter")  # pydicom's UCUM table has no millilitre


def _uid() -> str:
    import highdicom as hd

    return str(hd.UID())


def write_sr(analysis: dict, sources: list, path: str | Path) -> Path:
    """The measurement report (TID 1500) of every hip with its key finding (`findings`), observed by this
    software as a device, written atomically."""
    import highdicom as hd
    import highdicom.sr as hsr
    from pydicom.sr.codedict import codes

    device = hsr.ObserverContext(codes.DCM.Device, hsr.DeviceObserverIdentifyingAttributes(
        uid=_uid(), name=MANUFACTURER, manufacturer_name=MANUFACTURER, model_name=f"onfh {__version__}"))
    report = hsr.MeasurementReport(observation_context=hsr.ObservationContext(observer_device_context=device),
                                   procedure_reported=codes.SCT.ImagingProcedure,
                                   imaging_measurements=hip_groups(analysis, key_findings(analysis)),
                                   title=codes.DCM.ImagingMeasurementReport)
    sr = hsr.Comprehensive3DSR(evidence=sources, content=report[0], series_instance_uid=hd.UID(), series_number=9002,
                               sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
                               series_description="ONFH Assist measurements (not for clinical use)")
    return _save(sr, path)


def _save(dataset, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        dataset.save_as(tmp, enforce_file_format=True)
    return path
