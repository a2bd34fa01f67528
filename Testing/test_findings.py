"""The clinician's key finding per hip (`analysis/findings.py`): one sentence per kind of hip, written out by
hand here as the oracle; the confidence line naming which models disagree; percentages; and the same words
in the CLI lines and at the top of the report of a real `onfh analyze` run on the bundled demo, whose
phantom truth (ARCO II, JIC type B on the right, a healthy left hip) is the independent check."""
import contextlib
import csv
import html
import io as text_io
import json

import numpy as np
import pytest
import SimpleITK as sitk

from ONFHAssistLib.analysis import findings, localization
from ONFHAssistLib.models import store as modelstore
from ONFHAssistLib.analysis.findings import collapse_note, grade_text, key_findings, percent_text, probability_text
from ONFHAssistLib.analysis.results import collapse_systems
from ONFHAssistLib.cli import main
from ONFHAssistLib.slicer import demo_case

STAGES = ("0", "I", "II", "III", "IV")
OOD_OK = {"score": 8.9, "threshold": 15.4, "reliable": True}
REFERENCE = {"training_hips": 80, "baseline_hips": 66, "baseline_patients": 48, "resamples": 2000, "level": 0.95,
             "interval_covers": "baseline"}


def _hip(side="R", arco=2, jic_type="B", necrosis_ml=6.9, ratio=0.105, p_stage=None, sranet=0.97, ood=OOD_OK,
         given=(), risk=True, group="low", reference=False):
    """A found hip as the pipeline writes it: ARCO from the staging network, the other grades derived."""
    probs = p_stage or {name: (0.81 if k == arco else 0.19 / 4) for k, name in enumerate(STAGES)}
    used = {"jic_stage": arco, "jic_type": jic_type if arco else "none", "arco": arco,
            "steinberg": {0: 0, 1: 1, 2: 2, 3: 3, 4: 5}[arco], "ficat": arco}
    grades = {"used": used, "source": "mixed" if given else "predicted", "given": sorted(given),
              "collapse": collapse_systems(used)}
    hip = {"side": side, "found": True, "reason": "", "confidence": 0.93, "center_lps": [0.0, 0.0, 0.0],
           "radius_mm": 25.0, "volumes_ml": {"head": 65.0, "necrosis": necrosis_ml}, "necrotic_ratio": ratio,
           "necrotic_angle_deg": 138.0, "lateral_reach_deg": 27.0 if arco else None, "ood": ood,
           "stage": {"arco": {"label": STAGES[arco], "index": arco, "probabilities": probs, "source": "onfh-staging"}},
           "sranet": {"probability": sranet, "attention_file": "attention.nii.gz"}, "grades": grades,
           "risk": None, "risk_note": ""}
    if grades["collapse"]:
        hip["risk_note"] = collapse_note(grades)
    elif arco == 0:
        hip["risk_note"] = "no collapse risk: no ONFH staged in this hip (the risk model applies to ONFH hips)."
    elif risk:
        hip["risk"] = {"score": 1.77, "group": group, "collapse_probability": {"12": 0.043, "36": 0.148, "60": 0.257},
                       "survival": {"months": [0, 12], "probability": [1.0, 0.957]}, "grades_used": used,
                       "grades_source": grades["source"]}
        if reference:  # what the pipeline adds when the model ships its training-cohort reference
            hip["risk"].update(collapse_interval={"12": [0.004, 0.079], "36": [0.0916, 0.2104], "60": [0.173, 0.343]},
                               training_percentile=26.25, reference=REFERENCE)
    return hip


def _not_found(reason, side="L"):
    return {"side": side, "found": False, "reason": reason, "stage": {}, "risk": None, "sranet": None}


def _one(hip):
    (finding,) = key_findings({"hips": [hip]})
    assert finding["kind"] in findings.KINDS and set(finding) >= {"side", "kind", "sentence", "confidence", "flag"}
    return finding


