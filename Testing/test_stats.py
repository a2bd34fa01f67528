"""Statistics against published numbers on the datasets that ship with scikit-survival and lifelines."""
import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_lung, load_rossi
from sksurv.datasets import load_gbsg2
from sksurv.linear_model import CoxPHSurvivalAnalysis

from ONFHAssistLib.survival import stats


def test_gbsg2_efron_cox_harrell_c():
    x, y = load_gbsg2()
    numeric = pd.DataFrame({"age": x.age, "estrec": x.estrec, "pnodes": x.pnodes, "progrec": x.progrec,
                            "tsize": x.tsize, "horTh": (x.horTh == "yes").astype(float),
                            "menostat": (x.menostat == "Post").astype(float),
                            "tgrade": x.tgrade.cat.codes.astype(float)})  # I < II < III
    risk = CoxPHSurvivalAnalysis(ties="efron").fit(numeric, y).predict(numeric)
    assert stats.harrell_c(y["time"], y["cens"], risk) == pytest.approx(0.6879283395455092, abs=1e-9)


def test_lung_logrank_by_sex():
    lung = load_lung().dropna(subset=["time", "status", "sex"])
    chi2, p = stats.logrank(lung.time, lung.status, lung.sex)
    assert chi2 == pytest.approx(10.33, abs=0.01) and p < 0.01


def test_rossi_efron_coefficients():
    fitted = stats.fit_cox(load_rossi(), "week", "arrest").params_
    expected = {"fin": -0.379422, "age": -0.057438, "race": 0.313900, "wexp": -0.149796, "mar": -0.433704,
                "paro": -0.084871, "prio": 0.091497}
    for name, value in expected.items():
        assert fitted[name] == pytest.approx(value, abs=1e-5), name


def test_time_dependent_auc_and_uno_c_run_on_censored_data():
    rossi = load_rossi()
    risk = stats.fit_cox(rossi, "week", "arrest").predict_partial_hazard(rossi).to_numpy()
    auc, mean_auc = stats.time_dependent_auc(rossi.week, rossi.arrest, rossi.week, rossi.arrest, risk, [13, 26, 39])
    assert np.all((auc > 0.5) & (auc < 1)) and 0.5 < mean_auc < 1
    assert 0.5 < stats.uno_c(rossi.week, rossi.arrest, rossi.week, rossi.arrest, risk) < 1
