"""Dataset validation, patient-grouped folds and atomic adds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from ONFHAssistLib import dataset
from ONFHAssistLib.imaging import io
from ONFHAssistLib.phantom import cohort as phantom
from ONFHAssistLib.cli import main
from ONFHAssistLib.errors import InputError


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return phantom.write_cohort(tmp_path_factory.mktemp("ds") / "cohort", 3, seed=3, modality="mixed",
                                spacing=(3.0,))


def test_phantom_cohort_validates_with_a_true_summary(cohort):
    report = dataset.validate(cohort)
    assert report.ok, report.errors
    table = pd.read_csv(cohort / "hips.csv")
    s = report.summary
    assert (s["scans"], s["hips"], s["patients"]) == (3, 6, 3)
    assert s["events"] == int(table.event.sum()) and s["censored"] == int((table.event == 0).sum())
    labels = [sitk.GetArrayFromImage(io.read_image(p)) for p in sorted((cohort / "labels").iterdir())]
    assert s["label_coverage_scans"]["necrosis"] == sum(int((a == 3).any()) for a in labels)
    assert s["label_coverage_scans"]["femur"] == 3


BAD_ROWS = {
    "time_months": ("-3", "time_months '-3' must be a positive number"),
    "event": ("2", "event '2' must be 0"),
    "jic_type": ("D", "jic_type 'D' is not one of"),
    "side": ("X", "side 'X' must be L or R"),
    "scan_id": ("../../etc", "scan_id '../../etc' must be a plain name"),
}


@pytest.mark.parametrize("column", sorted(BAD_ROWS))
def test_bad_rows_are_named_by_row(cohort, tmp_path, column):
    table = pd.read_csv(cohort / "hips.csv", dtype=str, keep_default_na=False)
    table.loc[1, column] = BAD_ROWS[column][0]
    problems = dataset.check_rows(table)
    assert any(p.startswith("hips.csv row 2:") and BAD_ROWS[column][1] in p for p in problems), problems


def test_duplicates_missing_columns_and_two_patients(cohort, tmp_path):
    table = pd.read_csv(cohort / "hips.csv", dtype=str, keep_default_na=False)
    dup = pd.concat([table, table.iloc[[0]]], ignore_index=True)
    assert any("duplicate hip" in p for p in dataset.check_rows(dup))
    two = table.copy()
    two.loc[0, "patient_id"] = "SOMEONE_ELSE"
    assert any("more than one patient_id" in p for p in dataset.check_rows(two))
    (tmp_path / "hips.csv").write_text(table.drop(columns=["event"]).to_csv(index=False))
    with pytest.raises(InputError, match="missing column"):
        dataset.read_hips(tmp_path)


def test_label_grid_mismatch_and_out_of_range_values(cohort):
    image = io.read_image(next((cohort / "images").iterdir()))
    label = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    label.CopyInformation(image)
    shifted = sitk.Image(label)
    shifted.SetOrigin([o + 1.0 for o in image.GetOrigin()])
    with pytest.raises(InputError, match="grid"):
        dataset.check_label(shifted, image, "lab")
    label[1, 1, 1] = 7
    with pytest.raises(InputError, match="outside 0-3"):
        dataset.check_label(label, image, "lab")


cohorts = st.lists(st.tuples(st.integers(1, 2), st.booleans()), min_size=6, max_size=40)


@settings(max_examples=60, deadline=None)
@given(cohorts, st.integers(2, 5), st.integers(0, 3))
def test_folds_never_split_a_patient(patients, k, seed):
    rows = [{"patient_id": f"P{i}", "scan_id": f"P{i}_S1", "side": s, "time_months": "10", "event": str(int(e))}
            for i, (n, e) in enumerate(patients) for s in ("R", "L")[:n]]
    table = pd.DataFrame(rows)
    if k > len(patients):
        with pytest.raises(InputError):
            dataset.patient_folds(table, k, seed)
        return
    folds = dataset.patient_folds(table, k, seed)
    assert set(folds) == set(table.patient_id) and set(folds.values()) <= set(range(k))
    assert folds == dataset.patient_folds(table, k, seed)
    per_hip = table.patient_id.map(folds)
    assert (per_hip.groupby(table.patient_id).nunique() == 1).all()


def test_folds_are_stratified_by_event():
    rng = np.random.default_rng(0)
    rows = [{"patient_id": f"P{i}", "scan_id": f"P{i}_S1", "side": "R", "time_months": "5",
             "event": str(int(rng.random() < 0.45))} for i in range(100)]
    table = pd.DataFrame(rows)
    folds = table.patient_id.map(dataset.patient_folds(table, 5, seed=1))
    rates = table.event.astype(int).groupby(folds).mean()
    assert rates.max() - rates.min() <= 0.1


def test_add_case_is_atomic_and_validated(cohort, tmp_path, monkeypatch):
    root = tmp_path / "ds"
    root.mkdir()
    image_path = next((cohort / "images").iterdir())
    label_path = cohort / "labels" / image_path.name
    scan = dataset.add_case(root, image_path, label_path, "NEW1",
                            [{"side": "R", "time_months": "12", "event": "1", "jic_stage": "2"}])
    assert dataset.validate(root).ok
    before = (root / "hips.csv").read_text(encoding="utf-8")

    def crash(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(dataset, "write_table", crash)
    with pytest.raises(OSError):
        dataset.add_case(root, image_path, label_path, "NEW2", [{"side": "L", "time_months": "3", "event": "0"}])
    assert (root / "hips.csv").read_text(encoding="utf-8") == before and dataset.validate(root).ok
    with pytest.raises(InputError, match="event"):
        dataset.add_case(root, image_path, None, "NEW3", [{"side": "L", "time_months": "3", "event": "yes"}])
    assert scan == "NEW1_S1"


def test_cli_validate_and_add(cohort, tmp_path, capsys):
    assert main(["dataset", "validate", str(cohort), "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert "3 scans, 6 hips, 3 patients" in out and "patients per fold: [1, 1, 1]" in out
    image_path = next((cohort / "images").iterdir())
    root = tmp_path / "new"
    assert main(["dataset", "add", str(root), "--image", str(image_path), "--patient", "Z9",
                 "--side", "R:time_months=30,event=0,jic_stage=1"]) == 0
    assert main(["dataset", "add", str(root), "--image", str(image_path), "--patient", "Z9",
                 "--side", "Q"]) == 2
    assert len(pd.read_csv(root / "hips.csv")) == 1
    (root / "hips.csv").write_text("patient_id,scan_id,side,time_months,event\nZ9,Z9_S1,R,abc,0\n")
    assert main(["dataset", "validate", str(root)]) == 2
    assert "time_months 'abc' is not a number" in capsys.readouterr().out
