"""`onfh cv survival` end to end on a small phantom cohort: every row, resumable folds, grade codes."""
import json

import numpy as np
import pandas as pd
import pytest
from ONFHAssistLib.analysis.grading import GRADE_ORDER, grade_codes, ordinal_grades
from ONFHAssistLib.cli import main
from ONFHAssistLib.dataset import GRADE_CODES
from ONFHAssistLib.models.survival import GRADE_SYSTEMS
from ONFHAssistLib.models.survival_zoo import COMPARATORS
from ONFHAssistLib.phantom.cohort import write_cohort
from ONFHAssistLib.training import survival_recipe
from ONFHAssistLib.training.survival_baselines import MODELS as BASELINE_MODELS
from ONFHAssistLib.training.survival_recipe import METRICS, MODEL_IDS, NETWORK_MODELS


def test_grade_codes_cover_every_dataset_code():
    assert list(GRADE_ORDER) == list(GRADE_SYSTEMS)
    for name, order in GRADE_ORDER.items():
        assert set(order) == GRADE_CODES[name] and len(order) + 1 == GRADE_SYSTEMS[name]  # + the missing token
    codes = grade_codes(pd.DataFrame({"jic_stage": ["3"], "jic_type": ["C1"], "arco": ["2"], "steinberg": ["6"],
                                      "ficat": ["0"]}))
    assert codes.tolist() == [[3, 3, 2, 6, 0]]


def test_a_missing_grade_is_its_own_token_not_stage_0():
    """Blank (hips.csv) or absent (no such column) → the token after the last level; linear models see NaN."""
    table = pd.DataFrame({"jic_stage": ["2", "nan", "0"], "jic_type": ["B", "none", ""], "arco": ["", "1", "0"],
                          "steinberg": ["3", "2", "0"]})
    codes = grade_codes(table)
    assert codes.tolist() == [[2, 2, 5, 3, 5], [5, 0, 1, 2, 5], [0, 5, 0, 0, 5]]
    assert (codes < np.array(list(GRADE_SYSTEMS.values()))).all()
    levels = ordinal_grades(codes)
    assert np.isnan(levels[0, 2]) and np.isnan(levels[:, 4]).all() and levels[2, 0] == 0.0 and levels[0, 0] == 2.0


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("surv") / "data", 14, seed=11, modality="mr_t1",
                        shape=(120, 90, 60), spacing=(3.0, 3.0, 3.0))


def test_cv_writes_every_row_and_resumes(cohort, tmp_path, capsys, monkeypatch):
    """Every row but the comparison networks (trained in test_survival_comparators; they take the same path)."""
    monkeypatch.setattr(survival_recipe, "PAIRED_BOOTSTRAP", 30)  # the interval itself: test_survival_table1
    rows = [i for i, name in MODEL_IDS.items() if NETWORK_MODELS.get(name) not in COMPARATORS]
    svm_with_grades = "survival SVM (radiomics) [radiomics + grades]"  # an input combination: the SVM reads grades
    argv = ["cv", "survival", "--data", str(cohort), "--out", str(tmp_path), "--folds", "2", "--epochs", "2",
            "--progress", "none", "--device", "cpu", "--models", ",".join(rows + ["radiomics-svm[radiomics+grades]"])]
    assert main(argv) == 0
    table = json.loads((tmp_path / "table.json").read_text(encoding="utf-8"))
    assert set(table) == {MODEL_IDS[i] for i in rows} | {svm_with_grades} and set(BASELINE_MODELS) <= set(table)
    risks = {name: json.loads((tmp_path / "folds" / f"fold0-{survival_recipe._slug(name)}.json").read_text())["risk"]
             for name in ("survival SVM (radiomics)", svm_with_grades)}
    assert not np.allclose(*risks.values())  # the grades reach the SVM
    for row in table.values():
        assert 0.0 <= row["harrell_c"]["mean"] <= 1.0
        assert set(row) == set(METRICS)  # Table 1's columns: C, AUC at 6/12/36/60/120 months, iAUC; + Uno C, IBS
    finished = sorted((tmp_path / "folds").glob("*.json"))
    assert len(finished) == 2 * len(table)
    stamps = {p: p.stat().st_mtime_ns for p in finished}
    (finished[0]).unlink()  # as if the run had been killed before this (fold, model) finished
    assert main(argv) == 0
    assert all(p.stat().st_mtime_ns == stamps[p] for p in finished[1:]) and finished[0].exists()
    assert len(list((tmp_path / "plots").glob("km_*.png"))) == len(table)
    for months in (36, 60):
        assert (tmp_path / "plots" / f"calibration_{months}m.png").stat().st_size > 5_000
        assert (tmp_path / "plots" / f"decision_curve_{months}m.png").stat().st_size > 5_000
    fold = json.loads(next((tmp_path / "folds").glob("fold0-CoxPH*.json")).read_text(encoding="utf-8"))
    assert len(fold["p36"]) == len(fold["risk"]) and all(0 <= a <= b <= 1 for a, b in zip(fold["p36"], fold["p60"]))
    assert all(0.0 <= row["ibs"]["mean"] <= 1.0 for row in table.values() if "ibs" in row)  # Brier scores; NaN fails
    assert "nri_idi_tri_stream_vs_grades_cox" in json.loads((tmp_path / "horizon.json").read_text(encoding="utf-8"))
    sle = json.loads((tmp_path / "paired.json").read_text(encoding="utf-8"))["SLE in the tri-stream network"]
    assert set(sle["metrics"]) == set(METRICS) and "| SLE in the tri-stream network | harrell_c |" in (
        tmp_path / "table.md").read_text(encoding="utf-8")


