"""Per-hip truth of the phantom: lesion geometry, ONFH grades, and collapse times.

A necrotic lesion is a subchondral wedge of the femoral head: the part of the head inside a cone
of half-angle `theta` around an anterosuperior axis, whose apex sits `apex_shift * r` below the head
centre, and above a floor plane at `floor_ratio * r` along that axis (where the demarcating band runs). Its size and lateral reach follow the JIC type; collapse stages flatten the head over the
lesion and add a subchondral crescent. Collapse times follow a documented proportional-hazards
model (`HAZARD`) so survival models can be judged against a known truth.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

JIC_TYPES = ("A", "B", "C1", "C2")
JIC_TYPE_PROB = (0.15, 0.25, 0.35, 0.25)
# Half-angle (deg) and lateral tilt (deg, + = lateral) of the lesion cone per JIC type: type A sits in
# the medial third of the weight-bearing dome, C2 reaches lateral to the acetabular edge.
JIC_TYPE_THETA = {"A": (18, 24), "B": (24, 31), "C1": (31, 38), "C2": (38, 46)}
JIC_TYPE_TILT = {"A": (-14, -8), "B": (-8, -2), "C1": (-2, 5), "C2": (5, 11)}
STAGE_PROB = (0.30, 0.35, 0.25, 0.10)  # JIC stage 1..4 among hips with a lesion
GRADE_COLUMNS = ("jic_stage", "jic_type", "arco", "steinberg", "ficat")


@dataclass(frozen=True)
class HazardModel:
    """Collapse hazard h(t|x) = lam * k * t^(k-1) * exp(beta . x), months; x as `covariates()` builds it."""

    names: tuple = ("necrotic_ratio", "necrotic_angle_100deg", "jic_type_ordinal", "jic_stage", "bme")
    beta: tuple = (3.0, 0.8, 0.35, 0.45, 0.6)
    lam: float = 0.00007
    shape_k: float = 1.2
    censor_months: tuple = (12.0, 174.0)  # administrative censoring, uniform
    min_months: float = 1.0


HAZARD = HazardModel()


@dataclass(frozen=True)
class CohortPreset:
    """What kind of cohort a seed draws: stage mix at the first visit, collapse-time model, laterality, and
    whether grades are read as clinicians read them (`phantom.grades`) or derived from the true stage."""

    stage_prob: tuple = STAGE_PROB
    hazard: HazardModel = HAZARD
    bilateral_prob: float = 0.31
    clinical_grades: bool = False
    missing_grade_prob: float = 0.0  # per system and hip, with clinical grades: left blank in hips.csv
    lesion_free_prob: float = 0.0  # patients with no lesion in either hip
    lesion_anywhere_prob: float = 0.0  # lesions whose axis leaves the anterosuperior dome (`ANYWHERE_DEG`)


# "seed000": seed 000's population: pre-collapse hips only (JIC 1: 52, JIC 2: 40 of 92), ≈ 47 % collapse,
# collapse times 1–174 months with median 12 (IQR 3.5–33) and 90 % within 82 months (README, Data).
PRESETS = {
    "default": CohortPreset(),
    "seed000": CohortPreset(stage_prob=(52 / 92, 40 / 92, 0.0, 0.0), clinical_grades=True,
                            hazard=HazardModel(lam=0.002, shape_k=0.6, censor_months=(6.0, 174.0))),
    # "segmentation": a training population, not a clinical one. Every real ONFH lesion sits under the
    # weight-bearing dome, so a segmenter trained on such hips alone learns the place instead of the look
    # and draws a lesion under every healthy dome. Here about 57 % of hips are healthy and 40 % of lesions
    # point anywhere in the upper head, so only the lesion's own signal tells it apart.
    "segmentation": CohortPreset(lesion_free_prob=0.35, lesion_anywhere_prob=0.4),
}
# Lateral tilt and anterior angle (deg) of an "anywhere" lesion axis: the whole upper hemisphere but the
# last 25 deg above the neck, where the head is not subchondral bone any more.
ANYWHERE_DEG = (-65.0, 65.0)


@dataclass
class HipTruth:
    """Everything the generator knows about one hip (anatomy frame, mm and degrees)."""

    side: str
    head_radius_mm: float
    has_lesion: bool = False
    jic_type: str = "none"
    jic_stage: int = 0
    theta_deg: float = 0.0
    tilt_deg: float = 0.0
    anterior_deg: float = 0.0
    apex_shift: float = 0.0
    floor_ratio: float = 1.0
    collapse_mm: float = 0.0
    bme: int = 0
    necrotic_ratio: float = 0.0
    necrotic_angle_deg: float = 0.0
    time_months: float = 0.0
    event: int = 0
    reading: dict | None = None  # grades as a clinician read them (`phantom.grades`); None: derived from the stage
    extra: dict = field(default_factory=dict)

    @property
    def ficat(self) -> int:
        return self.jic_stage

    @property
    def arco(self) -> int:
        return self.jic_stage

    @property
    def steinberg(self) -> int:
        """Steinberg I-II before collapse, III crescent, IV flattening (>= 2.5 mm), V joint narrowing."""
        if self.jic_stage <= 2:
            return self.jic_stage
        if self.jic_stage == 4:
            return 5
        return 4 if self.collapse_mm >= 2.5 else 3

    def side_sign(self) -> float:
        """+1 for the patient's left (LPS +x is lateral), -1 for the right."""
        return 1.0 if self.side == "L" else -1.0

    def lesion_axis(self) -> np.ndarray:
        """Unit axis of the lesion cone: superior, tilted anterior (-y) and lateral (side sign)."""
        tilt, ant = np.radians(self.tilt_deg), np.radians(self.anterior_deg)
        axis = np.array([self.side_sign() * np.sin(tilt), -np.sin(ant) * np.cos(tilt), np.cos(ant) * np.cos(tilt)])
        return axis / np.linalg.norm(axis)

    def grades(self) -> dict:
        if self.reading is not None:
            return dict(self.reading)
        return {"jic_stage": self.jic_stage, "jic_type": self.jic_type, "arco": self.arco,
                "steinberg": self.steinberg, "ficat": self.ficat}

    def covariates(self) -> np.ndarray:
        """The hazard model's x (see HAZARD.names)."""
        type_ord = JIC_TYPES.index(self.jic_type) if self.jic_type in JIC_TYPES else 0
        return np.array([self.necrotic_ratio, self.necrotic_angle_deg / 100.0, type_ord, self.jic_stage, self.bme])

    def as_row(self) -> dict:
        row = asdict(self)
        row.pop("extra")
        row.pop("reading")
        row.update(self.grades())
        return row


