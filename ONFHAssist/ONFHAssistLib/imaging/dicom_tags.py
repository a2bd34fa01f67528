"""Who was scanned and which study: the patient and study identity of a DICOM series, for analysis.json.

The one module that names the DICOM patient module's identity tags (Testing/test_security.py holds every
other file to that), so what an anonymised run drops is decided and audited here. `--anonymise` follows the
Basic Application Level Confidentiality Profile of DICOM PS3.15 (annex E) with two of its options:
Retain Patient Characteristics (sex stays: it is clinically relevant to ONFH and identifies no one on its
own) and Retain UIDs (study, series and frame-of-reference UIDs stay, so a DICOM SEG still lies on its
series). Name, ID, birth date, study date and time, accession number, referring physician, study ID and
the free-text series description are dropped, and so is the input's file or folder name (`input_path`).
"""
from __future__ import annotations

from pathlib import Path

from . import io

# analysis.json key -> (SimpleITK/GDCM tag, DICOM keyword)
PATIENT_TAGS = {"name": ("0010|0010", "PatientName"), "id": ("0010|0020", "PatientID"),
                "birth_date": ("0010|0030", "PatientBirthDate"), "sex": ("0010|0040", "PatientSex")}
STUDY_TAGS = {"date": ("0008|0020", "StudyDate"), "accession_number": ("0008|0050", "AccessionNumber"),
              "series_description": ("0008|103e", "SeriesDescription"),
              "study_instance_uid": ("0020|000d", "StudyInstanceUID"),
              "series_instance_uid": ("0020|000e", "SeriesInstanceUID"),
              "frame_of_reference_uid": ("0020|0052", "FrameOfReferenceUID")}
DROPPED = {"name", "id", "birth_date", "date", "accession_number", "series_description"}
# Type 2 attributes of the Patient and General Study modules that a derived object (SEG, SR) carries,
# empty when unknown; the first group is blanked by --anonymise.
DERIVED_DROPPED = ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "StudyTime", "AccessionNumber",
                   "ReferringPhysicianName", "StudyID")
DERIVED_KEPT = ("PatientSex",)


def person_name(value: str) -> str:
    """A DICOM PN value as people write it: 'Doe^Jane^M' -> 'Doe, Jane M' (the alphabetic group only)."""
    family, *rest = value.split("=")[0].split("^")
    given = " ".join(part for part in rest if part)
    return f"{family}, {given}" if family and given else family or given


def iso_date(value: str) -> str:
    """A DICOM DA value 'YYYYMMDD' as '1945-12-31'; anything else is kept as written."""
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if len(value) == 8 and value.isdigit() else value


def identity(path: str | Path, anonymise: bool = False) -> dict[str, dict]:
    """The `patient` and `study` blocks of analysis.json for a scan: every key always present, null when the
    input (a volume file, or a series without the tag) does not hold it or `anonymise` drops it."""
    tags = io.dicom_tags(path)
    readers = {"name": person_name, "birth_date": iso_date, "date": iso_date}
    blocks = {}
    for block, table in (("patient", PATIENT_TAGS), ("study", STUDY_TAGS)):
        blocks[block] = {}
        for key, (tag, _) in table.items():
            value = tags.get(tag) or None
            if value is not None and key in readers:
                value = readers[key](value) or None
            blocks[block][key] = None if anonymise and key in DROPPED else value
    blocks["patient"]["anonymised"] = anonymise
    return blocks


def input_path(path: str | Path, anonymise: bool = False) -> str:
    """What analysis.json and the reports record as the input: its absolute path, or with `anonymise` only its
    file type ('anonymised.nii.gz'; 'anonymised' for a series folder), since files and folders are often named
    after the patient. No hash of the name either: a name can be guessed and its hash checked."""
    if not anonymise:
        return str(Path(path).resolve())
    return "anonymised" + io.volume_suffix(path)


def derived_identity(source, anonymise: bool) -> dict[str, str]:
    """Patient and study attributes (keyword -> value) for a SEG or SR derived from the dataset `source`:
    its own values, those `--anonymise` drops left empty."""
    values = {keyword: "" if anonymise else str(getattr(source, keyword, "") or "") for keyword in DERIVED_DROPPED}
    values.update({keyword: str(getattr(source, keyword, "") or "") for keyword in DERIVED_KEPT})
    return values
