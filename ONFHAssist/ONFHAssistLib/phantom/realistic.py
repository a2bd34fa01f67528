"""Render entry of the realistic phantom: tissue map, label map and a CT or MR-T1 image of one patient.

Same contract as the classic generator (`phantom.cohort.render`): labels 0 background, 1 pelvis (with
sacrum and coccyx), 2 femur, 3 necrosis; head centres, radii and lesions from `cohort.PatientAnatomy`
and `phantom.hips`, lesion looks from `phantom.signs`. What differs is the body: named muscles with fat
planes (`body`), a pelvic ring, lumbar spine and proximal femora with cortex, canal and trabeculae
(`skeleton`), tissue intensities and clinical protocols from `protocols`, textures from `texture`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import body, skeleton
from .anatomy import FAR, Grid, union_into
from .cohort import FOV_CENTRE_ANATOMY, TISSUE, PatientAnatomy, ScanSpec, to_sitk
from .habitus import Habitus, sample_habitus
from .hips import lesion_masks
from .protocols import (
    FOV_Z,
    INFERIOR_EDGE_MM,
    NOISE_SD,
    SOFT_SD,
    TISSUES,
    TRABECULAR_SD,
    T,
    ageing,
    fit_voxel_budget,
    red_marrow_share,
    sample_protocol,
    tissue_values,
)
from .signs import lesion_intensity
from .texture import band_pass, smooth_field

FAT_PLANE_MM = 2.0  # where two muscles meet, this much fat stays between them
WARP_MM = 4.0
MUSCLE_GROW_MM = 12.0  # muscles fill gaps up to this far; further from every muscle is fat (pelvic, ischioanal)
PRINCIPAL_BOOST = {"ct": 110.0, "mr_t1": -110.0}  # denser compressive trabeculae: more mineral, less fat
RED_MARROW_SHIFT = {"ct": 25.0, "mr_t1": -110.0}  # at 30 years: pelvis and spine keep red marrow longer than the femur
# Below the head the proximal femur's trabeculae are sparse (Ward's triangle, the trochanters, the
# intertrochanteric region): on QCT their density is a fraction of the head's, and falls with age, so fatty
# marrow dominates there. This share of the gap between cancellous bone and yellow marrow is drawn per
# patient and taken from half at 30 years to all at 80. (A real elderly femur at 3 mm has 46 % of its
# voxels under 150 HU, the phantom had 1–12 %: the test case showed the gap, the values are not fitted to it.)
SPARSE_FAT_SHARE = (0.35, 0.65)
# The iliac blade and the sacral alae are sparse-trabecular too (only the supra-acetabular bone carries the
# joint's load): pelvic cancellous bone farther than this many head radii from every head centre gets the
# same fatty share as the femur below its head.
DENSE_PELVIS_RADII = 1.6
# A scanner slice averages the tissue over its thickness (the slice profile): a slice thicker than
# THICK_SLICE_MM is rendered as SUBSLICES thin sub-slices and averaged, so a thin cortex parallel to the
# slices is blurred with marrow as on a real 3-5 mm CT instead of being hit at full density or missed.
THICK_SLICE_MM, SUBSLICES = 1.5, 3


@dataclass
class RealisticScan:
    """A rendered scan with its tissue map (`protocols.TISSUES` indices) and what was drawn."""

    image: sitk.Image
    label: sitk.Image
    tissue: sitk.Image
    habitus: Habitus
    fov: str


def sample_spec(rng: np.random.Generator, anat: PatientAnatomy, hab: Habitus, modality: str,
                shape: Sequence[int] | None = None, spacing: Sequence[float] | None = None) -> tuple[ScanSpec, str]:
    """Field of view (hips only .. L4 to mid-femur, one hip, or an abdomen-pelvis CT ending at the heads) and
    spacing of a clinical protocol."""
    fov, sp = sample_protocol(rng, modality)
    half = anat.head_separation_mm / 2.0
    z_lo, z_hi = FOV_Z[fov]
    if fov in INFERIOR_EDGE_MM:
        z_lo = rng.uniform(*INFERIOR_EDGE_MM[fov])
    z_lo, z_hi = z_lo * hab.scale, z_hi * hab.scale
    if fov == "one_hip":
        side = -1.0 if rng.random() < 0.5 else 1.0
        centre = np.array([side * (half + 10.0), 0.0, (z_lo + z_hi) / 2.0])
        extent = np.array([rng.uniform(150, 200), rng.uniform(150, 200), z_hi - z_lo])
    else:
        width = 2.0 * (half + 55.0 * hab.muscle_bulk + 1.1 * hab.fat_mm) + rng.uniform(10, 40)
        depth = 192.0 * hab.muscle_bulk + 1.8 * hab.fat_mm + rng.uniform(10, 40)
        centre = np.array([0.0, 16.0 + 0.2 * hab.fat_mm, (z_lo + z_hi) / 2.0])
        extent = np.array([width, depth, z_hi - z_lo])
    if spacing is not None:
        sp = np.broadcast_to(np.asarray(spacing, float), (3,)).copy()
    elif shape is None:
        sp = fit_voxel_budget(extent, sp, modality)
    size = np.asarray(shape, int) if shape is not None else np.maximum(np.round(extent / sp).astype(int), 8)
    flips = [(1, 1, 1), (-1, -1, 1), (1, 1, -1)][int(rng.integers(3))]
    centre = centre + rng.uniform(-8, 8, 3)
    offset = anat.rotation() @ (centre - FOV_CENTRE_ANATOMY)
    spec = ScanSpec(tuple(int(v) for v in size), tuple(float(v) for v in sp),
                    tuple(float(v) for v in np.diag(flips).ravel()), tuple(float(v) for v in offset))
    return spec, fov


def _grid(anat: PatientAnatomy, spec: ScanSpec) -> tuple[Grid, np.ndarray]:
    size, spacing = np.array(spec.size), np.array(spec.spacing)
    direction = np.array(spec.direction, float).reshape(3, 3)
    rot, trans = anat.rotation(), np.asarray(anat.translation_mm)
    centre = rot @ FOV_CENTRE_ANATOMY + trans + np.asarray(spec.center_offset_mm)
    origin = centre - direction @ ((size - 1) * spacing / 2.0)
    return Grid(size, spacing, origin, direction, rot, trans), origin


def _paint_soft(grid: Grid, anat, hab: Habitus, rng, tissue: np.ndarray) -> np.ndarray:
    """Skin, fat, bowel, muscles with fat planes, organs and vessels; returns the muscle envelope."""
    x, y, z = grid.coordinates()
    sdf, fat = body.outline(x, y, z, anat, hab)
    tissue[sdf < 0] = T["fat"]
    tissue[(sdf < 0) & (sdf > -body.SKIN_MM)] = T["skin"]
    envelope = sdf < -fat
    for content, prim in body.bowel(hab, rng):
        found = grid.block(prim.lo - 4, prim.hi + 4)
        if found:
            sl, (bx, by, bz) = found
            d, inside = prim.sdf(bx, by, bz), envelope[sl]
            sub = tissue[sl]
            sub[inside & (d < 3.0)] = T["soft_organ"]
            sub[inside & (d < 0.5)] = T[content]
    best = np.full(grid.shape_zyx, FAR, np.float32)
    second = np.full(grid.shape_zyx, FAR, np.float32)
    warp = smooth_field(grid.shape_zyx, grid_spacing(grid), rng, 25.0)  # fat planes wander, not straight
    for i, (_, group) in enumerate(groupby(body.muscles(anat, hab), key=lambda item: item[0])):
        prims = [prim for _, prim in group]
        lo = np.min([pr.lo for pr in prims], axis=0) - 4
        hi = np.max([pr.hi for pr in prims], axis=0) + 4
        found = grid.block(lo, hi)
        if not found:
            continue
        sl, (mx, my, mz) = found
        d = np.min([pr.sdf(mx, my, mz) for pr in prims], axis=0).astype(np.float32)
        d += WARP_MM * np.sin(1.7 * i + 0.5) * warp[sl]
        b, s2 = best[sl], second[sl]
        closer = d < b
        s2[:] = np.where(closer, b, np.minimum(s2, d))
        b[:] = np.minimum(b, d)
    tissue[envelope & (best < MUSCLE_GROW_MM) & (second - best > FAT_PLANE_MM)] = T["muscle"]
    for name, prim, wall in body.organs(hab):
        found = grid.block(prim.lo - wall - 2, prim.hi + wall + 2)
        if found:
            sl, (ox, oy, oz) = found
            d, sub, inside = prim.sdf(ox, oy, oz), tissue[sl], envelope[sl]
            sub[inside & (d < wall)] = T["soft_organ"]
            sub[inside & (d < 0)] = T[name]
    vessels = body.union_field(grid, body.vessels(anat, hab))
    tissue[envelope & (vessels < 0)] = T["blood"]
    gas = (tissue == T["bowel_content"]) & (smooth_field(grid.shape_zyx, grid_spacing(grid), rng, 12.0)
                                            > 1.2 - 2.0 * hab.rectum_gas)
    tissue[gas] = T["gas"]
    return envelope


def grid_spacing(grid: Grid) -> np.ndarray:
    """Voxel spacing (z, y, x) in mm, from the grid's index-to-anatomy matrix."""
    return np.linalg.norm(grid.a, axis=0)[::-1]