def _angle_to_axis(rel: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from the head centre and angle (rad) to the lesion axis for points rel (..., 3)."""
    d = np.linalg.norm(rel, axis=-1)
    cos = np.clip((rel @ axis) / np.maximum(d, 1e-9), -1.0, 1.0)
    return d, np.arccos(cos)


def collapse_weight(angle: np.ndarray, theta: float) -> np.ndarray:
    """How much of the collapse depth applies at an angle from the lesion axis (1 over the lesion core)."""
    t = np.clip((theta - angle) / (0.4 * theta), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def head_radius_at(hip: HipTruth, angle: np.ndarray) -> np.ndarray:
    """Head surface radius along directions at `angle` from the lesion axis (flattened at collapse)."""
    if not hip.has_lesion or hip.collapse_mm <= 0:
        return np.full_like(angle, hip.head_radius_mm, dtype=float)
    return hip.head_radius_mm - hip.collapse_mm * collapse_weight(angle, surface_half_angle(hip))


def head_surface_radius(hip: HipTruth, rel: np.ndarray) -> np.ndarray:
    """Head surface radius along the directions of points rel (..., 3) from the head centre."""
    _, ang = _angle_to_axis(rel, hip.lesion_axis())
    return head_radius_at(hip, ang)


def surface_half_angle(hip: HipTruth) -> float:
    """Angle (rad, seen from the head centre) at which the lesion cone meets the head surface."""
    theta, s = np.radians(hip.theta_deg), hip.apex_shift
    gamma = np.linspace(0.0, np.pi, 3601)
    seen_from_apex = np.arctan2(np.sin(gamma), np.cos(gamma) + s)
    return float(gamma[np.searchsorted(seen_from_apex, theta)])


def lesion_masks(hip: HipTruth, rel: np.ndarray, rim_mm: float = 2.0) -> dict[str, np.ndarray]:
    """Head, lesion, rim (outer `rim_mm` of the lesion inside the head) and crescent masks at points rel.

    The rim width is the stage's demarcating band or sclerotic rim (`phantom.signs.LesionSigns`)."""
    d, ang = _angle_to_axis(rel, hip.lesion_axis())
    r_eff = head_radius_at(hip, ang)
    head = d < r_eff
    if not hip.has_lesion:
        empty = np.zeros_like(head)
        return {"head": head, "lesion": empty, "rim": empty, "crescent": empty}
    theta = np.radians(hip.theta_deg)
    axis, r = hip.lesion_axis(), hip.head_radius_mm
    from_apex = rel + hip.apex_shift * r * axis
    d_apex, ang_apex = _angle_to_axis(from_apex, axis)
    cone_dist = d_apex * np.sin(np.clip(ang_apex - theta, -np.pi / 2, np.pi / 2))  # signed distance to the cone wall
    lesion_sdf = np.maximum(cone_dist, hip.floor_ratio * r - rel @ axis)
    lesion = head & (lesion_sdf < 0)
    rim = lesion & (lesion_sdf > -rim_mm)
    crescent = np.zeros_like(lesion)
    if hip.jic_stage >= 3:
        under_plate = (d > r_eff - 3.0) & (d < r_eff - 1.5)
        crescent = lesion & under_plate & (ang < 0.8 * surface_half_angle(hip))
    return {"head": head, "lesion": lesion, "rim": rim, "crescent": crescent}


def measure_truth(hip: HipTruth, rng: np.random.Generator, samples: int = 20000) -> None:
    """Fill necrotic_ratio (Monte Carlo over the head) and the Kerboul-style necrotic angle (analytic)."""
    if not hip.has_lesion:
        hip.necrotic_ratio, hip.necrotic_angle_deg = 0.0, 0.0
        return
    r = hip.head_radius_mm
    pts = rng.normal(size=(samples, 3))
    pts *= (r * rng.random(samples) ** (1 / 3) / np.linalg.norm(pts, axis=1))[:, None]
    masks = lesion_masks(hip, pts)
    hip.necrotic_ratio = float(masks["lesion"].sum() / max(masks["head"].sum(), 1))
    hip.necrotic_angle_deg = float(sum(lesion_arc_deg(hip, plane) for plane in ("coronal", "sagittal")))


def lesion_arc_deg(hip: HipTruth, plane: str, step_deg: float = 0.25) -> float:
    """Arc of the head surface covered by the lesion on the mid-coronal or mid-sagittal plane."""
    psi = np.radians(np.arange(-180.0, 180.0, step_deg))
    if plane == "coronal":
        dirs = np.stack([np.sin(psi), np.zeros_like(psi), np.cos(psi)], axis=1)
    else:
        dirs = np.stack([np.zeros_like(psi), np.sin(psi), np.cos(psi)], axis=1)
    _, ang = _angle_to_axis(dirs, hip.lesion_axis())
    radius = head_radius_at(hip, ang) - 2.5
    masks = lesion_masks(hip, dirs * radius[:, None])
    return float(masks["lesion"].sum() * step_deg)


def sample_lesion(hip: HipTruth, rng: np.random.Generator, stage_prob: tuple = STAGE_PROB,
                  anywhere_prob: float = 0.0) -> None:
    """Draw JIC type and stage, then a lesion geometry consistent with them (with `anywhere_prob`, an
    axis anywhere in the upper head instead; no draw is spent on it when the probability is 0, so the
    clinical presets' cohorts stay what they were)."""
    hip.has_lesion = True
    hip.jic_type = str(rng.choice(JIC_TYPES, p=JIC_TYPE_PROB))
    hip.jic_stage = int(rng.choice([1, 2, 3, 4], p=stage_prob))
    hip.theta_deg = float(rng.uniform(*JIC_TYPE_THETA[hip.jic_type]))
    hip.tilt_deg = float(rng.uniform(*JIC_TYPE_TILT[hip.jic_type]))
    hip.anterior_deg = float(rng.uniform(5, 20))
    hip.apex_shift = float(rng.uniform(0.0, 0.6))
    hip.floor_ratio = float(rng.uniform(-0.1, 0.4))
    hip.collapse_mm = float(rng.uniform(1.5, 3.5)) if hip.jic_stage >= 3 else 0.0
    hip.bme = int(rng.random() < (0.5 if hip.jic_stage >= 3 else 0.15))
    if anywhere_prob and rng.random() < anywhere_prob:
        hip.tilt_deg, hip.anterior_deg = (float(v) for v in rng.uniform(*ANYWHERE_DEG, size=2))


def draw_outcome(hip: HipTruth, rng: np.random.Generator, model: HazardModel = HAZARD) -> None:
    """Collapse time from the Weibull proportional-hazards model; healthy hips are censored."""
    censor = float(rng.uniform(*model.censor_months))
    if not hip.has_lesion:
        hip.time_months, hip.event = round(censor, 1), 0
        return
    rate = model.lam * np.exp(np.dot(model.beta, hip.covariates()))
    t = (-np.log(rng.random()) / rate) ** (1.0 / model.shape_k)
    t = max(t, model.min_months)
    hip.event = int(t <= censor)
    hip.time_months = round(float(min(t, censor)), 1)


def sample_patient_hips(rng: np.random.Generator, bilateral_prob: float | None = None,
                        preset: CohortPreset = PRESETS["default"]) -> list[HipTruth]:
    """Both hips of one patient: one or two with ONFH (or none, with the preset's lesion_free_prob)."""
    bilateral_prob = preset.bilateral_prob if bilateral_prob is None else bilateral_prob
    radius = float(rng.uniform(20.0, 27.0))
    hips = [HipTruth(side=s, head_radius_mm=round(radius + float(rng.normal(0, 0.4)), 3)) for s in ("R", "L")]
    if rng.random() >= preset.lesion_free_prob:
        affected = [0, 1] if rng.random() < bilateral_prob else [int(rng.integers(2))]
        for i in affected:
            sample_lesion(hips[i], rng, preset.stage_prob, preset.lesion_anywhere_prob)
    for hip in hips:
        measure_truth(hip, rng)
        draw_outcome(hip, rng, preset.hazard)
    return hips