def test_a_pre_collapse_lesion_is_named_with_stage_size_place_and_risk():
    finding = _one(_hip())
    assert (finding["kind"], finding["flag"]) == ("lesion", "positive")
    assert finding["sentence"] == (
        "Right hip: ONFH suspected — ARCO II (pre-collapse), lesion 10.5 % of the head, within the medial two-thirds "
        "of the weight-bearing area (JIC type B); estimated collapse within 3 years 15 %; risk at or below the "
        "training cohort's median")
    assert "15 %; risk above the training cohort's median" in _one(_hip(group="high"))["sentence"]
    assert finding["confidence"] == (
        "Confidence: segmentation (6.9 ml lesion), staging network (ARCO II, p 0.81) and SRANet (P(necrosis) 0.97) "
        "agree; scan like the training data (score 8.9, limit 15.4).")


def test_with_a_training_reference_the_risk_carries_its_interval_and_percentile():
    """The words a clinician reads: the 3-year probability with its 95 % interval, the risk as a share of the
    training hips; the extremes of the percentile never read 'higher than 0 %'."""
    hip = _hip(reference=True)
    assert _one(hip)["sentence"].endswith(
        "estimated collapse within 3 years 15 % (95 % interval 9 % to 21 %); risk score higher than 26 % of the 80 "
        "training hips")
    assert findings.collapse_text(hip["risk"], "12") == "4 % (95 % interval < 1 % to 8 %)"
    hip["risk"]["training_percentile"] = 100.0
    assert findings.risk_reference_text(hip["risk"]) == "risk score higher than all 80 training hips"
    hip["risk"]["training_percentile"] = 0.0
    assert findings.risk_reference_text(hip["risk"]) == "risk score not higher than any of the 80 training hips"
    note = findings.interval_note(hip["risk"])
    assert "2000 patient-level bootstrap resamples" in note and "66 training hips (48 patients)" in note
    assert "not the network's own uncertainty" in note
    assert findings.interval_note(_hip()["risk"]).startswith("no interval")


def test_a_hip_without_necrosis_and_the_two_kinds_not_analysed():
    none = _one(_hip(side="L", arco=0, necrosis_ml=0.0, ratio=0.0, sranet=0.06))
    assert (none["kind"], none["flag"], none["sentence"]) == ("none", "negative", "Left hip: no necrosis found")
    metal = _one(_not_found("metal in the hip (implant, screw or nail): 12.4 ml above 2500 HU within 60 mm of the "
                            "head"))
    assert (metal["kind"], metal["flag"]) == ("metal", "not_assessed")
    assert metal["sentence"] == "Left hip: not analysed: metal in the hip (implant, screw or nail)"
    lost = _one(_not_found("no femoral head found: no acetabulum over the candidate head (3% of its dome covered by "
                           "pelvis)"))
    assert (lost["kind"], lost["flag"]) == ("not_found", "not_assessed")
    assert lost["sentence"] == ("Left hip: not found: no acetabulum over the candidate head (3% of its dome covered "
                                "by pelvis)")
    assert lost["confidence"] == "Confidence: not assessed (the hip was not analysed)."


def test_the_metal_sentence_follows_the_reason_the_localiser_writes():
    """A CT with a metal ball at the head: `localization.screen` refuses it, and the finding says metal."""
    array = np.full((40, 40, 40), -50.0, np.float32)
    zz, yy, xx = np.indices(array.shape)
    array[(zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 < 64] = 3000.0
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 2.0))
    estimate = localization.screen(image, "ct", "L", list(image.TransformIndexToPhysicalPoint((20, 20, 20))), 0.9)
    finding = _one(_not_found(estimate.reason))
    assert finding["kind"] == "metal" and finding["sentence"].endswith("metal in the hip (implant, screw or nail)")


