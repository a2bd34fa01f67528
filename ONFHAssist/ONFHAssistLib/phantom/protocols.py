"""Tissue classes, their published CT numbers and MR-T1 signal, and clinical scan protocols.

The realistic phantom paints a tissue map first and turns it into intensities here, so one anatomy
can be seen as CT or MR-T1, or with randomised per-tissue intensities for training (SynthSeg-style).
CT ranges are textbook values (fat -120..-60 HU, muscle 35..60, cancellous bone 150..450, cortex
900..1800, urine 0..20, air -1000). MR-T1 values share `cohort.TISSUE`'s arbitrary scale (fat 900,
muscle 300) so `signs.APPEARANCE` lesion values fit both generators.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Tissue classes of the map `realistic.render_tissues` paints (uint8 values).
TISSUES = ("air", "skin", "fat", "muscle", "cortex", "cancellous", "yellow_marrow", "cartilage", "fluid",
           "urine", "soft_organ", "bowel_content", "gas", "blood", "disc", "lesion")
T = {name: i for i, name in enumerate(TISSUES)}

# (low, high) per tissue, drawn once per patient; cancellous and cortex also move with age (osteopenia).
CT_HU = {"air": (-1000, -1000), "skin": (20, 60), "fat": (-115, -80), "muscle": (40, 55), "cortex": (1150, 1650),
         "cancellous": (220, 320), "yellow_marrow": (-90, -40), "cartilage": (70, 100), "fluid": (5, 15),
         "urine": (3, 15), "soft_organ": (35, 50), "bowel_content": (-60, 30), "gas": (-1000, -950),
         "blood": (38, 50), "disc": (70, 100)}
MR_T1 = {"air": (3, 8), "skin": (450, 550), "fat": (850, 950), "muscle": (270, 330), "cortex": (30, 70),
         "cancellous": (600, 720), "yellow_marrow": (800, 880), "cartilage": (380, 450), "fluid": (120, 170),
         "urine": (100, 150), "soft_organ": (320, 380), "bowel_content": (250, 400), "gas": (3, 8),
         "blood": (120, 200), "disc": (260, 320)}
TABLES = {"ct": CT_HU, "mr_t1": MR_T1}
# Texture amplitudes (HU on CT, signal units on MR-T1): trabecular mottling of cancellous bone and a
# gentle low-frequency drift in soft tissues; image noise sd is drawn per scan from NOISE_SD.
TRABECULAR_SD = {"ct": 70.0, "mr_t1": 45.0}
SOFT_SD = {"ct": 6.0, "mr_t1": 20.0}
NOISE_SD = {"ct": (8.0, 22.0), "mr_t1": (10.0, 25.0)}


def ageing(age: float) -> float:
    """How far ageing of bone and marrow has gone: 0 at 30 years, 1 at 80."""
    return float(np.clip((age - 30.0) / 50.0, 0.0, 1.0))


def red_marrow_share(age: float) -> float:
    """Haematopoietic (red) share of pelvic and vertebral marrow: about (100 - age) %, the haematopathologists'
    rule of thumb for iliac-crest cellularity, kept within 20-80 %. The rest is fat (yellow marrow)."""
    return float(np.clip((100.0 - age) / 100.0, 0.2, 0.8))


def tissue_values(modality: str, rng: np.random.Generator, age: float) -> dict[str, float]:
    """One patient's mean intensity per tissue: drawn in the published range, bone thinner with age."""
    table = TABLES[modality]
    values = {name: float(rng.uniform(*table[name])) for name in table}
    aged = ageing(age)
    if modality == "ct":  # osteopenia: less mineral in cancellous bone and a thinner, less dense cortex
        values["cancellous"] *= 1.0 - 0.5 * aged  # population QCT: trabecular density about halves, 30 → 80 years
        values["cortex"] -= 200.0 * aged
    else:  # marrow conversion: red marrow turns fatty, so T1 marrow signal rises with age
        values["cancellous"] += 120.0 * aged
    return values


def synth_intensities(rng: np.random.Generator, low: float = 0.0, high: float = 1000.0) -> dict[str, float]:
    """SynthSeg-style domain randomisation: every tissue gets an independent uniform mean, so a model
    trained on these learns shape, not one scanner's contrast. Pass the result to `realistic.render`."""
    return {name: float(rng.uniform(low, high)) for name in TISSUES if name != "lesion"}


@dataclass(frozen=True)
class Protocol:
    """A clinical acquisition: in-plane and slice spacing ranges (mm) and the fields of view it uses."""

    inplane_mm: tuple
    slice_mm: tuple
    fovs: tuple


# Fields of view (z extent above/below the head centres, mm, and whether one hip only).
FOV_Z = {"hips": (-70.0, 60.0), "pelvis": (-90.0, 140.0), "l4_mid_femur": (-230.0, 210.0), "one_hip": (-60.0, 60.0),
         "abdomen_pelvis": (-40.0, 200.0)}
# An abdomen-pelvis CT stops at the symphysis or just below it: its last slice may cut through the femoral
# heads, so the inferior edge is drawn in this range (mm from the head centres) instead of FOV_Z's.
INFERIOR_EDGE_MM = {"abdomen_pelvis": (-40.0, -10.0)}
PROTOCOLS = {
    "ct": Protocol(inplane_mm=(0.6, 1.0), slice_mm=(1.0, 5.0),
                   fovs=("hips", "pelvis", "l4_mid_femur", "one_hip", "abdomen_pelvis")),
    "mr_t1": Protocol(inplane_mm=(0.7, 1.6), slice_mm=(3.0, 5.0), fovs=("hips", "pelvis", "one_hip")),
}
MAX_VOXELS = 9.0e6  # keeps a scan near the render-time budget; spacing grows (within the protocol) to fit


def sample_protocol(rng: np.random.Generator, modality: str) -> tuple[str, np.ndarray]:
    """A field-of-view kind and (x, y, z) spacing in mm, as a clinical protocol would choose them."""
    proto = PROTOCOLS[modality]
    fov = proto.fovs[int(rng.integers(len(proto.fovs)))]
    inplane = float(rng.uniform(*proto.inplane_mm))
    return fov, np.array([inplane, inplane, float(rng.uniform(*proto.slice_mm))])


def fit_voxel_budget(extent_mm: np.ndarray, spacing: np.ndarray, modality: str) -> np.ndarray:
    """Coarsen spacing (in-plane first, never beyond the protocol's range, then slices) to MAX_VOXELS."""
    proto = PROTOCOLS[modality]
    spacing = spacing.astype(float).copy()
    for _ in range(40):
        if np.prod(extent_mm / spacing) <= MAX_VOXELS:
            break
        if spacing[0] < max(proto.inplane_mm[1], 1.6):
            spacing[:2] = min(spacing[0] * 1.08, max(proto.inplane_mm[1], 1.6))
        else:
            spacing[2] = min(spacing[2] * 1.1, 6.0)
    return spacing
