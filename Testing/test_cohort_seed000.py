"""The seed-000 cohort preset: seed 000's population (pre-collapse hips, ≈ 47 % collapse, its time to
collapse) checked on the generated hips.csv rows, which need no volumes (anatomy and grades only)."""
import numpy as np
import pandas as pd
import pytest

from ONFHAssistLib import dataset
from ONFHAssistLib.phantom import cohort as phantom
from ONFHAssistLib.phantom.hips import PRESETS, sample_patient_hips

SEED000 = PRESETS["seed000"]


def _rows(seed: int, patients: int) -> tuple[pd.DataFrame, list]:
    rows, hips = [], []
    for i in range(patients):
        anat = phantom.sample_anatomy(phantom.patient_rng(seed, i), preset=SEED000)
        rows += phantom.hip_rows(f"P{i}", f"P{i}_S1", "mr_t1", anat)
        hips += anat.hips
    table = pd.DataFrame(rows)
    lesion = table.sranet_positive == 1
    return table[lesion].reset_index(drop=True), [h for h in hips if h.has_lesion]


def test_seed_0_with_70_patients_is_shaped_like_seed_000():
    onfh, truth = _rows(0, 70)
    assert 85 <= len(onfh) <= 100 and onfh.patient_id.nunique() == 70  # paper: 92 hips of 70 patients
    stages = np.array([h.jic_stage for h in truth])
    assert set(stages) == {1, 2} and 0.45 <= (stages == 1).mean() <= 0.70  # paper: 52 stage 1, 40 stage 2
    assert set(onfh.jic_stage) <= {1, 2} and set(onfh.arco_2019) <= {"I", "II"}  # nobody has collapsed yet
    assert onfh.true_jic_stage.tolist() == stages.tolist() and (onfh.true_jic_stage != onfh.ficat).any()
    assert 0.35 <= onfh.event.mean() <= 0.60  # paper: ≈ 47 %
    assert onfh.time_months.min() >= 1.0 and onfh.time_months.max() <= 174.0
    collapse = onfh.time_months[onfh.event == 1]
    assert 8 <= collapse.median() <= 20 and collapse.quantile(0.9) <= 100  # paper: 12, 82


def test_population_matches_seed_000_time_to_collapse():
    hips = [h for i in range(300) for h in sample_patient_hips(phantom.patient_rng(1, i), preset=SEED000)
            if h.has_lesion]
    event = np.array([h.event for h in hips])
    assert 0.42 <= event.mean() <= 0.52
    collapse = pd.Series([h.time_months for h in hips])[event == 1]
    q25, q50, q75, q90 = collapse.quantile([0.25, 0.5, 0.75, 0.9])
    assert 2.5 <= q25 <= 5.0 and 9.0 <= q50 <= 16.0 and 25.0 <= q75 <= 45.0 and 60.0 <= q90 <= 100.0


def test_default_cohort_is_unchanged_by_the_preset_machinery():
    rng = phantom.patient_rng(0, 3)
    anat = phantom.sample_anatomy(rng)
    assert all(h.reading is None for h in anat.hips)
    rows = phantom.hip_rows("P", "S", "mr_t1", anat)
    assert all(r["arco"] == r["ficat"] == r["jic_stage"] for r in rows) and "arco_2019" not in rows[0]
    # the same patient stream draws the same anatomy either way; only the hips differ
    other = phantom.sample_anatomy(phantom.patient_rng(0, 3), preset=SEED000)
    assert other.head_separation_mm == anat.head_separation_mm


def test_written_seed000_dataset_validates(tmp_path):
    root = phantom.write_cohort(tmp_path / "d", 2, seed=0, shape=(48, 40, 32), spacing=(6.0, 6.0, 6.0),
                                preset="seed000")
    report = dataset.validate(root)
    assert report.errors == []
    table = pd.read_csv(root / "hips.csv", dtype=str, keep_default_na=False)
    assert {"arco_2019", "jic_2001", "steinberg_extent", "sa_steinberg"} <= set(table.columns)
    assert '"preset": "seed000"' in (root / "dataset.json").read_text(encoding="utf-8")
    with pytest.raises(KeyError):
        phantom.write_cohort(tmp_path / "e", 1, seed=0, preset="seed999")
