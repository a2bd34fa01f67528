"""Soft tissues of the realistic phantom: body outline with skin and fat, muscles, pelvic organs, vessels, bowel.

The body is a trunk whose cross-section changes with height, joined below the perineum to two thighs.
Subcutaneous fat is thicker with BMI and over the buttocks; inside it, named muscles are ellipsoids and
tubes in the anatomy frame (`phantom.anatomy`), and where two muscles meet a thin fat plane stays.
"""
from __future__ import annotations

import numpy as np

from .anatomy import FAR, Primitive, capsule, cone, ellipsoid, smooth_min, unit
from .habitus import Habitus
from .skeleton import plate, segment_ellipsoid, wing_frame, wing_plate

SKIN_MM = 1.8


def _ellipse_sdf(px, py, a, b, p: float = 2.0):
    """First-order distance (mm) to an axis-aligned superellipse |x/a|^p + |y/b|^p = 1 (p > 2: boxier,
    as a trunk's cross-section is): the level set over its gradient length."""
    u, v = np.abs(px) / a, np.abs(py) / b
    rho = (u ** p + v ** p) ** (1.0 / p)
    scale = np.maximum(rho, 1e-6) ** (1.0 - p)
    grad = np.sqrt((u ** (p - 1) / a) ** 2 + (v ** (p - 1) / b) ** 2) * scale
    return (rho - 1.0) / np.maximum(grad, 1e-6)


def outline(x, y, z, anat, hab: Habitus) -> tuple[np.ndarray, np.ndarray]:
    """(body SDF, subcutaneous fat thickness) at anatomy points; the muscle envelope is sdf < -fat."""
    k, bulk = hab.scale, hab.muscle_bulk
    half = anat.head_separation_mm / 2.0
    up = np.clip((z - 60.0 * k) / 90.0, 0.0, 1.0)  # 0 at the hips, 1 at the abdomen
    a = (half + 55.0 * bulk) * (1.0 - 0.12 * up)
    front, back = -80.0 * bulk - 8.0 * up, 112.0 * bulk + 5.0 * up
    trunk = _ellipse_sdf(x, y - (front + back) / 2.0, a, (back - front) / 2.0, 2.2)
    trunk = np.maximum(trunk, -75.0 * k - z)
    fat = hab.fat_mm * (0.75 + 0.45 * np.clip(y / 90.0, 0, 1) + 0.35 * np.clip(-y / 90.0, 0, 1) * up)
    sdf = trunk - fat
    cleft = np.clip((20.0 * k - z) / 30.0, 0.0, 1.0) * 45.0  # depth of the natal cleft between the buttocks
    rear = back + fat
    sdf = np.maximum(sdf, np.where(y > rear - cleft, 1.5 + 0.3 * (y - rear + cleft) - np.abs(x), -FAR))
    for s in (-1.0, 1.0):
        cx = s * (half + 12.0 + 0.11 * np.minimum(z + 40.0, 0.0))
        thigh = _ellipse_sdf(x - cx, y - 8.0, 64.0 * bulk, 68.0 * bulk)
        thigh_fat = hab.fat_mm * 0.85
        sdf = smooth_min(sdf, np.maximum(thigh - thigh_fat, z + 10.0), 30.0)
    return sdf.astype(np.float32), fat.astype(np.float32)


def muscles(anat, hab: Habitus) -> list[tuple[str, Primitive]]:
    """Named muscles of both sides (and the midline-adjacent ones), as primitives."""
    k, m = hab.scale, hab.muscle_bulk
    half = anat.head_separation_mm / 2.0
    out = []
    for s in (-1.0, 1.0):
        def p(x, y, z, s=s):
            return np.array([s * x, y * k, z * k])

        def lateral(c, semi):  # a muscle lying on the pelvis wall, thin across x
            return ellipsoid(c, np.eye(3), (semi[0] * m, semi[1], semi[2]))

        hip = next(h for h in anat.hips if h.side_sign() == s)
        w = wing_frame(anat, hab, hip)
        gu = unit([s * 120.0, -80.0, 0.0])
        gv = unit([s * 0.35, -0.1, 1.0])
        gn = np.cross(gu, gv)
        out += [
            ("gluteus_maximus", plate(p(half - 2, 70, -12), gu, gv, (70.0, 105.0), 36.0 * m, 1.0 / 160.0,
                                      normal=gn if gn[1] > 0 else -gn)),
            ("gluteus_medius", wing_plate(w, 2.5 + 12.0 + 14.0 * m, 26.0 * m, (0.95, 1.0), -28.0)),
            ("gluteus_minimus", wing_plate(w, 2.5 + 8.0, 14.0 * m, (0.75, 0.8), -34.0)),
            ("iliacus", wing_plate(w, -2.5 - 10.0 * m, 20.0 * m, (0.8, 0.85), -10.0)),
            ("iliopsoas", capsule(p(half - 28, -6, 50), p(half - 14, -36, 4), 16.0 * m)),
            ("iliopsoas", cone(p(half - 14, -36, 4), p(half - 8, 8, -52), 16.0 * m, 10.0 * m)),
            ("psoas", cone(p(32, 24, 240), p(half - 30, -2, 60), 22.0 * m, 16.0 * m)),
            ("piriformis", cone(p(26, 52, 52), p(half + 38, 18, 0), 13.0 * m, 7.0)),
            ("obturator_internus", lateral(p(half - 42, 12, -22), (8, 34, 26))),
            ("obturator_externus", lateral(p(half - 36, -14, -46), (10, 24, 14))),
            ("quadratus_femoris", capsule(p(half - 30, 36, -48), p(half + 22, 26, -44), 9.0 * m)),
            ("adductors", cone(p(30, -36, -56), p(half - 20, 4, -300), 30.0 * m, 40.0 * m)),
            ("hamstrings", cone(p(half - 36, 38, -70), p(half - 14, 44, -300), 16.0 * m, 28.0 * m)),
            ("vasti", cone(p(half + 26, -4, -58), p(half - 6, -8, -300), 30.0 * m, 42.0 * m)),
            ("rectus_femoris", cone(p(half + 10, -40, 34), p(half + 6, -48, -300), 9.0 * m, 16.0 * m)),
            ("sartorius", capsule(p(half + 28, -52, 62), p(half - 46, -30, -300), 9.0 * m)),
            ("tensor_fasciae_latae", capsule(p(half + 52, -34, 40), p(half + 56, -18, -90), 10.0 * m)),
            ("erector_spinae", capsule(p(26, 88, 70), p(28, 84, 300), 24.0 * m)),
            ("rectus_abdominis", capsule(p(14, -76, 0), p(42, -88, 300), 9.0 * m)),
            ("abdominal_wall", capsule(p(half + 40, -10, 150), p(half + 20, -40, 300), 14.0 * m)),
        ]
    return out


