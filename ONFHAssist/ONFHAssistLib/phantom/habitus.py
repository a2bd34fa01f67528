"""Who the realistic phantom's patient is: sex, age, body-mass index, and the shape choices that follow.

Drawn from its own child stream of the patient's generator, so a classic and a realistic scan of one
seed share the hips, grades and collapse times (`cohort.sample_anatomy`) and differ only in the body.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Habitus:
    """Patient-level body parameters (mm, degrees, years, kg/m^2)."""

    sex: str
    age: float
    bmi: float
    scale: float  # pelvis size relative to an average adult (from the inter-head distance)
    lce_deg: float  # lateral centre-edge angle the acetabular roof is built to give
    acetabular_inclination_deg: float
    acetabular_anteversion_deg: float
    joint_space_mm: float  # cartilage of head and acetabulum together
    fat_mm: float  # subcutaneous fat over the hips
    muscle_bulk: float  # 1 = average; men and the young more, the old less
    bladder_fill: float  # bladder semi-axes scale
    rectum_gas: float  # share of the rectal lumen filled with gas


def sample_habitus(rng: np.random.Generator, head_separation_mm: float) -> Habitus:
    sex = "F" if rng.random() < 0.5 else "M"
    age = float(rng.uniform(25, 80))
    bmi = float(np.clip(rng.normal(26.5, 4.5), 17.5, 42.0))
    fat = (bmi - 16.0) * (2.6 if sex == "F" else 1.8) + 4.0
    bulk = float(np.clip((1.08 if sex == "M" else 0.92) - 0.004 * (age - 45) + rng.normal(0, 0.05), 0.75, 1.25))
    return Habitus(
        sex=sex, age=age, bmi=bmi, scale=head_separation_mm / 185.0,
        lce_deg=float(rng.uniform(20, 40)), acetabular_inclination_deg=float(rng.uniform(38, 48)),
        acetabular_anteversion_deg=float(rng.uniform(12, 22)), joint_space_mm=float(rng.uniform(3.0, 5.0)),
        fat_mm=float(np.clip(fat, 5.0, 70.0)), muscle_bulk=bulk,
        bladder_fill=float(rng.uniform(0.6, 1.3)), rectum_gas=float(rng.uniform(0.0, 0.5)),
    )