def test_collapse_already_present_replaces_the_risk_on_a_stage_three_hip():
    hip = _hip(arco=3, jic_type="C2", ratio=0.32)
    assert hip["risk"] is None and hip["grades"]["collapse"] == ["arco", "jic_stage", "ficat", "steinberg"]
    finding = _one(hip)
    assert (finding["kind"], finding["flag"]) == ("collapsed", "positive")
    assert finding["sentence"] == (
        "Right hip: collapse already present — ARCO III, lesion 32.0 % of the head, reaching beyond the acetabular "
        "edge (JIC type C2); no collapse risk is given (the risk model applies to pre-collapse ONFH only)")
    assert "collapse within" not in finding["sentence"] and "%" not in finding["confidence"]
    assert collapse_systems({"arco": 2, "jic_stage": 2, "ficat": 2, "steinberg": 2}) == []
    assert collapse_systems({"arco": 3, "ficat": 1}) == ["arco"]  # one system at collapse is enough
    given = _hip(arco=3, given=("arco",))
    assert _one(given)["sentence"].startswith("Right hip: collapse already present — ARCO III (given), ")
    assert "Confidence" in _one(given)["confidence"] and "ARCO stage given by the user" in _one(given)["confidence"]


def test_a_scan_unlike_the_training_data_is_not_reliable_whatever_it_shows():
    finding = _one(_hip(ood={"score": 35.18, "threshold": 15.37, "reliable": False}))
    assert (finding["kind"], finding["flag"]) == ("unreliable", "not_assessed")
    assert finding["sentence"] == ("Right hip: not reliable: scan unlike the training data (score 35.2 above 15.4); "
                                   "its stage and risk are for review only")
    assert finding["confidence"].startswith("Confidence not reliable: ")


def test_disagreement_is_named_in_words():
    """The staging network calls ARCO II, the segmentation marks a lesion, SRANet finds none: SRANet is named
    as the one that disagrees, with its probability."""
    finding = _one(_hip(sranet=0.05))
    assert finding["kind"] == "lesion"
    assert finding["confidence"].startswith(
        "Confidence reduced: the segmentation marks a 6.9 ml lesion and the staging network says ARCO II (p 0.81), "
        "but SRANet finds no necrosis (P 0.05); ")
    unsure = {"0": 0.1, "I": 0.2, "II": 0.45, "III": 0.15, "IV": 0.1}
    line = _one(_hip(p_stage=unsure))["confidence"]
    assert line.startswith("Confidence reduced: ") and "no ARCO stage half of the probability (at most p 0.45)" in line
    unchecked = _one(_hip(ood=None))["confidence"]
    assert unchecked.startswith("Confidence reduced: ") and "not checked against the training data" in unchecked


def test_percentages_and_probabilities_at_sensible_precision():
    assert percent_text(0.105) == "10.5 %" and percent_text(0.1048) == "10.5 %" and percent_text(0.0) == "0.0 %"
    assert percent_text(0.148, 0) == "15 %" and percent_text(0.004, 0) == "< 1 %" and percent_text(0.996, 0) == "> 99 %"
    assert percent_text(0.0003) == "< 0.1 %" and percent_text(1.0, 0) == "100 %"
    assert probability_text(0.6115) == "0.61" and probability_text(0.999) == "> 0.99"
    assert probability_text(0.001) == "< 0.01"


