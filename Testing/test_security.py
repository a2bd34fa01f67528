"""Security: paths from a dataset's CSV never reach outside the dataset folder; the DICOM patient identity is
read in one module only (imaging/dicom_tags.py), and with --anonymise nothing the pipeline writes carries a
patient name, ID or birth date from the scan's DICOM header (only what the user typed in)."""
import ast
import json
import re
from pathlib import Path

import pytest
import SimpleITK as sitk

from ONFHAssistLib import dataset
from ONFHAssistLib.cli import main
from ONFHAssistLib.errors import InputError
from ONFHAssistLib.phantom.cohort import write_cohort
from ONFHAssistLib.training.scans import list_scans

LIB = Path(dataset.__file__).resolve().parent
PATIENT_TAGS = {"0010|0010": "Doe^Jane", "0010|0020": "MRN-SECRET-4711", "0010|0030": "19451231"}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("sec") / "data", 1, seed=5, modality="mr_t1", shape=(120, 96, 64),
                        spacing=(3.0, 3.0, 3.0))


@pytest.mark.parametrize("scan_id", ["../outside", "../../outside", "/tmp/outside", "sub/../../outside", ".."])
def test_scan_ids_from_the_csv_cannot_name_files_outside_the_dataset(cohort, tmp_path, scan_id):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    image = next((cohort / "images").iterdir())
    for target in (tmp_path / "outside.nii.gz", root / "outside.nii.gz", Path("/tmp/outside.nii.gz")):
        if not target.exists():
            target.write_bytes(image.read_bytes())  # a real volume waits outside images/
    table = dataset.read_hips(cohort).head(1).assign(scan_id=scan_id)
    dataset.write_table(table, root / "hips.csv")
    (root / "dataset.json").write_text((cohort / "dataset.json").read_text(encoding="utf-8"), encoding="utf-8")
    assert dataset.find_volume(root / "images", scan_id) is None
    assert not dataset.validate(root).ok
    with pytest.raises(InputError):
        list_scans(root)


def _string_constants(path: Path) -> set[str]:
    return {n.value for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_only_one_module_reads_patient_identity_tags():
    """No source but imaging/dicom_tags.py mentions the DICOM patient module (0010,xxxx) or the names of its
    identity keywords, so what --anonymise drops is decided in one place."""
    pattern = re.compile(r"0010\|00[0-9a-f]{2}|PatientName|PatientID|PatientBirth|OtherPatientIDs", re.I)
    sources = [p for p in LIB.rglob("*.py") if p != LIB / "imaging" / "dicom_tags.py"]
    hits = [f"{p.relative_to(LIB)}: {s!r}" for p in sources for s in _string_constants(p) if pattern.search(s)]
    hits += [str(p.relative_to(LIB)) for p in sources if pattern.search(p.read_text(encoding="utf-8"))]
    assert not hits
    assert pattern.search((LIB / "imaging" / "dicom_tags.py").read_text(encoding="utf-8"))


def _dicom_series(volume: sitk.Image, folder: Path) -> Path:
    folder.mkdir(parents=True)
    volume = sitk.Cast(volume, sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = volume.GetDirection()
    series = "1.2.826.0.1.3680043.2.1125.1.4711"
    for z in range(volume.GetDepth()):
        piece = volume[:, :, z]
        for tag, value in {**PATIENT_TAGS, "0020|000e": series, "0020|000d": series + ".0", "0020|0052": series + ".1",
                           "0008|0060": "MR", "0020|0013": str(z + 1),
                           "0020|0032": "\\".join(map(str, volume.TransformIndexToPhysicalPoint((0, 0, z)))),
                           "0020|0037": "\\".join(map(str, (direction[0], direction[3], direction[6],
                                                             direction[1], direction[4], direction[7]))),
                           "0018|0050": str(volume.GetSpacing()[2])}.items():
            piece.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{z:04d}.dcm"))
        writer.Execute(piece)
    return folder


def test_an_anonymised_analysis_of_a_dicom_series_writes_no_patient_name_or_id(cohort, tmp_path):
    image = sitk.ReadImage(str(next((cohort / "images").iterdir())))
    series = _dicom_series(image, tmp_path / "series")
    reread = sitk.ReadImage(str(series / "0000.dcm"))
    assert reread.GetMetaData("0010|0010").strip() == PATIENT_TAGS["0010|0010"]  # the header really holds it
    out = tmp_path / "an"
    assert main(["analyze", str(series), "--out", str(out), "--device", "cpu", "--progress", "none",
                 "--anonymise"]) == 0
    written = [p for p in out.rglob("*") if p.is_file()]
    assert {"report.html", "report.pdf", "seg.dcm", "sr.dcm"} <= {p.name for p in written}
    patient = json.loads((out / "analysis.json").read_text(encoding="utf-8"))["patient"]
    assert patient["anonymised"] and patient["name"] is None and patient["id"] is None
    needles = [v.encode() for v in PATIENT_TAGS.values()] + [b"Doe^", b"SECRET"]  # short ones occur in base64
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".gz":
            import gzip

            data = gzip.decompress(data)
        if path.suffix == ".pdf":  # its text streams are compressed
            from pypdf import PdfReader

            data = "".join(page.extract_text() for page in PdfReader(path).pages).encode()
        assert not [n for n in needles if n in data], path.name
