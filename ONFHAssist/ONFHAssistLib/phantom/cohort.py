"""Synthetic bilateral hip scans (MR-T1-like or CT-like) with ground truth for every task.

A scan is drawn in three steps: patient anatomy and per-hip truth (`phantom.hips`), a scanner grid
(spacing, field of view, storage orientation, a small patient rotation), and rendering: signed
distance fields of pelvis and femora (`phantom.anatomy`) become a label map and tissue classes,
tissue classes become intensities, then partial-volume blur, bias field and noise. How a lesion
looks at its stage (band, sclerosis, cysts) comes from `phantom.signs`.
"""
from __future__ import annotations

import builtins
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from ..dataset import write_dataset_json, write_table
from ..imaging import io
from .anatomy import FAR, Grid, Primitive, capsule, cup, ellipsoid, rotation_matrix, sphere, union_into, unit
from .grades import read_grades
from .hips import PRESETS, CohortPreset, HipTruth, head_surface_radius, lesion_masks, sample_patient_hips
from .signs import LesionSigns, lesion_intensity, sample_signs

log = logging.getLogger(__name__)

MODALITIES = ("mr_t1", "ct")
GENERATORS = ("classic", "realistic")  # classic: the shipped models' phantom; realistic: `phantom.realistic`
LABELS = {0: "background", 1: "pelvis", 2: "femur", 3: "necrosis"}

# Tissue intensities: MR-T1 in arbitrary units (fat bright, cortex and fluid dark), CT in HU. The
# lesion's own intensities depend on its stage (phantom.signs.APPEARANCE).
TISSUE = {
    "mr_t1": dict(air=5, fat=900, muscle=300, cortex=60, marrow=760, joint=220, crescent=140, bme=420),
    "ct": dict(air=-1000, fat=-100, muscle=45, cortex=1250, marrow=230, joint=20, crescent=-150, bme=230),
}
NOISE_SD = {"mr_t1": 18.0, "ct": 18.0}
FOV_CENTRE_ANATOMY = np.array([0.0, 10.0, 15.0])  # where a scan's field of view is centred, before its offset


@dataclass
class ScanSpec:
    """Where the scanner grid sits: size (x, y, z voxels), spacing (mm), orientation and placement."""

    size: tuple
    spacing: tuple
    direction: tuple = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    center_offset_mm: tuple = (0.0, 0.0, 0.0)


@dataclass
class PatientAnatomy:
    """Patient-level shape parameters (mm, degrees) and where the anatomy frame sits in the world."""

    head_separation_mm: float
    neck_shaft_deg: float
    anteversion_deg: float
    joint_gap_mm: float
    body_semi_mm: tuple
    fat_mm: float
    rotation_deg: tuple
    translation_mm: tuple
    hips: list = field(default_factory=list)
    signs: dict = field(default_factory=dict)  # side -> LesionSigns, for every hip with a lesion

    def rotation(self) -> np.ndarray:
        return rotation_matrix(self.rotation_deg)

    def head_center_anatomy(self, hip: HipTruth) -> np.ndarray:
        return np.array([hip.side_sign() * self.head_separation_mm / 2.0, 0.0, 0.0])

    def head_center_lps(self, hip: HipTruth) -> np.ndarray:
        return self.rotation() @ self.head_center_anatomy(hip) + np.asarray(self.translation_mm)


def sample_anatomy(rng: np.random.Generator, hips: list[HipTruth] | None = None,
                   preset: CohortPreset = PRESETS["default"]) -> PatientAnatomy:
    """Patient shape and pose; a small rotation and shift model positioning on the table.

    The lesions' stage signs, and with a clinically graded preset the readers' grades, are drawn from
    spawned child streams, which leave `rng`'s own sequence untouched: collapse times, scan grids and
    noise stay what they were before the signs and readings existed.
    """
    anat = PatientAnatomy(
        head_separation_mm=float(rng.uniform(170, 200)),
        neck_shaft_deg=float(rng.uniform(120, 140)),
        anteversion_deg=float(rng.uniform(5, 20)),
        joint_gap_mm=float(rng.uniform(2.5, 3.5)),
        body_semi_mm=(float(rng.uniform(165, 195)), float(rng.uniform(110, 135)), 400.0),
        fat_mm=float(rng.uniform(12, 30)),
        rotation_deg=tuple(float(v) for v in np.clip(rng.normal(0, 4, 3), -8, 8)),
        translation_mm=tuple(float(v) for v in rng.uniform(-15, 15, 3)),
        hips=hips if hips is not None else sample_patient_hips(rng, preset=preset),
    )
    signs_rng = rng.spawn(1)[0]
    anat.signs = {hip.side: sample_signs(hip, signs_rng) for hip in anat.hips if hip.has_lesion}
    if preset.clinical_grades:
        readers_rng = rng.spawn(1)[0]
        for hip in anat.hips:
            hip.reading = read_grades(hip, readers_rng, preset.missing_grade_prob)
    return anat