def test_train_survival_saves_a_model_with_its_baseline(cohort, tmp_path):
    argv = ["train", "survival", "--data", str(cohort), "--out", str(tmp_path), "--epochs", "2", "--progress", "none",
            "--device", "cpu"]
    assert main(argv) == 0
    card = json.loads((tmp_path / "model" / "model.json").read_text(encoding="utf-8"))
    assert card["task"] == "survival" and card["config"]["variant"] == "full"
    assert {"low", "high"} == set(card["training_km"]) and all(
        curve["survival"][0] <= 1.0 and curve["n"] > 0 for curve in card["training_km"].values())
    baseline = card["baseline"]
    assert baseline["times"] == sorted(baseline["times"]) and len(baseline["times"]) == len(baseline["cumulative_hazard"])
    assert all(b >= a for a, b in zip(baseline["cumulative_hazard"], baseline["cumulative_hazard"][1:]))


def test_evaluate_survival_scores_the_shipped_model_as_the_libraries_do(cohort, tmp_path):
    """Held-out scoring of a trained model (issue 22's pre-registered cohort): C by lifelines, IBS by scikit-survival
    on S(t) rebuilt by hand from the card's Breslow baseline."""
    from lifelines.utils import concordance_index
    from ONFHAssistLib.models import store as modelstore
    from sksurv.metrics import integrated_brier_score
    from sksurv.util import Surv

    argv = ["evaluate", "survival", "--data", str(cohort), "--out", str(tmp_path), "--progress", "none",
            "--device", "cpu"]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    hips = pd.read_csv(tmp_path / "per_hip.csv")
    assert summary["hips"] == len(hips) and summary["collapses"] == int(hips.event.sum()) and len(hips) >= 10
    assert summary["harrell_c"] == pytest.approx(concordance_index(hips.time_months, -hips.risk, hips.event), abs=1e-3)
    base = modelstore.find_model("survival", None).card["baseline"]
    h0 = np.concatenate([[0.0], base["cumulative_hazard"]])

    def survival(months):
        steps = np.searchsorted(base["times"], months, side="right")
        return np.exp(-np.outer(np.exp(hips.risk - base["mean_risk"]), h0[steps]))

    assert np.allclose(hips.p_collapse_60m, 1 - survival(np.array([60.0]))[:, 0], atol=1e-3)
    grid = np.arange(6.0, hips.time_months.max(), 6.0)
    grid = grid[grid > hips.time_months.min()]
    y = Surv.from_arrays(hips.event.astype(bool), hips.time_months)
    assert summary["ibs"] == pytest.approx(integrated_brier_score(y, y, survival(grid), grid), abs=2e-3)
    assert set(summary["calibration"]) == {"36", "60"} and summary["model"]["name"] == "onfh-survival"