def organs(hab: Habitus) -> list[tuple[str, Primitive, float]]:
    """(tissue, primitive, wall mm) of bladder, rectum and prostate or uterus; wall is soft tissue."""
    k, fill = hab.scale, hab.bladder_fill
    out = [("urine", ellipsoid([0, -30 * k, (8 + 18 * fill) * k], np.eye(3), (46 * fill, 36 * fill, 36 * fill)), 2.5)]
    rect = np.array([[0, 32, -48], [0, 52, -8], [0, 56, 30], [10, 42, 64]]) * k
    out += [("bowel_content", capsule(rect[i], rect[i + 1], 15.0), 3.0) for i in range(3)]
    if hab.sex == "M":
        out.append(("soft_organ", ellipsoid([0, -16 * k, -36 * k], np.eye(3), (20, 15, 18)), 0.0))
    else:
        out.append(("soft_organ", segment_ellipsoid(np.array([0, 20, 30]) * k, np.array([0, -5, 80]) * k, 55, 40), 0.0))
    return out


def vessels(anat, hab: Habitus) -> list[Primitive]:
    """Aorta and common iliac arteries, external iliac and femoral arteries and veins of both sides."""
    k = hab.scale
    half = anat.head_separation_mm / 2.0
    prims = [capsule(np.array([8, -8, 168]) * k, np.array([8, -8, 320]) * k, 11.0),
             capsule(np.array([-16, 0, 170]) * k, np.array([-16, 0, 320]) * k, 12.0)]
    for s in (-1.0, 1.0):
        for shift, radius in ((0.0, 4.5), (-12.0, 6.5)):  # artery, then the vein medial to it
            pts = [np.array([s * (half - 52 + shift), 0 * k, 95 * k]),
                   np.array([s * (half - 26 + shift), -48 * k, 4 * k]),
                   np.array([s * (half - 24 + shift), -42 * k, -110 * k]),
                   np.array([s * (half - 36 + shift), -22 * k, -300 * k])]
            prims += [capsule(pts[i], pts[i + 1], radius) for i in range(3)]
        prims.append(capsule(np.array([s * (half - 52), 0, 95 * k]), np.array([8.0 * (s > 0), -8, 168 * k]), 6.0))
    return prims


def bowel(hab: Habitus, rng: np.random.Generator) -> list[tuple[str, Primitive]]:
    """Small-bowel and colon loops above the pelvic brim, some holding gas: (content tissue, loop)."""
    k = hab.scale
    loops = []
    for _ in range(60):
        a = np.array([rng.uniform(-110, 110), rng.uniform(-95, 15), rng.uniform(85, 320)]) * k
        b = a + rng.normal(0, 1, 3) * np.array([35, 20, 35])
        content = "gas" if rng.random() < 0.35 else "bowel_content"
        loops.append((content, capsule(a, b, float(rng.uniform(9, 15)))))
    return loops


def union_field(grid, prims: list[Primitive], margin: float = 4.0) -> np.ndarray:
    """Plain (sharp) union SDF of primitives on the whole grid, evaluated in their boxes only."""
    field = np.full(grid.shape_zyx, FAR, np.float32)
    for prim in prims:
        found = grid.block(prim.lo - margin, prim.hi + margin)
        if found:
            sl, (x, y, z) = found
            field[sl] = np.minimum(field[sl], prim.sdf(x, y, z))
    return field