def test_grades_written_as_clinicians_write_them():
    assert grade_text("arco", 2) == "ARCO II" and grade_text("jic_stage", 3) == "JIC stage 3"
    assert grade_text("ficat", 4) == "Ficat IV" and grade_text("jic_type", "C1") == "JIC type C1"
    # Steinberg's extent classes by the share of the head: A < 15 % ≤ B ≤ 30 % < C, for stages I–IV only
    shares = {0.10: "A", 0.15: "B", 0.30: "B", 0.31: "C"}
    assert {s: grade_text("steinberg", 2, s)[-1] for s in shares} == shares
    assert grade_text("steinberg", 5, 0.5) == "Steinberg V" and grade_text("steinberg", 2) == "Steinberg II"
    lines = dict(findings.grade_lines(_hip(arco=3, jic_type="C2", ratio=0.32)))
    assert lines["ARCO III (IIIA/IIIB not given: the depth of the head's depression is not measured)"].startswith(
        "predicted by the staging network (p 0.81)")
    assert lines["Ficat III"] == "derived: same stage number as the predicted ARCO stage"
    assert "Steinberg IIIC" in lines and lines["JIC type C2"].startswith("derived from how far the segmented lesion")
    assert findings.grade_lines(_hip(arco=0, necrosis_ml=0.0, ratio=0.0)) == [
        ("ARCO 0", "predicted by the staging network (p 0.81)")]
    overruled = {"0": 0.06, "I": 0.11, "II": 0.33, "III": 0.34, "IV": 0.16}  # the real CT's right hip
    assert findings.grade_lines(_hip(arco=0, necrosis_ml=0.0, ratio=0.0, p_stage=overruled)) == [
        ("ARCO 0", "set by the segmentation: no lesion in the head (the staging network preferred ARCO III, p 0.34)")]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`onfh analyze` on the bundled demo scan, as a user runs it, with what it printed."""
    out = tmp_path_factory.mktemp("findings-demo")
    stdout = text_io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["analyze", str(demo_case.image_path()), "--out", str(out), "--device", "cpu",
                     "--progress", "none"])
    assert code == 0
    return json.loads((out / "analysis.json").read_text(encoding="utf-8")), out, stdout.getvalue()


def test_a_real_run_says_what_the_phantom_truth_is(demo_run):
    analysis, _, _ = demo_run
    truth = {t["side"]: t for t in demo_case.truth()}
    right, left = key_findings(analysis)
    assert (right["kind"], left["kind"]) == ("lesion", "none") and truth["L"]["arco"] == 0
    assert truth["R"]["arco"] == 2 and truth["R"]["jic_type"] == "B"
    ratio = analysis["hips"][0]["necrotic_ratio"]
    assert abs(ratio - truth["R"]["necrotic_ratio"]) < 0.03
    assert right["sentence"].startswith(
        f"Right hip: ONFH suspected — ARCO II (pre-collapse), lesion {percent_text(ratio)} of the head, within the "
        "medial two-thirds of the weight-bearing area (JIC type B); estimated collapse within 3 years ")
    risk = analysis["hips"][0]["risk"]
    low, high = risk["collapse_interval"]["36"]
    assert right["sentence"].endswith(
        f"3 years {percent_text(risk['collapse_probability']['36'], 0)} (95 % interval {percent_text(low, 0)} to "
        f"{percent_text(high, 0)}); risk score higher than {risk['training_percentile']:.0f} % of the "
        f"{modelstore.find_model('survival').card['trained_on']['hips']} training hips")
    assert left["sentence"] == "Left hip: no necrosis found"


def test_the_cli_lines_and_the_report_open_with_the_key_findings(demo_run):
    analysis, out, printed = demo_run
    found = key_findings(analysis)
    for finding in found:
        assert f"{finding['sentence']}.\n  {finding['confidence']}\n" in printed
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "not for clinical use" in page
    markers = ("Key findings", *(html.escape(f["sentence"]) for f in found), "<h2>Right hip</h2>", "<h2>Images</h2>",
               "<h2>Technical details</h2>")
    order = [page.index(marker) for marker in markers]
    assert order == sorted(order)
    internals = page.index("<summary>Model internals</summary>")
    assert page.index("SRANet P(necrosis)", internals) > internals  # model numbers are folded away
    assert "0.105" not in page.split("<h2>Technical details</h2>")[0].split("<details>")[0]  # ratios as percentages
    assert "<td>> " not in page and "<td>< " not in page  # '> 0.99' is text, escaped


def test_batch_lists_every_hip_and_every_failed_scan(tmp_path):
    """cohort.csv: a row per hip asked for, failed scans included with their reason (no analysis needed:
    both scans fail)."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "broken.nii.gz").write_bytes(b"not a volume")
    (inputs / "empty.nrrd").write_bytes(b"")
    assert main(["analyze", str(inputs), "--out", str(tmp_path / "out"), "--sides", "L", "R", "--progress", "none",
                 "--device", "cpu"]) == 2
    rows = list(csv.DictReader((tmp_path / "out" / "cohort.csv").open(encoding="utf-8")))
    assert [(r["scan"], r["side"], r["kind"]) for r in rows] == [
        ("broken", "R", "failed"), ("broken", "L", "failed"), ("empty", "R", "failed"), ("empty", "L", "failed")]
    assert all(r["reason"] and r["finding"] == f"scan not analysed: {r['reason']}" for r in rows)
