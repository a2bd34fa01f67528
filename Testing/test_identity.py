"""Patient and study identity from a DICOM series (issue 23): read into analysis.json's `patient` and `study`
blocks, and dropped by --anonymise as DICOM PS3.15's basic profile with the Retain Patient Characteristics
and Retain UIDs options says (sex and UIDs stay)."""
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from ONFHAssistLib.imaging import dicom_tags, io

TAGS = {"0010|0010": "Doe^Jane^Maria", "0010|0020": "MRN-SECRET-4711", "0010|0030": "19451231", "0010|0040": "F",
        "0008|0020": "20260115", "0008|0050": "ACC-0815", "0008|103e": "T1 COR hips",
        "0020|000d": "1.2.826.0.1.3680043.2.1125.23.1", "0020|000e": "1.2.826.0.1.3680043.2.1125.23.2",
        "0020|0052": "1.2.826.0.1.3680043.2.1125.23.3"}
IDENTIFYING = ("Doe", "Jane", "MRN-SECRET-4711", "1945", "20260115", "2026-01-15", "ACC-0815", "T1 COR hips")


def write_series(volume: sitk.Image, folder: Path, tags: dict = TAGS) -> Path:
    """`volume` as an MR DICOM series (one file per slice, int16) whose slices carry `tags`."""
    folder.mkdir(parents=True)
    volume = sitk.Cast(volume, sitk.sitkInt16)
    d = volume.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume.GetDepth()):
        piece = volume[:, :, k]
        for tag, value in {**tags, "0008|0060": "MR", "0008|0016": "1.2.840.10008.5.1.4.1.1.4",
                           "0008|0018": f"{tags['0020|000e']}.{k + 1}", "0020|0013": str(k + 1),
                           "0020|0032": "\\".join(f"{v:.6f}" for v in volume.TransformIndexToPhysicalPoint((0, 0, k))),
                           "0020|0037": "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
                           "0018|0050": f"{volume.GetSpacing()[2]:.6f}"}.items():
            piece.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:04d}.dcm"))
        writer.Execute(piece)
    return folder


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    volume = sitk.GetImageFromArray(np.arange(6 * 8 * 10, dtype=np.int16).reshape(6, 8, 10))
    volume.SetSpacing((0.8, 0.9, 2.5))
    return write_series(volume, tmp_path_factory.mktemp("identity") / "series")


def test_identity_blocks_hold_the_series_tags_as_people_write_them(series):
    blocks = dicom_tags.identity(series)
    assert blocks["patient"] == {"name": "Doe, Jane Maria", "id": "MRN-SECRET-4711", "birth_date": "1945-12-31",
                                 "sex": "F", "anonymised": False}
    assert blocks["study"] == {"date": "2026-01-15", "accession_number": "ACC-0815", "series_description": "T1 COR hips",
                               "study_instance_uid": TAGS["0020|000d"], "series_instance_uid": TAGS["0020|000e"],
                               "frame_of_reference_uid": TAGS["0020|0052"]}


def test_anonymise_drops_who_and_when_but_keeps_sex_and_uids(series):
    blocks = dicom_tags.identity(series, anonymise=True)
    assert blocks["patient"] == {"name": None, "id": None, "birth_date": None, "sex": "F", "anonymised": True}
    assert blocks["study"]["date"] is None and blocks["study"]["accession_number"] is None
    assert blocks["study"]["series_description"] is None
    assert blocks["study"]["series_instance_uid"] == TAGS["0020|000e"]
    assert not [word for word in IDENTIFYING if word in repr(blocks)]


def test_a_volume_file_has_every_key_and_no_value(tmp_path):
    path = io.write_image(sitk.Image([8, 8, 8], sitk.sitkInt16), tmp_path / "v.nii.gz")
    blocks = dicom_tags.identity(path)
    assert set(blocks["patient"]) == {"name", "id", "birth_date", "sex", "anonymised"}
    assert all(v is None for k, v in {**blocks["patient"], **blocks["study"]}.items() if k != "anonymised")


@pytest.mark.parametrize("value, name", [("Doe^Jane", "Doe, Jane"), ("Doe", "Doe"), ("^Jane", "Jane"),
                                         ("Yamada^Tarou=山田^太郎", "Yamada, Tarou"), ("Doe^^^Dr", "Doe, Dr")])
def test_person_names_read_family_first(value, name):
    assert dicom_tags.person_name(value) == name


def test_dates_become_iso_and_odd_ones_are_kept():
    assert dicom_tags.iso_date("20260115") == "2026-01-15"
    assert dicom_tags.iso_date("2026") == "2026"


def test_a_derived_object_copies_identity_unless_anonymised(series):
    source = pydicom.dcmread(next(series.iterdir()), stop_before_pixels=True)
    kept = dicom_tags.derived_identity(source, anonymise=False)
    assert kept["PatientName"] == "Doe^Jane^Maria" and kept["PatientID"] == "MRN-SECRET-4711"
    assert kept["AccessionNumber"] == "ACC-0815" and kept["PatientSex"] == "F"
    blank = dicom_tags.derived_identity(source, anonymise=True)
    assert blank.keys() == kept.keys()
    assert {k: v for k, v in blank.items() if v} == {"PatientSex": "F"}


def test_input_path_keeps_only_the_file_type_when_anonymised(tmp_path):
    named = tmp_path / "Doe_Jane" / "Doe.Jane.MRN-SECRET-4711.nii.gz"
    assert dicom_tags.input_path(named) == str(named.resolve())
    assert dicom_tags.input_path(named, anonymise=True) == "anonymised.nii.gz"
    assert dicom_tags.input_path(tmp_path / "Doe_Jane", anonymise=True) == "anonymised"  # a series folder


def test_an_anonymised_run_writes_no_file_or_folder_name_of_the_patient(tmp_path):
    """A volume file named after the patient, in a folder named after the patient: analysis.json, the HTML
    report (title included) and the PDF name neither."""
    from pypdf import PdfReader

    from ONFHAssistLib.cli import main
    from ONFHAssistLib.phantom.cohort import write_cohort

    data = write_cohort(tmp_path / "data", 1, seed=5, modality="mr_t1", shape=(120, 96, 64), spacing=(3.0, 3.0, 3.0))
    folder = tmp_path / "Doe_Jane_MRN-SECRET-4711"
    folder.mkdir()
    scan = io.write_image(io.read_image(next((data / "images").iterdir())), folder / "Doe_Jane.nii.gz")
    out = tmp_path / "out"
    assert main(["analyze", str(scan), "--out", str(out), "--device", "cpu", "--progress", "none", "--sides", "R",
                 "--anonymise"]) == 0
    analysis = (out / "analysis.json").read_text(encoding="utf-8")
    page = re.sub(r"base64,[A-Za-z0-9+/=]+", "", (out / "report.html").read_text(encoding="utf-8"))  # images' bytes
    pdf = "\n".join(p.extract_text() for p in PdfReader(out / "report.pdf").pages)
    assert '"path": "anonymised.nii.gz"' in analysis and "scan anonymised.nii.gz" in pdf
    for text in (analysis, page, pdf):
        assert "Doe" not in text and "MRN-SECRET" not in text and str(tmp_path) not in text
    assert "<h1>ONFH Assist report</h1>" in page and "Patient: anonymised" in page