def sample_scan_spec(rng: np.random.Generator, shape: Sequence[int] | None = None,
                     spacing: Sequence[float] | None = None) -> ScanSpec:
    """Random spacing, field of view and storage orientation (LPS, RAS or LPI order)."""
    if spacing is None:
        inplane = float(rng.uniform(1.2, 2.0))
        spacing = (inplane, inplane, float(rng.uniform(1.5, 3.0)))
    spacing = tuple(float(s) for s in np.broadcast_to(np.asarray(spacing, float), (3,)))
    if shape is None:
        fov = np.array([rng.uniform(340, 400), rng.uniform(240, 290), rng.uniform(150, 200)])
        shape = np.round(fov / np.array(spacing)).astype(int)
    flips = [(1, 1, 1), (-1, -1, 1), (1, 1, -1)][int(rng.integers(3))]
    direction = tuple(float(v) for v in np.diag(flips).ravel())
    offset = tuple(float(v) for v in rng.uniform(-10, 10, 3))
    return ScanSpec(tuple(int(s) for s in shape), spacing, direction, offset)


def head_scan_spec(anat: PatientAnatomy, hip: HipTruth, size: int = 80, spacing: float = 1.0) -> ScanSpec:
    """A small LPS-aligned cube centred on one femoral head: for looking at, and testing, one lesion."""
    centre = anat.rotation() @ (anat.head_center_anatomy(hip) - FOV_CENTRE_ANATOMY)
    return ScanSpec((size,) * 3, (spacing,) * 3, center_offset_mm=tuple(float(v) for v in centre))


def _femur(anat: PatientAnatomy, hip: HipTruth) -> tuple[list[Primitive], float]:
    """Head (flattened at collapse), neck, trochanters and shaft; returns prims and the neck-base height."""
    c = anat.head_center_anatomy(hip)
    s, r = hip.side_sign(), hip.head_radius_mm
    alpha, beta = np.radians(anat.neck_shaft_deg), np.radians(anat.anteversion_deg)
    to_head = unit([-s * np.sin(alpha) * np.cos(beta), -np.sin(alpha) * np.sin(beta), -np.cos(alpha)])
    neck_base = c - (2.1 * r) * to_head
    shaft_top = neck_base + np.array([s * 4.0, 0.0, 8.0])
    shaft_end = shaft_top + np.array([-s * 25.0, 0.0, -300.0])

    def head_sdf(x, y, z):
        rel = np.stack([x - c[0], y - c[1], z - c[2]], axis=-1)
        d = np.linalg.norm(rel, axis=-1)
        return d - head_surface_radius(hip, rel)

    prims = [
        Primitive(c - r, c + r, head_sdf),
        capsule(c - 0.3 * r * to_head, neck_base, 0.62 * r),
        capsule(shaft_top, shaft_end, 0.58 * r),
        sphere(neck_base + np.array([s * 14.0, 4.0, 14.0]), 0.72 * r),
        sphere(neck_base + np.array([-s * 8.0, 14.0, -28.0]), 0.35 * r),
    ]
    return prims, float(neck_base[2])


def _hemipelvis(anat: PatientAnatomy, hip: HipTruth) -> list[Primitive]:
    """Acetabulum, ilium, pubic and ischial rami of one side."""
    c = anat.head_center_anatomy(hip)
    s, r, g = hip.side_sign(), hip.head_radius_mm, anat.joint_gap_mm
    opening = unit([s * 0.68, -0.30, -0.67])
    symphysis = np.array([-s * 6.0, -52.0, -28.0])
    tuberosity = c + np.array([-s * 22.0, 28.0, -58.0])
    wing_axes = np.array([unit([s, -0.45, 0.15]), unit([0.45 * s, 1.0, 0.0]), [0, 0, 1.0]])
    wing_axes[1] = unit(np.cross(wing_axes[2], wing_axes[0]))
    wing_axes[2] = np.cross(wing_axes[0], wing_axes[1])
    return [
        cup(c, r + g, r + g + 9.0, opening, 0.25 * r),
        capsule(c + np.array([-s * 2.0, 8.0, r + 10.0]), c + np.array([s * 8.0, 16.0, 58.0]), 21.0),
        ellipsoid(c + np.array([s * 2.0, 18.0, 88.0]), wing_axes, (8.0, 62.0, 46.0)),
        capsule(c + np.array([-s * (r + 4.0), -16.0, -6.0]), symphysis, 9.0),
        capsule(c + np.array([-s * 6.0, 20.0, -r]), tuberosity, 12.0),
        capsule(tuberosity, symphysis + np.array([-s * 4.0, 10.0, -12.0]), 7.0),
    ]


