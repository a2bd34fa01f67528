"""The cross-validation rows that are not the tri-stream network: Cox on grades, the oracle Cox, the
radiomics signature, the survival SVM and the DLRC nomogram. Each takes a training and a test fold."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..analysis.grading import GRADE_ORDER, ordinal_grades
from ..atomic import atomic_write_text
from ..errors import InputError
from ..imaging.crops import CropSpec
from ..models import weights
from ..models.survival import TriStreamSurvival
from ..survival import baselines, stats
from ..survival.radiomics import PARAMS_VERSION, feature_table
from . import crop_cache
from .survival_data import HipSet, oracle_covariates

RADIOMICS_SPEC = CropSpec(96.0, 1.5)
COX_PENALIZER = 0.05  # small ridge: grade systems are strongly collinear (ARCO, Steinberg, Ficat track stage)
GRADES_COX, ORACLE_COX = "CoxPH (grades)", "oracle CoxPH (true hazard covariates)"
RADIOMICS_LASSO, RADIOMICS_SVM, DLRC = "radiomics signature (LASSO-Cox)", "survival SVM (radiomics)", "DLRC nomogram"
MODELS = (GRADES_COX, ORACLE_COX, RADIOMICS_LASSO, RADIOMICS_SVM, DLRC)


def cox_coefficients(x_train: np.ndarray, train: HipSet) -> np.ndarray:
    """Coefficients of a lightly penalised lifelines Cox model; 0 for a column that is constant in training."""
    varying = np.flatnonzero(x_train.std(0) > 0)
    columns = [f"x{i}" for i in varying]
    frame = pd.DataFrame(x_train[:, varying], columns=columns).assign(time=train.time, event=train.event)
    beta = np.zeros(x_train.shape[1])
    beta[varying] = stats.fit_cox(frame, "time", "event", penalizer=COX_PENALIZER).params_[columns].to_numpy()
    return beta


def cox_risk(x_train: np.ndarray, train: HipSet, x_test: np.ndarray) -> np.ndarray:
    """Risk scores (linear predictor) of `cox_coefficients` on the test rows."""
    return x_test @ cox_coefficients(x_train, train)


def known_grades(train: HipSet, test: HipSet) -> tuple[np.ndarray, np.ndarray]:
    """Grade levels for linear models, a missing grade replaced by the training fold's median of its system (0
    where the fold knows none): a linear model has no token for "missing"."""
    x_train, x_test = ordinal_grades(train.grades), ordinal_grades(test.grades)
    known = ~np.isnan(x_train)
    median = np.array([np.median(col[k]) if k.any() else 0.0 for col, k in zip(x_train.T, known.T)])
    return np.where(np.isnan(x_train), median, x_train), np.where(np.isnan(x_test), median, x_test)


def radiomics_features(data_dir: Path, hips: HipSet, out: Path, reporter=None) -> pd.DataFrame:
    """pyradiomics features of every hip at 1.5 mm, computed once per run folder (CSV, row order of `hips`)."""
    path = out / f"radiomics_{PARAMS_VERSION}.csv"
    if path.exists():
        return pd.read_csv(path)
    table = crop_cache.build(data_dir, RADIOMICS_SPEC, out / "cache-radiomics", reporter)
    crop_of = {(r.scan_id, r.side): r.crop for _, r in table.iterrows()}
    crops = [crop_cache.load(crop_of[(r.scan_id, r.side)]) for _, r in hips.table.iterrows()]
    features = feature_table([i for i, _ in crops], [lab for _, lab in crops], RADIOMICS_SPEC.spacing_mm)
    atomic_write_text(path, features.to_csv(index=False))
    return features


def _clinical(hips: HipSet, grades: np.ndarray) -> pd.DataFrame:
    """The nomogram's candidate clinical covariates: every grade system's level (`known_grades`) and oedema."""
    bme = pd.to_numeric(hips.table.get("bme", pd.Series([0] * len(hips.time))), errors="coerce").fillna(0)
    return pd.DataFrame(grades, columns=list(GRADE_ORDER)).assign(bme=bme.to_numpy())


def _image_features(checkpoint: Path, config, hips: HipSet, device) -> pd.DataFrame:
    """Pooled image-encoder features of the fold's trained tri-stream network (the DL signature's input)."""
    model = TriStreamSurvival(replace(config, variant="full")).to(device)
    weights.load(model, checkpoint, device=str(device))
    model.eval()
    with torch.no_grad():
        pooled = model.image(torch.from_numpy(hips.images).to(device)).cpu().numpy()
    return pd.DataFrame(pooled, columns=[f"dl_{i}" for i in range(pooled.shape[1])])


def baseline_risk(name: str, train: HipSet, test: HipSet, radiomics: pd.DataFrame | None, train_idx, test_idx,
                  dl_checkpoint: Path | None, config, device, seed: int, with_grades: bool = False) -> np.ndarray:
    """Risks of `test` from row `name` fitted on `train`; `with_grades`: the SVM reads the grade levels
    (`known_grades`) beside the radiomics features it selects."""
    if name == GRADES_COX:
        x_train, x_test = known_grades(train, test)
        return cox_risk(x_train, train, x_test)
    if name == ORACLE_COX:
        x_train, x_test = oracle_covariates(train.table), oracle_covariates(test.table)
        if x_train is None:
            raise InputError("the oracle Cox row needs the phantom's truth columns in hips.csv.")
        return cox_risk(x_train, train, x_test)
    r_train, r_test = radiomics.iloc[train_idx].reset_index(drop=True), radiomics.iloc[test_idx].reset_index(drop=True)
    if name == RADIOMICS_SVM:
        if with_grades:
            g_train, g_test = (pd.DataFrame(g, columns=list(GRADE_ORDER)) for g in known_grades(train, test))
            r_train, r_test = pd.concat([r_train, g_train], axis=1), pd.concat([r_test, g_test], axis=1)
        return baselines.survival_svm(r_train, train.time, train.event, r_test, seed,
                                      always=list(GRADE_ORDER) if with_grades else [])
    radiomic = baselines.lasso_signature(r_train, train.time, train.event, seed)
    if name == RADIOMICS_LASSO:
        return radiomic.score(r_test)
    if dl_checkpoint is None:
        raise InputError("the DLRC nomogram needs the fold's tri-stream network; run it with tri-stream in --models "
                         "(e.g. --models tri-stream,dlrc).")
    d_train, d_test = (_image_features(dl_checkpoint, config, h, device) for h in (train, test))
    deep = baselines.lasso_signature(d_train, train.time, train.event, seed)
    g_train, g_test = known_grades(train, test)
    clinical = baselines.univariable_selection(_clinical(train, g_train), train.time, train.event)
    # the nomogram is fitted on signature scores of hips the signatures never saw, applied with the fold's own
    x_train = _clinical(train, g_train)[clinical].assign(
        radiomics=baselines.out_of_fold_scores(r_train, train.time, train.event, seed),
        deep=baselines.out_of_fold_scores(d_train, train.time, train.event, seed))
    x_test = _clinical(test, g_test)[clinical].assign(radiomics=radiomic.score(r_test), deep=deep.score(d_test))
    return cox_risk(x_train.to_numpy(float), train, x_test.to_numpy(float))  # the nomogram
