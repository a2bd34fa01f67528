"""How a necrotic lesion looks at each stage, so that ARCO/Ficat I and II differ on the image.

The staging systems separate stage I from stage II by imaging alone: in stage I radiographs and CT are
normal and only MRI shows the lesion (a low-signal demarcating band on T1 around a necrotic segment
that keeps much of its fatty-marrow signal); in stage II radiographs and CT show trabecular changes
without collapse: mottled sclerosis (dense on CT, dark on T1), small round lytic foci or cysts
(near-water on CT, dark on T1) and a thicker, denser sclerotic rim at the reactive interface. Later
stages keep those signs and add the crescent and flattening drawn in `phantom.hips`.

Every lesion hip gets the same kind of sign geometry (`LesionSigns`, drawn in the anatomy frame, so
it does not depend on the scanner grid); the stage decides what is painted. A stage-I and a stage-II
version of one hip therefore share geometry and differ only in the signs, which the tests use.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hips import HipTruth, lesion_masks

# Lesion intensities per modality (MR-T1 arbitrary units as phantom.TISSUE, CT in HU). "early" is
# stage I, "established" is stage II and later. CT stage I is a faint change only (marrow is 230 HU).
APPEARANCE = {
    "mr_t1": {"early": dict(interior=660, rim=150),
              "established": dict(interior=520, rim=70, sclerosis=170, cyst=210)},
    "ct": {"early": dict(interior=205, rim=285),
           "established": dict(interior=255, rim=820, sclerosis=640, cyst=25)},
}
SCLEROSIS_COVER = 0.6  # share of the lesion volume the sclerotic blobs would fill without overlap
SCLEROSIS_RADIUS_MM = (2.0, 4.5)
CYST_RADIUS_MM = (1.6, 3.4)
CYST_COUNT = (1, 4)
CYST_LESION_MM3 = 4000.0  # one more cyst allowed per this much lesion volume, so small lesions get one
MIN_CYST_RADIUS_MM = 1.2
SUBCHONDRAL_MM = 2.0  # cysts keep this far from the head surface (under the subchondral plate)


@dataclass
class LesionSigns:
    """Sign geometry of one lesion hip: mm in the anatomy frame, relative to the head centre."""

    band_mm: float  # demarcating band width in stage I
    sclerotic_rim_mm: float  # rim width from stage II on
    sclerosis_centres: np.ndarray  # (n, 3)
    sclerosis_radii: np.ndarray  # (n,)
    sclerosis_strength: np.ndarray  # (n,) 0..1, so the sclerosis is mottled, not uniform
    cyst_centres: np.ndarray  # (m, 3)
    cyst_radii: np.ndarray  # (m,)

    def rim_mm(self, stage: int) -> float:
        return self.sclerotic_rim_mm if established(stage) else self.band_mm


def established(stage: int) -> bool:
    """Stage II and later carry radiographic signs (sclerosis, cysts, sclerotic rim)."""
    return stage >= 2


def _points_in_head(hip: HipTruth, rng: np.random.Generator, n: int) -> np.ndarray:
    pts = rng.normal(size=(n, 3))
    r = hip.head_radius_mm * rng.random(n) ** (1 / 3)
    return pts * (r / np.linalg.norm(pts, axis=1))[:, None]


def _inside_lesion_core(hip: HipTruth, centres: np.ndarray, radius: float, rim_mm: float) -> np.ndarray:
    """Whether a ball of `radius` around each centre lies in the lesion, off its rim and the plate."""
    offsets = np.vstack([np.zeros(3), radius * np.eye(3), -radius * np.eye(3)])
    ok = np.ones(len(centres), bool)
    for off in offsets:
        m = lesion_masks(hip, centres + off, rim_mm=rim_mm)
        ok &= m["lesion"] & ~m["rim"]
    d = np.linalg.norm(centres, axis=1)
    return ok & (d + radius < hip.head_radius_mm - hip.collapse_mm - SUBCHONDRAL_MM)


def sample_signs(hip: HipTruth, rng: np.random.Generator) -> LesionSigns:
    """Draw rim widths, sclerotic blobs and cysts for a lesion hip (whatever its stage)."""
    band = float(rng.uniform(1.5, 2.0))
    rim = band + float(rng.uniform(1.0, 1.5))
    candidates = _points_in_head(hip, rng, 6000)
    in_lesion = candidates[lesion_masks(hip, candidates)["lesion"]]
    volume = hip.necrotic_ratio * 4.0 / 3.0 * np.pi * hip.head_radius_mm ** 3
    blob = 4.0 / 3.0 * np.pi * np.mean(SCLEROSIS_RADIUS_MM) ** 3
    n = int(np.clip(round(SCLEROSIS_COVER * volume / blob), 3, 40))
    pick = rng.choice(len(in_lesion), size=n, replace=len(in_lesion) < n) if len(in_lesion) else []
    sclerosis = in_lesion[pick] if len(in_lesion) else np.zeros((0, 3))
    radii = rng.uniform(*SCLEROSIS_RADIUS_MM, len(sclerosis))
    strength = rng.uniform(0.55, 1.0, len(sclerosis))

    cysts, cyst_radii = [], []
    most = int(np.clip(1 + volume // CYST_LESION_MM3, *CYST_COUNT))
    for _ in range(int(rng.integers(CYST_COUNT[0], most + 1))):
        radius = float(rng.uniform(*CYST_RADIUS_MM))
        while radius >= MIN_CYST_RADIUS_MM:
            fits = in_lesion[_inside_lesion_core(hip, in_lesion, radius, rim)]
            if len(fits):
                cysts.append(fits[int(rng.integers(len(fits)))])
                cyst_radii.append(radius)
                break
            radius *= 0.8
    return LesionSigns(band, rim, sclerosis, radii, strength,
                       np.reshape(cysts, (-1, 3)), np.asarray(cyst_radii, float))


def lesion_intensity(hip: HipTruth, signs: LesionSigns, modality: str, rel: np.ndarray,
                     rim: np.ndarray) -> np.ndarray:
    """Intensity of lesion points rel (n, 3) before blur and noise; rim marks the band/rim points."""
    stage = "established" if established(hip.jic_stage) else "early"
    look = APPEARANCE[modality][stage]
    values = np.full(len(rel), float(look["interior"]))
    if stage == "established":
        weight = np.zeros(len(rel))
        for c, r, s in zip(signs.sclerosis_centres, signs.sclerosis_radii, signs.sclerosis_strength):
            t = np.clip((r - np.linalg.norm(rel - c, axis=1)) / (0.5 * r), 0.0, 1.0)
            weight = np.maximum(weight, s * t * t * (3.0 - 2.0 * t))  # soft-edged, mottled patches
        values += (look["sclerosis"] - look["interior"]) * weight
        for c, r in zip(signs.cyst_centres, signs.cyst_radii):
            values[np.linalg.norm(rel - c, axis=1) < r] = look["cyst"]
    values[rim] = look["rim"]
    return values