def _sacrum(anat: PatientAnatomy) -> Primitive:
    axes = np.array([[1.0, 0, 0], unit([0, 1.0, 0.45]), unit([0, -0.45, 1.0])])
    return ellipsoid([0.0, 80.0, 75.0], axes, (48.0, 20.0, 55.0))


def render(anat: PatientAnatomy, spec: ScanSpec, modality: str, rng: np.random.Generator) -> tuple[sitk.Image, sitk.Image]:
    """Render one scan: (intensity image, label map) on the grid `spec` describes."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; use one of {MODALITIES}")
    size, spacing = np.array(spec.size), np.array(spec.spacing)
    direction = np.array(spec.direction, float).reshape(3, 3)
    rot, trans = anat.rotation(), np.asarray(anat.translation_mm)
    fov_center = rot @ FOV_CENTRE_ANATOMY + trans + np.asarray(spec.center_offset_mm)
    origin = fov_center - direction @ ((size - 1) * spacing / 2.0)
    grid = Grid(size, spacing, origin, direction, rot, trans)

    pelvis = np.full(grid.shape_zyx, FAR, np.float32)
    femur = np.full(grid.shape_zyx, FAR, np.float32)
    neck_z = {}
    for hip in anat.hips:
        prims, neck_z[hip.side] = _femur(anat, hip)
        union_into(grid, femur, prims, k=6.0)
        union_into(grid, pelvis, _hemipelvis(anat, hip), k=5.0)
    union_into(grid, pelvis, [_sacrum(anat)], k=8.0)
    for hip in anat.hips:  # keep the joint space free of pelvis
        c, keep_out = anat.head_center_anatomy(hip), hip.head_radius_mm + anat.joint_gap_mm
        found = grid.block(c - keep_out, c + keep_out)
        if found:
            sl, (x, y, z) = found
            d = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)
            pelvis[sl] = np.maximum(pelvis[sl], keep_out - d)

    label = np.zeros(grid.shape_zyx, np.uint8)
    label[pelvis < 0] = 1
    label[femur < 0] = 2
    t = TISSUE[modality]
    image = _soft_tissue(grid, anat, t)
    q = grid.coordinates()
    femur_cortex = 1.3 + 3.5 * np.clip((min(neck_z.values()) - q[2]) / 40.0, 0.0, 1.0)
    _paint_bone(image, pelvis, 1.6, t)
    _paint_bone(image, femur, femur_cortex, t)
    for hip in anat.hips:
        _paint_hip(grid, anat, hip, image, label, modality)
    image = _acquire(image, spacing, modality, grid, rng)
    return to_sitk(image, spec, origin, np.int16), to_sitk(label, spec, origin, np.uint8)


def _soft_tissue(grid: Grid, anat: PatientAnatomy, t: dict) -> np.ndarray:
    """Air outside the body, subcutaneous fat, muscle, and pelvic fat."""
    x, y, z = grid.coordinates()
    a, b, _ = anat.body_semi_mm
    body = np.sqrt((x / a) ** 2 + ((y - 5.0) / b) ** 2 + 0 * z)
    image = np.full(grid.shape_zyx, t["air"], np.float32)
    image[body < 1.0] = t["fat"]
    image[body < 1.0 - anat.fat_mm / b] = t["muscle"]
    pelvic_fat = ((x / 55.0) ** 2 + ((y - 5.0) / 45.0) ** 2 + ((z - 45.0) / 45.0) ** 2) < 1.0
    image[pelvic_fat] = t["fat"]
    return image


def _paint_bone(image: np.ndarray, sdf: np.ndarray, cortex_mm, t: dict) -> None:
    inside = sdf < 0
    cortex = inside & (sdf > -np.asarray(cortex_mm))
    image[inside] = t["marrow"]
    image[cortex] = t["cortex"]


def _paint_hip(grid: Grid, anat: PatientAnatomy, hip: HipTruth, image, label, modality: str) -> None:
    """Joint space, necrotic lesion with its stage's signs and crescent, and bone-marrow oedema of one hip."""
    c = anat.head_center_anatomy(hip)
    reach = 1.5 * hip.head_radius_mm + anat.joint_gap_mm
    found = grid.block(c - reach, c + reach)
    if found is None:
        return
    sl, (x, y, z) = found
    rel = np.stack([x - c[0], y - c[1], z - c[2]], axis=-1)
    d = np.linalg.norm(rel, axis=-1)
    sub_label, sub_image = label[sl], image[sl]
    t = TISSUE[modality]
    signs: LesionSigns | None = anat.signs.get(hip.side)
    if hip.has_lesion and signs is None:
        raise ValueError(f"{hip.side} hip has a lesion but no signs; build anatomies with sample_anatomy")
    masks = lesion_masks(hip, rel, rim_mm=signs.rim_mm(hip.jic_stage)) if signs else lesion_masks(hip, rel)
    joint = (d < hip.head_radius_mm + anat.joint_gap_mm) & ~masks["head"] & (sub_label != 2)
    sub_image[joint & (sub_label == 0)] = t["joint"]
    if hip.bme:
        # Oedema fades out over the neck: ill-defined, as on a real T1 image.
        weight = np.clip((1.5 * hip.head_radius_mm - d) / (0.6 * hip.head_radius_mm), 0.0, 1.0)
        marrow = (sub_label == 2) & (sub_image == t["marrow"]) & ~masks["lesion"]
        sub_image[marrow] += (t["bme"] - t["marrow"]) * weight[marrow]
    lesion = masks["lesion"] & (sub_label == 2)
    paint = lesion & (sub_image != t["cortex"])
    if paint.any():
        sub_image[paint] = lesion_intensity(hip, signs, modality, rel[paint], masks["rim"][paint])
    sub_image[masks["crescent"] & lesion] = t["crescent"]
    sub_label[lesion] = 3