def _paint_bones(grid: Grid, anat, hab: Habitus, tissue, label) -> dict:
    """Pelvis, sacrum, lumbar spine and femora: cortex, cancellous bone, canal; joint cartilage."""
    pelvis = np.full(grid.shape_zyx, FAR, np.float32)
    femur = np.full(grid.shape_zyx, FAR, np.float32)
    canal = np.full(grid.shape_zyx, FAR, np.float32)
    frames = {}
    for hip in anat.hips:
        prims, canal_prim, frames[hip.side] = skeleton.femur(anat, hab, hip)
        union_into(grid, femur, prims, k=5.0)
        union_into(grid, canal, [canal_prim], k=0.0)
        union_into(grid, pelvis, skeleton.hemipelvis(anat, hab, hip), k=4.0)
    union_into(grid, pelvis, skeleton.sacrum(hab), k=6.0)
    spine_bones, discs = skeleton.lumbar(hab)
    spine = body.union_field(grid, spine_bones)
    disc = body.union_field(grid, discs)
    z = grid.coordinates()[2]
    symphysis = grid.block(np.array([-3.0, -90, -70]) * hab.scale, np.array([3.0, -20, 10]) * hab.scale)
    if symphysis:  # fibrocartilage disc between the pubic bodies
        sl, (sx, _, _) = symphysis
        gap = pelvis[sl] < 0
        pelvis[sl] = np.maximum(pelvis[sl], 1.5 - np.abs(sx))
        tissue[sl][gap & (pelvis[sl] >= 0)] = T["disc"]
    joint = {}
    for hip in anat.hips:
        c, inner = anat.head_center_anatomy(hip), hip.head_radius_mm + hab.joint_space_mm
        found = grid.block(c - inner - 6, c + inner + 6)
        if found:
            sl, (hx, hy, hz) = found
            d = np.sqrt((hx - c[0]) ** 2 + (hy - c[1]) ** 2 + (hz - c[2]) ** 2)
            pelvis[sl] = np.maximum(pelvis[sl], inner - d)
            joint[hip.side] = (sl, d)
    tissue[disc < 0] = T["disc"]
    for field, thickness in ((spine, 1.0), (pelvis, 1.3)):
        tissue[field < 0] = T["cancellous"]
        tissue[(field < 0) & (field > -thickness)] = T["cortex"]
    lesser_z = min(f.lesser_z for f in frames.values()) if frames else 0.0
    rs = min(f.shaft_radius for f in frames.values()) if frames else 12.0
    cortex_mm = 1.2 + np.clip((lesser_z - z) / 50.0, 0.0, 1.0) * (0.5 * rs - 1.2)
    inside = femur < 0
    tissue[inside] = T["cancellous"]
    tissue[inside & (canal < 0)] = T["yellow_marrow"]
    tissue[inside & (femur > -cortex_mm)] = T["cortex"]
    label[pelvis < 0] = 1
    label[inside] = 2
    for hip in anat.hips:
        if hip.side not in joint:
            continue
        sl, d = joint[hip.side]
        sub_t, sub_p, sub_f = tissue[sl], pelvis[sl], femur[sl]
        space = (d < hip.head_radius_mm + hab.joint_space_mm) & (sub_f >= 0) & (sub_p >= 0)
        sub_t[space] = T["fluid"]
        on_head = space & (d < hip.head_radius_mm + 0.5 * hab.joint_space_mm)
        sub_t[(on_head | (space & (sub_p < 0.5 * hab.joint_space_mm + 0.5)))] = T["cartilage"]
    return {"frames": frames, "spine": spine < 0}


