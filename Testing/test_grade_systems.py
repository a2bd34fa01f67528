"""Clinicians' grades in the seed-000 phantom: each system read from what it measures, so the systems agree
well but not perfectly (Cohen's kappa from scikit-learn), readers disagree, and a missing grade is blank."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from ONFHAssistLib.phantom import cohort as phantom
from ONFHAssistLib.phantom.grades import EXTENT_CUTS, read_grades
from ONFHAssistLib.phantom.hips import PRESETS, HipTruth

SA_LETTER = {1: "A", 2: "B", 3: "C"}


@pytest.fixture(scope="module")
def graded():
    """Lesion hips of 150 seed-000 patients with their truth and the readers' grades."""
    hips, rows = [], []
    for i in range(150):
        anat = phantom.sample_anatomy(phantom.patient_rng(0, i), preset=PRESETS["seed000"])
        hips += [h for h in anat.hips if h.has_lesion]
        rows += [r for r, h in zip(phantom.hip_rows("P", "S", "mr_t1", anat), anat.hips) if h.has_lesion]
    return hips, pd.DataFrame(rows)


def _kappa(a, b) -> float:
    return cohen_kappa_score(np.asarray(a).astype(str), np.asarray(b).astype(str))


def test_stage_systems_agree_well_but_not_perfectly(graded):
    _, table = graded
    systems = ("jic_stage", "arco", "ficat", "steinberg")
    matrix = pd.DataFrame([[_kappa(table[a], table[b]) for b in systems] for a in systems], systems, systems)
    off_diagonal = matrix.to_numpy()[~np.eye(len(systems), dtype=bool)]
    assert off_diagonal.min() > 0.6 and off_diagonal.max() < 0.95, matrix
    # a film misses stage-II changes that CT shows: Ficat calls stage I more often than ARCO
    assert (table.ficat == 1).sum() > (table.arco == 1).sum()


def test_each_grade_follows_what_it_measures(graded):
    hips, table = graded
    truth_stage = np.array([h.jic_stage for h in hips])
    assert 0.75 < _kappa(table.arco, truth_stage) < 1.0
    share = np.array([h.necrotic_ratio for h in hips])
    true_extent = np.array(["ABC"[i] for i in np.searchsorted(EXTENT_CUTS, share)])
    sa = table.sa_steinberg.map(SA_LETTER)
    # the volumetric SA grade is closer to the true lesion share than the eyeballed Steinberg extent
    assert (sa == true_extent).mean() > (table.steinberg_extent == true_extent).mean() > 0.6
    assert 0.3 < _kappa(sa, table.steinberg_extent) < 0.95
    true_type = [h.jic_type for h in hips]
    assert 0.45 < _kappa(table.jic_type, true_type) < 0.95  # read from the lesion's lateral reach


def test_two_readers_disagree_on_some_hips(graded):
    hips, table = graded
    rng = np.random.default_rng(7)
    second = pd.DataFrame([read_grades(h, rng) for h in hips])
    for system in ("arco", "ficat", "jic_stage", "jic_type", "steinberg_extent", "sa_steinberg"):
        assert 0.4 < _kappa(table[system], second[system]) < 0.98, system


def test_collapse_depth_splits_arco_iii_and_missing_grades_are_blank():
    rng = np.random.default_rng(0)
    hip = HipTruth("R", 24.0, has_lesion=True, jic_type="B", jic_stage=3, theta_deg=28, tilt_deg=-4,
                   apex_shift=0.3, floor_ratio=0.2, necrotic_ratio=0.2)
    shallow = [read_grades(HipTruth(**{**hip.__dict__, "collapse_mm": 1.0}), rng)["arco_2019"] for _ in range(50)]
    deep = [read_grades(HipTruth(**{**hip.__dict__, "collapse_mm": 3.5}), rng)["arco_2019"] for _ in range(50)]
    assert shallow.count("IIIA") > 45 and deep.count("IIIB") > 45
    blank = read_grades(hip, rng, missing_prob=1.0)
    assert set(blank.values()) == {""}  # missing: blank in hips.csv, never stage 0
    healthy = read_grades(HipTruth("L", 24.0), rng)
    assert healthy["arco"] == 0 and healthy["jic_type"] == "none"
