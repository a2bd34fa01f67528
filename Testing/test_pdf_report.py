"""The A4 PDF report (issue 23), read back with pypdf: the banner and the patient header on every page, key
findings before the measurements, no table split across pages, images with their captions."""
import io as bytes_io

import matplotlib.pyplot as plt
import pytest
from pypdf import PdfReader

from ONFHAssistLib.analysis import pdf_report
from ONFHAssistLib.analysis.findings import key_findings

BANNER = "NOT FOR CLINICAL USE — research software — phantom-trained demo models"


def _analysis(warnings: int = 0, anonymised: bool = False) -> dict:
    """A two-hip analysis.json: a right hip with a lesion and a collapse risk, a left hip not found."""
    right = {"side": "R", "found": True, "reason": "", "center_lps": [-90.0, 10.0, 5.0], "radius_mm": 24.6,
             "volumes_ml": {"head": 62.3, "necrosis": 6.54}, "necrotic_ratio": 0.105, "necrotic_angle_deg": 140.0,
             "lateral_reach_deg": 12.0, "ood": {"score": 8.9, "threshold": 15.4, "reliable": True},
             "stage": {"arco": {"label": "II", "index": 2, "source": "onfh-staging-arco",
                                "probabilities": {"0": 0.05, "I": 0.1, "II": 0.7, "III": 0.1, "IV": 0.05}}},
             "grades": {"used": {"arco": "2", "jic_stage": "2", "jic_type": "B"}, "source": "predicted", "given": [],
                        "collapse": []},
             "gradcam_file": None, "sranet": {"probability": 0.97, "attention_file": "attention.nii.gz"},
             "risk": {"score": 0.4, "group": "low", "collapse_probability": {"12": 0.04, "36": 0.15, "60": 0.26},
                      "survival": {"months": [0, 12], "probability": [1.0, 0.96]}, "grades_used": {"arco": "2"},
                      "grades_source": "predicted"}, "risk_note": ""}
    left = {"side": "L", "found": False, "reason": "metal in the hip (implant, screw or nail)", "center_lps": None,
            "radius_mm": None, "volumes_ml": None, "necrotic_ratio": None, "necrotic_angle_deg": None, "stage": {},
            "gradcam_file": None, "sranet": None, "risk": None}
    name, pid = (None, None) if anonymised else ("Doe, Jane", "MRN-4711")
    return {"schema_version": "1.0",
            "input": {"path": "/data/scan.nii.gz", "modality": "mr_t1", "size": [240, 176, 112],
                      "spacing_mm": [1.6, 1.6, 2.0], "orientation": "LPS", "origin_lps": [0, 0, 0]},
            "patient": {"name": name, "id": pid, "birth_date": None if anonymised else "1945-12-31", "sex": "F",
                        "anonymised": anonymised},
            "study": {"date": None if anonymised else "2026-01-15", "accession_number": None,
                      "series_description": None if anonymised else "T1 COR",
                      "study_instance_uid": None, "series_instance_uid": None, "frame_of_reference_uid": None},
            "hips": [left, right], "files": {"label_map": "labels.nii.gz", "report": "report.html"},
            "models": [{"task": "segmentation", "name": "onfh-segmentation", "version": "1.1.0", "sha256": "ab" * 32}],
            "device": {"device": "cpu", "torch": "2"}, "timings_s": {"total": 12.5},
            "warnings": [f"warning number {n}: " + "a long explanation of what went wrong " * 3 for n in range(warnings)],
            "demo_model": True}


def _pages(path) -> list[str]:
    return [page.extract_text() for page in PdfReader(path).pages]


def _png() -> bytes:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    buffer = bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)
    plt.close(fig)
    return buffer.getvalue()


def test_every_page_carries_the_banner_the_patient_and_its_number(tmp_path):
    path = pdf_report.write_pdf(_analysis(warnings=12), tmp_path / "r.pdf", [("Right hip", _png())])
    pages = _pages(path)
    assert len(pages) >= 2
    for n, text in enumerate(pages, 1):
        assert BANNER in text
        assert "Patient: Doe, Jane   ID MRN-4711   born 1945-12-31   sex F" in text
        assert f"page {n} of {len(pages)}" in text
    assert any("Right hip" in text and "Key images" in text for text in pages)


def test_key_findings_come_before_everything_else(tmp_path):
    analysis = _analysis()
    first = _pages(pdf_report.write_pdf(analysis, tmp_path / "r.pdf"))[0]
    findings = key_findings(analysis)
    assert [f["side"] for f in findings] == ["R", "L"]
    for finding in findings:
        assert finding["sentence"][:40] in first.replace("\n", " ")
    assert first.index("Key findings") < first.index("Measurements")
    assert "10.5 %" in first and "24.6 mm" in first  # the right hip's table, as percentages and millimetres


def test_the_collapse_risk_prints_with_its_interval_and_what_the_interval_covers(tmp_path):
    analysis = _analysis()
    risk = analysis["hips"][1]["risk"]
    risk.update(collapse_interval={"12": [0.01, 0.08], "36": [0.09, 0.21], "60": [0.17, 0.34]},
                training_percentile=26.25, reference={"training_hips": 80, "baseline_hips": 66, "baseline_patients": 48,
                                                      "resamples": 2000, "level": 0.95, "interval_covers": "baseline"})
    text = " ".join(_pages(pdf_report.write_pdf(analysis, tmp_path / "r.pdf"))).replace("\n", " ")
    assert "collapse within 3 years 15 % (95 % interval 9 % to 21 %)" in text
    assert "risk score higher than 26 % of the 80 training hips" in text
    assert "what the intervals cover" in text and "not the network's own uncertainty" in text


def test_an_anonymised_analysis_names_no_one(tmp_path):
    pages = _pages(pdf_report.write_pdf(_analysis(anonymised=True), tmp_path / "r.pdf"))
    assert all("Patient: anonymised   sex F" in text for text in pages)
    assert not [text for text in pages if "Doe" in text or "MRN" in text or "2026-01-15" in text]


def _straddling_warnings() -> int:
    """A warning count for which the right hip's table, flowing on, would cross the end of page 1."""
    room = pdf_report.BOTTOM - pdf_report.TOP
    for count in range(40):
        content = pdf_report.blocks(_analysis(count), [])
        table = next(n for n, b in enumerate(content) if b.height > 1.5)  # the measurement table
        start = sum(b.height for b in content[:table])
        if start < room < start + content[table].height:
            return count
    raise AssertionError("no warning count pushes the table across the page end")


def test_a_table_that_would_cross_the_page_end_starts_the_next_page(tmp_path):
    pages = _pages(pdf_report.write_pdf(_analysis(_straddling_warnings()), tmp_path / "r.pdf"))
    holding = [n for n, text in enumerate(pages) if "femoral head radius" in text]
    last_row = [n for n, text in enumerate(pages) if "collapse within 5 years" in text]
    assert holding == last_row == [1]


@pytest.mark.parametrize("heights, keep, pages", [
    ([3, 4, 5], None, [0, 0, 1]),  # 3 + 4 + 5 > 10: the third starts page 2
    ([3, 4, 3], None, [0, 0, 0]),  # exactly full
    ([12, 1], None, [0, 1]),  # taller than a page: alone on its page
    ([6, 1, 4], [False, True, False], [0, 1, 1]),  # a heading moves with what it heads
    ([6, 1, 2], [False, True, False], [0, 0, 0]),
])
def test_paginate_by_hand(heights, keep, pages):
    assert pdf_report.paginate(heights, keep, room=10) == pages
