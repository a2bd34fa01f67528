"""Grades used as risk inputs when the user gives none: stage from the staging network, JIC type from the lesion.

The shipped staging network grades ARCO 0–IV; in the phantom (as in the JIC and Ficat systems for
pre-collapse hips) ARCO, Ficat and JIC stage share their stage number, so one prediction fills all
three. Steinberg III/IV differ by the depth of collapse, which no network here measures: stage 3 maps
to Steinberg III (the milder reading). The JIC type is defined by how far the lesion reaches laterally
over the weight-bearing dome on the mid-coronal plane; it is measured on the segmentation.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

# 95th percentile of the lesion's lateral surface angle (degrees from vertical) separating JIC types
# A | B | C1 | C2: midpoints between the type medians on the phantom's truth (training cohort, seed 101).
JIC_TYPE_BOUNDS_DEG = (20.0, 34.0, 50.0)
SURFACE_SHELL_MM = 5.0
GRADE_ORDER = {"jic_stage": ["0", "1", "2", "3", "4"], "jic_type": ["none", "A", "B", "C1", "C2"],
               "arco": ["0", "1", "2", "3", "4"], "steinberg": ["0", "1", "2", "3", "4", "5", "6"],
               "ficat": ["0", "1", "2", "3", "4"]}
JIC_TYPES = tuple(GRADE_ORDER["jic_type"][1:])


def lateral_reach_deg(labels: np.ndarray, origin_xyz, spacing_xyz, centre_xyz, radius_mm: float) -> float | None:
    """How far the lesion's subchondral part reaches laterally, in degrees from the head's vertical.

    `labels` is a right-hip-view crop (left hips mirrored), so lateral is −x in LPS.
    None when there is no lesion near the head surface above the centre.
    """
    z, y, x = np.nonzero(labels == 3)
    offset = np.stack([x, y, z], 1) * np.asarray(spacing_xyz) + np.asarray(origin_xyz) - np.asarray(centre_xyz)
    dist = np.linalg.norm(offset, axis=1)
    shell = (dist > radius_mm - SURFACE_SHELL_MM) & (offset[:, 2] > 0)
    if not shell.any():
        return None
    return float(np.percentile(np.degrees(np.arctan2(-offset[shell, 0], offset[shell, 2])), 95))


def decide_stage(probabilities, lesion_ml: float) -> int:
    """Class index of a hip's stage: detection, then staging (as in 3D-ONFHNet). The segmentation is the
    detector — it finds lesions far more reliably than the staging network separates stage 0 from I–II,
    and on a real scan the staging network, trained on phantoms, calls ONFH in healthy heads. So a
    segmented lesion rules out class 0 (no necrosis in every system) and the most probable ONFH class is
    taken; without a lesion inside the femoral head the hip is class 0, whatever the network says."""
    probs = np.asarray(probabilities, float)
    if lesion_ml <= 0:
        return 0
    return 1 + int(probs[1:].argmax()) if len(probs) > 1 else 0


def jic_type(reach_deg: float | None) -> str:
    if reach_deg is None:
        return "none"
    return JIC_TYPES[int(np.searchsorted(JIC_TYPE_BOUNDS_DEG, reach_deg))]


def predicted_grades(stage: int, reach_deg: float | None) -> dict:
    """All five grade systems from one ARCO stage and the lesion's lateral reach."""
    steinberg = {0: 0, 1: 1, 2: 2, 3: 3, 4: 5}[int(stage)]
    return {"jic_stage": int(stage), "jic_type": jic_type(reach_deg) if stage > 0 else "none", "arco": int(stage),
            "steinberg": steinberg, "ficat": int(stage)}


def grade_codes(table: pd.DataFrame) -> np.ndarray:
    """Integer code per grade system: the position in its ordered code list, and one past the last for a grade
    that is missing (blank in hips.csv, or a system the table lacks) — its own token, never read as stage 0."""
    columns = []
    for name, order in GRADE_ORDER.items():
        values = table[name].astype(str) if name in table else pd.Series([""] * len(table))
        columns.append([order.index(v) if v in order else len(order) for v in values])
    return np.array(columns, dtype=np.int64).T


def ordinal_grades(codes: np.ndarray) -> np.ndarray:
    """Codes as numbers for linear models (Cox on grades), NaN where the grade is missing."""
    levels = np.array([len(order) for order in GRADE_ORDER.values()])
    values = np.asarray(codes, float).copy()
    values[np.asarray(codes) >= levels] = np.nan
    return values