def render(anat: PatientAnatomy, hab: Habitus, spec: ScanSpec, modality: str, rng: np.random.Generator,
           intensities: dict | None = None) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """Render one scan: (image, label map, tissue map). `intensities` (tissue -> mean) replaces the
    modality's drawn values, e.g. `protocols.synth_intensities` for SynthSeg-style training."""
    sub = SUBSLICES if spec.spacing[2] > THICK_SLICE_MM else 1
    thin = ScanSpec(spec.size[:2] + (spec.size[2] * sub,), spec.spacing[:2] + (spec.spacing[2] / sub,),
                    spec.direction, spec.center_offset_mm)  # same centre: sub-slice j of slice i sits inside it
    grid, _ = _grid(anat, thin)
    tissue = np.zeros(grid.shape_zyx, np.uint8)
    label = np.zeros(grid.shape_zyx, np.uint8)
    _paint_soft(grid, anat, hab, rng, tissue)
    bones = _paint_bones(grid, anat, hab, tissue, label)
    values = tissue_values(modality, rng, hab.age) if intensities is None else dict(intensities)
    lut = np.array([values.get(name, 0.0) for name in TISSUES], np.float32)
    image = lut[tissue]
    _add_texture(grid, image, tissue, label, bones, modality, rng, values["fat"] - values["muscle"], hab.age)
    _sparse_trabeculae(grid, image, tissue, label, bones, values, rng, hab.age)
    for hip in anat.hips:
        _paint_lesion(grid, anat, hip, image, tissue, label, modality, values)
    image = image.reshape(spec.size[2], sub, *image.shape[1:]).mean(axis=1)
    label, tissue = (a[sub // 2::sub] for a in (label, tissue))  # the truth at each slice's centre
    grid, origin = _grid(anat, spec)
    image = _acquire(grid, image, modality, rng)
    return tuple(to_sitk(a, spec, origin, dt) for a, dt in ((image, np.int16), (label, np.uint8), (tissue, np.uint8)))


def _sparse_trabeculae(grid, image, tissue, label, bones, values, rng, age: float) -> None:
    """Cancellous bone where trabeculae are sparse moved towards yellow marrow (`SPARSE_FAT_SHARE`): the femur
    outside its head (both trochanters: the box reaches 3 radii to either side) and the pelvis away from the
    acetabula (`DENSE_PELVIS_RADII`)."""
    share = rng.uniform(*SPARSE_FAT_SHARE) * (0.5 + 0.5 * ageing(age))
    shift = share * (values["yellow_marrow"] - values["cancellous"])
    cancellous = tissue == T["cancellous"]
    load_bearing = np.zeros(grid.shape_zyx, bool)
    for frame in bones["frames"].values():
        r = frame.head_radius
        found = grid.block(frame.head - np.array([3.0, 3.0, 5.0]) * r,
                           frame.head + np.array([3.0, 3.0, DENSE_PELVIS_RADII]) * r)
        if found:
            sl, (x, y, z) = found
            d = np.sqrt((x - frame.head[0]) ** 2 + (y - frame.head[1]) ** 2 + (z - frame.head[2]) ** 2)
            image[sl][(d > r) & cancellous[sl] & (label[sl] == 2)] += shift
            load_bearing[sl] |= d <= DENSE_PELVIS_RADII * r
    image[cancellous & (label == 1) & ~load_bearing] += shift


def _add_texture(grid, image, tissue, label, bones, modality, rng, fat_contrast: float, age: float) -> None:
    """Trabecular mottling (denser along the principal compressive group), red marrow, fat streaks in
    muscle (more with age), and a slow drift in soft tissues."""
    spacing = grid_spacing(grid)
    cancellous = tissue == T["cancellous"]
    trab = band_pass(grid.shape_zyx, spacing, rng, 0.7, 2.2, stretch_zyx=(1.6, 1.0, 1.0))
    image[cancellous] += TRABECULAR_SD[modality] * trab[cancellous]
    cortex = tissue == T["cortex"]
    image[cortex] += 0.04 * image[cortex] * trab[cortex]
    red = RED_MARROW_SHIFT[modality] * red_marrow_share(age) / red_marrow_share(30.0)
    image[cancellous & ((label == 1) | bones["spine"])] += red
    muscle = tissue == T["muscle"]
    streaks = band_pass(grid.shape_zyx, spacing, rng, 1.5, 5.0, stretch_zyx=(4.0, 1.0, 1.0))[muscle]
    image[muscle] += fat_contrast * 0.7 * np.clip(streaks - 2.3 + 0.012 * (age - 40.0), 0.0, 1.0)
    soft = np.isin(tissue, [T["fat"], T["muscle"], T["soft_organ"], T["skin"]])
    image[soft] += SOFT_SD[modality] * smooth_field(grid.shape_zyx, spacing, rng, 30.0)[soft]
    for frame in bones["frames"].values():
        r = frame.head_radius
        top = frame.head + 0.8 * r * skeleton.unit([0.2 * np.sign(frame.head[0]), 0.0, 1.0])
        calcar = frame.neck_base + np.array([-np.sign(frame.head[0]) * 0.7 * r, 0.0, -0.6 * r])
        tube = skeleton.cone(top, calcar, 0.32 * r, 0.2 * r)
        found = grid.block(tube.lo - 6, tube.hi + 6)
        if found:
            sl, (x, y, z) = found
            weight = np.clip(-tube.sdf(x, y, z) / 5.0 + 0.5, 0.0, 1.0) * cancellous[sl]
            image[sl] += PRINCIPAL_BOOST[modality] * weight


def _paint_lesion(grid, anat, hip, image, tissue, label, modality, values) -> None:
    """Necrotic lesion with its stage's signs inside the femoral head, crescent, and marrow oedema."""
    signs = anat.signs.get(hip.side)
    if hip.has_lesion and signs is None:
        raise ValueError(f"{hip.side} hip has a lesion but no signs; build anatomies with sample_anatomy")
    c, r = anat.head_center_anatomy(hip), hip.head_radius_mm
    found = grid.block(c - 1.6 * r, c + 1.6 * r)
    if found is None:
        return
    sl, (x, y, z) = found
    rel = np.stack([x - c[0], y - c[1], z - c[2]], axis=-1)
    masks = lesion_masks(hip, rel, rim_mm=signs.rim_mm(hip.jic_stage)) if signs else lesion_masks(hip, rel)
    sub_i, sub_t, sub_l = image[sl], tissue[sl], label[sl]
    scale = values["cancellous"] / TISSUE[modality]["marrow"]  # lesion looks follow this patient's marrow
    if hip.bme:
        d = np.linalg.norm(rel, axis=-1)
        weight = np.clip((1.5 * r - d) / (0.6 * r), 0.0, 1.0)
        marrow = (sub_t == T["cancellous"]) & ~masks["lesion"]
        sub_i[marrow] += (TISSUE[modality]["bme"] - TISSUE[modality]["marrow"]) * scale * weight[marrow]
    lesion = masks["lesion"] & (sub_l == 2)
    paint = lesion & (sub_t != T["cortex"])
    if paint.any():
        # dead bone keeps its trabecular texture: the stage's look shifts this patient's marrow signal
        look = scale * lesion_intensity(hip, signs, modality, rel[paint], masks["rim"][paint])
        sub_i[paint] += look - values["cancellous"]
        sub_i[paint & masks["crescent"]] = values["fluid"]
    sub_t[paint] = T["lesion"]
    sub_l[lesion] = 3


def _acquire(grid: Grid, image: np.ndarray, modality: str, rng) -> np.ndarray:
    """Partial-volume blur, then CT noise (slightly correlated) or an MR bias field and Rician noise."""
    spacing = grid_spacing(grid)
    image = ndimage.gaussian_filter(image, 0.45)
    sd = float(rng.uniform(*NOISE_SD[modality]))
    if modality == "ct":
        noise = ndimage.gaussian_filter(rng.standard_normal(image.shape, dtype=np.float32), 0.6)
        return image + sd * noise / max(float(noise.std()), 1e-6)
    bias = np.exp(0.18 * smooth_field(image.shape, spacing, rng, 180.0))
    image = image * bias
    return np.sqrt((image + rng.normal(0, sd, image.shape)) ** 2 + rng.normal(0, sd, image.shape) ** 2)


def draw(anat: PatientAnatomy, rng: np.random.Generator, modality: str, shape: Sequence[int] | None = None,
         spacing: Sequence[float] | None = None, intensities: dict | None = None) -> RealisticScan:
    """A realistic scan of a sampled patient: habitus from a child stream, a protocol, then `render`."""
    hab = sample_habitus(rng.spawn(1)[0], anat.head_separation_mm)
    spec, fov = sample_spec(rng, anat, hab, modality, shape, spacing)
    image, label, tissue = render(anat, hab, spec, modality, rng, intensities)
    return RealisticScan(image, label, tissue, hab, fov)