def _acquire(image: np.ndarray, spacing: np.ndarray, modality: str, grid: Grid, rng) -> np.ndarray:
    """Partial-volume blur, a smooth bias field (MR), and noise (Rician on MR, Gaussian on CT)."""
    sigma_vox = 0.6 / spacing[::-1]
    image = ndimage.gaussian_filter(image, sigma=sigma_vox)
    sd = NOISE_SD[modality]
    if modality == "mr_t1":
        x, y, z = grid.coordinates()
        coef = rng.normal(0, 0.0012, 3)
        bias = np.exp(coef[0] * x + coef[1] * y + coef[2] * z + rng.normal(0, 2e-6) * (x * x + y * y))
        image = image * bias
        image = np.sqrt((image + rng.normal(0, sd, image.shape)) ** 2 + rng.normal(0, sd, image.shape) ** 2)
    else:
        image = image + rng.normal(0, sd, image.shape)
    return image


def to_sitk(array: np.ndarray, spec: ScanSpec, origin, dtype) -> sitk.Image:
    if np.issubdtype(dtype, np.integer) and dtype != np.uint8:
        array = np.clip(np.round(array), -32768, 32767)
    img = sitk.GetImageFromArray(array.astype(dtype))
    img.SetSpacing([float(s) for s in spec.spacing])
    img.SetOrigin([float(o) for o in origin])
    img.SetDirection([float(v) for v in spec.direction])
    return img


def hip_rows(patient_id: str, scan_id: str, modality: str, anat: PatientAnatomy) -> list[dict]:
    """hips.csv rows for one scan: outcome, grades and the phantom's ground truth."""
    rows = []
    for hip in anat.hips:
        center = anat.head_center_lps(hip)
        rows.append({
            "patient_id": patient_id, "scan_id": scan_id, "side": hip.side,
            "time_months": hip.time_months, "event": hip.event, **hip.grades(),
            "modality": modality, "bme": hip.bme,
            "head_x": round(float(center[0]), 4), "head_y": round(float(center[1]), 4),
            "head_z": round(float(center[2]), 4), "head_radius_mm": hip.head_radius_mm,
            "necrotic_ratio": round(hip.necrotic_ratio, 5), "necrotic_angle_deg": round(hip.necrotic_angle_deg, 2),
            "sranet_positive": int(hip.has_lesion),
        })
        if hip.reading is not None:  # grades read by clinicians: keep the truth the hazard model used beside them
            rows[-1].update(true_jic_stage=hip.jic_stage, true_jic_type=hip.jic_type)
    return rows


SYNTH_STREAM = 7  # the third word of the seed of the stream that decides which scans get random intensities


