"""Per-hip survival inputs: image and label crops, grade codes, outcome, and the phantom's true covariates.

Only hips with ONFH (jic_stage ≥ 1) are used: a healthy hip is censored by construction and would
make every model look better than it is (seed 000's cohort holds ONFH hips only).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.grading import grade_codes
from ..errors import InputError
from ..imaging.crops import CropSpec
from . import crop_cache

ORACLE_COLUMNS = ("necrotic_ratio", "necrotic_angle_deg", "jic_type", "jic_stage", "bme")


@dataclass
class HipSet:
    table: pd.DataFrame
    images: np.ndarray  # (N, 1, S, S, S) float32
    labels: np.ndarray  # (N, S, S, S) uint8
    grades: np.ndarray  # (N, 5) int64 codes in GRADE_SYSTEMS order
    time: np.ndarray
    event: np.ndarray

    def subset(self, index) -> "HipSet":
        index = np.asarray(index)
        return HipSet(self.table.iloc[index].reset_index(drop=True), self.images[index], self.labels[index],
                      self.grades[index], self.time[index], self.event[index])

    @property
    def patients(self) -> np.ndarray:
        return self.table.patient_id.astype(str).to_numpy()


def oracle_covariates(table: pd.DataFrame) -> np.ndarray | None:
    """The phantom hazard model's covariates, when the dataset carries the phantom's truth columns."""
    if not set(ORACLE_COLUMNS) <= set(table.columns):
        return None
    # a cohort with readers' grades (the seed-000 preset) keeps the generator's own in true_* columns
    jic_type = table["true_jic_type"] if "true_jic_type" in table else table.jic_type
    jic_stage = table["true_jic_stage"] if "true_jic_stage" in table else table.jic_stage
    kind = jic_type.map({"A": 0, "B": 1, "C1": 2, "C2": 3}).fillna(0)
    return np.c_[table.necrotic_ratio.astype(float), table.necrotic_angle_deg.astype(float) / 100.0, kind,
                 jic_stage.astype(float), table.bme.astype(float)]


def load_hips(data_dir: str | Path, spec: CropSpec, cache_dir: str | Path, reporter=None) -> HipSet:
    table = crop_cache.build(data_dir, spec, cache_dir, reporter)
    table = table[table.jic_stage.astype(str) != "0"] if "jic_stage" in table else table
    time = pd.to_numeric(table.time_months, errors="coerce")
    event = pd.to_numeric(table.event, errors="coerce")
    table = table[time.notna() & event.notna()].reset_index(drop=True)
    if len(table) < 4 or pd.to_numeric(table.event).sum() < 2:
        raise InputError(f"{data_dir}: survival needs at least 4 ONFH hips with outcomes and 2 collapses "
                         f"(found {len(table)} hips).")
    crops = [crop_cache.load(p) for p in table.crop]
    if any(label is None for _, label in crops):
        raise InputError(f"{data_dir}: every survival hip needs a label map (labels/<scan>).")
    images = np.stack([img for img, _ in crops])[:, None].astype(np.float32)
    labels = np.stack([lab for _, lab in crops]).astype(np.uint8)
    return HipSet(table, images, labels, grade_codes(table), pd.to_numeric(table.time_months).to_numpy(float),
                  pd.to_numeric(table.event).to_numpy(int))
