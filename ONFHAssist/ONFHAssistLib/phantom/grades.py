"""ONFH grades as clinicians assign them, each system from what it measures, with reader error.

The systems look at different things, so they agree often but not always:
- ARCO 2019 (MRI + CT + radiographs): I = MRI only, II = sclerosis/cysts without collapse, III = collapse
  (IIIA ≤ 2 mm, IIIB > 2 mm of depression), IV = arthrosis. CT makes stage II easy to see.
- Ficat-Arlet (radiographs only): I = normal film, II = sclerosis/cysts, III = crescent/collapse,
  IV = arthrosis. A film misses small stage-II changes more often than CT does.
- JIC 2001 stage (1, 2, 3A < 3 mm, 3B ≥ 3 mm, 4) and type (A/B/C1/C2: how far the lesion reaches
  laterally over the weight-bearing dome, read on the mid-coronal image).
- Steinberg (University of Pennsylvania): stage I–VI, with the extent of the head involved judged by eye:
  A < 15 %, B 15–30 %, C > 30 %.
- Spherical-Approximation (SA) Steinberg grade: the same cut-offs on the lesion volume measured as a share
  of a sphere fitted to the head (1 = A, 2 = B, 3 = C); a measurement, so less noisy than the eye.

Every reading comes from the phantom's truth (stage, collapse depth, lesion share, lateral reach) through
the reader's own error, drawn from a stream the caller spawns. A grade left out is "" (missing), never 0.
`hips.csv` keeps the five vocabulary columns (jic_stage, jic_type, arco, steinberg, ficat: what the shipped
models consume) and adds arco_2019, jic_2001, steinberg_extent and sa_steinberg (`cohort.hip_rows` also
keeps the true stage and type beside them).
"""
from __future__ import annotations

import numpy as np

from .hips import JIC_TYPE_THETA, JIC_TYPE_TILT, JIC_TYPES, HipTruth, surface_half_angle

# Chance that a reader calls a true stage-II hip stage I (the sclerosis and cysts are missed), by the imaging
# the system uses, for a small (< 15 % of the head) lesion; halved for larger lesions. And the reverse error.
MISSED_STAGE_TWO = {"arco": 0.08, "jic": 0.10, "steinberg": 0.10, "ficat": 0.25}
OVERCALLED_STAGE_ONE = {"arco": 0.05, "jic": 0.06, "steinberg": 0.06, "ficat": 0.03}
DEPTH_SD_MM = 0.4  # reading collapse depth on CT or a film
REACH_SD_DEG = 3.0  # reading the lesion's lateral edge on the mid-coronal image
EXTENT_SD_LOG = 0.20  # eyeballed share of the head (log scale)
SA_SD_LOG = 0.10  # segmented lesion volume over a fitted sphere (log scale)
EXTENT_CUTS = (0.15, 0.30)
STEINBERG_EXTENT = ("A", "B", "C")


def lateral_reach_deg(hip: HipTruth) -> float:
    """Where the lesion's edge meets the head surface on the lateral side, degrees from the lesion-free
    vertical (positive = lateral): the cone's lateral tilt plus its half-angle seen from the head centre."""
    return hip.tilt_deg + float(np.degrees(surface_half_angle(hip)))


def _reach_cuts() -> tuple:
    """JIC type boundaries: midway between the lateral reach of typical lesions of adjacent types."""
    typical = []
    for kind in JIC_TYPES:
        hip = HipTruth("R", 24.0, has_lesion=True, theta_deg=float(np.mean(JIC_TYPE_THETA[kind])),
                       tilt_deg=float(np.mean(JIC_TYPE_TILT[kind])), apex_shift=0.3)
        typical.append(lateral_reach_deg(hip))
    return tuple((a + b) / 2.0 for a, b in zip(typical, typical[1:]))


REACH_CUTS_DEG = _reach_cuts()


def _stage(hip: HipTruth, system: str, rng: np.random.Generator) -> int:
    """Pre-collapse stage 1 or 2 as this system's reader sees it; collapsed hips keep their stage."""
    if hip.jic_stage >= 3:
        return hip.jic_stage
    small = 1.0 if hip.necrotic_ratio < EXTENT_CUTS[0] else 0.5
    if hip.jic_stage == 2:
        return 1 if rng.random() < MISSED_STAGE_TWO[system] * small else 2
    return 2 if rng.random() < OVERCALLED_STAGE_ONE[system] else 1


def _extent(share: float, sd_log: float, rng: np.random.Generator) -> int:
    """0, 1, 2 for A, B, C from a share of the head read with log-normal error."""
    return int(np.searchsorted(EXTENT_CUTS, share * float(np.exp(rng.normal(0.0, sd_log)))))


def read_grades(hip: HipTruth, rng: np.random.Generator, missing_prob: float = 0.0) -> dict:
    """One clinician's grades of one hip, each system read on its own (see the module docstring)."""
    if not hip.has_lesion:
        return {"jic_stage": 0, "jic_type": "none", "arco": 0, "steinberg": 0, "ficat": 0, "arco_2019": "0",
                "jic_2001": "0", "steinberg_extent": "", "sa_steinberg": ""}
    depth = max(0.0, hip.collapse_mm + float(rng.normal(0.0, DEPTH_SD_MM))) if hip.jic_stage >= 3 else 0.0
    arco, jic, ficat, steinberg = (_stage(hip, s, rng) for s in ("arco", "jic", "ficat", "steinberg"))
    reach = lateral_reach_deg(hip) + float(rng.normal(0.0, REACH_SD_DEG))
    out = {
        "jic_stage": jic,
        "jic_type": JIC_TYPES[int(np.searchsorted(REACH_CUTS_DEG, reach))],
        "arco": arco,
        "steinberg": {1: 1, 2: 2, 3: 4 if depth >= 2.5 else 3, 4: 5}[steinberg],  # IV: flattened
        "ficat": ficat,
        "arco_2019": {1: "I", 2: "II", 3: "IIIA" if depth <= 2.0 else "IIIB", 4: "IV"}[arco],
        "jic_2001": {1: "1", 2: "2", 3: "3A" if depth < 3.0 else "3B", 4: "4"}[jic],
        "steinberg_extent": STEINBERG_EXTENT[_extent(hip.necrotic_ratio, EXTENT_SD_LOG, rng)],
        "sa_steinberg": 1 + _extent(hip.necrotic_ratio, SA_SD_LOG, rng),
    }
    for key in out:
        if rng.random() < missing_prob:
            out[key] = ""
    return out