def patient_rng(seed: int, index: int) -> np.random.Generator:
    """Each patient gets its own stream, so patient k is the same whatever the cohort size."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def write_cohort(out: str | Path, patients: int, seed: int, modality: str = "mr_t1",
                 shape: Sequence[int] | None = None, spacing: Sequence[float] | None = None,
                 reporter=None, preset: str = "default", generator: str = "classic", synth_share: float = 0.0,
                 workers: int = 1) -> Path:
    """Generate a phantom dataset folder (DESIGN §4); modality 'mixed' alternates MR-T1 and CT; `preset`
    names a `phantom.hips.PRESETS` population ('seed000': pre-collapse hips, clinicians' grades);
    `generator` draws the body: 'classic' here, 'realistic' in `phantom.realistic` (same hips and truth).
    `synth_share` of realistic scans get SynthSeg-style random tissue intensities (`protocols.synth_intensities`)
    for training only: such a scan keeps its modality's noise and normalisation but no real contrast, so
    dataset.json lists them (`synth_scans`). `workers` > 1 draws patients in that many processes: each patient
    has its own random stream (`patient_rng`), so the cohort is the same whatever the number of workers."""
    if generator not in GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; use one of {GENERATORS}")
    if synth_share and generator != "realistic":
        raise ValueError("random tissue intensities (synth_share) need the realistic generator's tissue map")
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; use one of {list(PRESETS)}")
    out = Path(out)
    jobs = [_PatientJob(out, seed, i, MODALITIES[i % 2] if modality == "mixed" else modality, preset,
                        None if shape is None else tuple(shape), None if spacing is None else tuple(spacing),
                        generator, synth_share) for i in range(patients)]
    rows, synth_scans = [], []
    with _pool(min(workers, patients)) as pool:
        for i, (job, (scan_rows, synth)) in enumerate(zip(jobs, pool.map(_draw_patient, jobs))):
            rows += scan_rows
            if synth:
                synth_scans.append(job.scan_id)
            if reporter is not None:
                reporter.progress("phantom", (i + 1) / patients, message=f"{job.scan_id} ({job.modality})")
    write_dataset_json(out, f"phantom-seed{seed}", modality,
                       {"generator": "ONFHAssistLib.phantom", "anatomy": generator, "seed": seed, "patients": patients,
                        **({"preset": preset} if preset != "default" else {}),
                        **({"synth_share": synth_share, "synth_scans": synth_scans} if synth_share else {})})
    write_table(pd.DataFrame(rows), out / "hips.csv")  # last: a cohort with hips.csv is complete (`training.shipped`)
    return out


@dataclass(frozen=True)
class _PatientJob:
    """Everything that decides one patient's scan: it crosses to a worker process as is."""
    out: Path
    seed: int
    index: int
    modality: str
    preset: str
    shape: tuple | None
    spacing: tuple | None
    generator: str
    synth_share: float

    @property
    def patient_id(self) -> str:
        return f"P{self.seed:03d}{self.index:04d}"

    @property
    def scan_id(self) -> str:
        return f"{self.patient_id}_S1"


def _draw_patient(job: _PatientJob) -> tuple[list[dict], bool]:
    """Draw and write one patient's scan and label; its hips.csv rows and whether its contrast is random."""
    rng = patient_rng(job.seed, job.index)
    anat = sample_anatomy(rng, preset=PRESETS[job.preset])
    intensities = None
    if job.generator == "realistic":
        # imported here: the realistic generator builds on this module
        from .protocols import synth_intensities
        from .realistic import draw

        # its own stream, so a patient's anatomy and scan do not depend on the share
        synth_rng = np.random.default_rng(np.random.SeedSequence([int(job.seed), int(job.index), SYNTH_STREAM]))
        intensities = synth_intensities(synth_rng) if synth_rng.random() < job.synth_share else None
        scan = draw(anat, rng, job.modality, job.shape, job.spacing, intensities)
        image, label = scan.image, scan.label
    else:
        image, label = render(anat, sample_scan_spec(rng, job.shape, job.spacing), job.modality, rng)
    io.write_image(image, job.out / "images" / f"{job.scan_id}.nii.gz")
    io.write_image(label, job.out / "labels" / f"{job.scan_id}.nii.gz")
    return hip_rows(job.patient_id, job.scan_id, job.modality, anat), intensities is not None


@contextmanager
def _pool(workers: int):
    """Something with `map`: the builtin in this process for one worker, else fresh (spawned) processes, which
    inherit no torch or BLAS threads from a parent that trained before drawing (`training.shipped`)."""
    if workers <= 1:
        yield builtins
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool
