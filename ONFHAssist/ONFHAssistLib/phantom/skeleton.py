"""Bones of the realistic phantom as signed distance fields: hemipelves, sacrum and coccyx, L4-L5, femora.

Coordinates are the anatomy frame of `phantom.anatomy` (mm; x left, y posterior, z superior; origin
midway between the femoral heads), scaled by the patient's pelvis size. The iliac wing is a thin
curved plate, the acetabular roof is cut so that it covers the head to the sampled lateral centre-edge
angle, and the femur has head (with its truth-driven flattening), fovea, neck, trochanters and a
tapering shaft whose medullary canal leaves a thick diaphyseal cortex.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Primitive, capsule, cone, cup, ellipsoid, sphere, unit
from .habitus import Habitus
from .hips import HipTruth, head_surface_radius


def plate(c, u, v, half, thickness, bend=0.0, normal=None, thick_low=None) -> Primitive:
    """A plate with rounded edges: elliptic outline (half-extents along u, v) bent by `bend` (1/mm) about v.

    The middle surface sits at n = -bend * u^2 / 2 (n = `normal` or u x v), so the ends curl towards -n;
    `thick_low` thickens it towards its lower (-v) edge, as the ilium thickens towards the acetabulum."""
    c, u, v = np.asarray(c, float), unit(u), unit(v)
    n = np.cross(u, v) if normal is None else unit(normal)
    a, b = half
    low = thickness if thick_low is None else thick_low
    reach = abs(a) * np.abs(u) + abs(b) * np.abs(v) + (max(thickness, low) + bend * a * a / 2.0) * np.abs(n)
    rho = 0.5 * min(thickness, low)

    def sdf(x, y, z):
        px, py, pz = x - c[0], y - c[1], z - c[2]
        pu = u[0] * px + u[1] * py + u[2] * pz
        pv = v[0] * px + v[1] * py + v[2] * pz
        pn = n[0] * px + n[1] * py + n[2] * pz
        t = thickness + (low - thickness) * np.clip(-pv / b, 0.0, 1.0) ** 2
        across = np.abs(pn + 0.5 * bend * pu * pu) - t / 2.0 + rho
        outline = (np.sqrt((pu / a) ** 2 + (pv / b) ** 2) - 1.0) * min(a, b) + rho
        corner = np.sqrt(np.maximum(across, 0.0) ** 2 + np.maximum(outline, 0.0) ** 2)
        return corner + np.minimum(np.maximum(across, outline), 0.0) - rho

    return Primitive(c - reach, c + reach, sdf)


def segment_ellipsoid(a, b, width, depth) -> Primitive:
    """Ellipsoid spanning segment a-b, `width` across x and `depth` across the remaining axis."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    e3 = unit(b - a)
    e2 = unit(np.cross(e3, [1.0, 0.0, 0.0]))
    e1 = np.cross(e2, e3)
    return ellipsoid((a + b) / 2.0, np.array([e1, e2, e3]), (width / 2.0, depth / 2.0, np.linalg.norm(b - a) / 2.0 + 4.0))


@dataclass
class FemurFrame:
    """Where a femur's parts are, for painting cortex, canal and trabeculae."""

    head: np.ndarray
    to_head: np.ndarray  # unit vector from the neck base towards the head centre
    neck_base: np.ndarray
    shaft_dir: np.ndarray  # unit vector down the shaft
    lesser_z: float
    shaft_radius: float
    head_radius: float


def femur(anat, hab: Habitus, hip: HipTruth) -> tuple[list[Primitive], Primitive, FemurFrame]:
    """Proximal femur primitives, its medullary canal, and its frame."""
    c = anat.head_center_anatomy(hip)
    s, r = hip.side_sign(), hip.head_radius_mm
    alpha, beta = np.radians(anat.neck_shaft_deg), np.radians(anat.anteversion_deg)
    to_head = unit([-s * np.sin(alpha) * np.cos(beta), -np.sin(alpha) * np.sin(beta), -np.cos(alpha)])
    base = c - 2.15 * r * to_head
    down = unit([-s * 0.11, 0.02, -1.0])
    rs = 0.55 * r * hab.scale ** 0.5  # diaphyseal radius
    fovea = c + (r + 1.5) * unit([-s * 0.7, 0.15, -0.7])

    def head_sdf(x, y, z):
        rel = np.stack([x - c[0], y - c[1], z - c[2]], axis=-1)
        d = np.linalg.norm(rel, axis=-1) - head_surface_radius(hip, rel)
        pit = np.sqrt((x - fovea[0]) ** 2 + (y - fovea[1]) ** 2 + (z - fovea[2]) ** 2) - 4.0
        return np.maximum(d, -pit)

    lesser = base + np.array([-s * 0.65 * r, 0.3 * r, -1.3 * r])
    greater = base + np.array([s * 0.75 * r, 0.35 * r, 0.55 * r])
    prims = [
        Primitive(c - r, c + r, head_sdf),
        cone(c - 0.4 * r * to_head, c - 1.5 * r * to_head, 0.62 * r, 0.64 * r),
        cone(c - 1.5 * r * to_head, base, 0.64 * r, 0.8 * r),
        ellipsoid(greater, np.eye(3), (0.5 * r, 0.8 * r, 0.95 * r)),
        ellipsoid((greater + lesser) / 2.0 + np.array([0, 0.3 * r, 0]), np.eye(3), (0.6 * r, 0.45 * r, 1.0 * r)),
        sphere(lesser, 0.4 * r),
        cone(base + np.array([s * 0.35 * r, 0.1 * r, -0.4 * r]), base + 2.2 * r * down, 0.8 * r, 1.05 * rs),
        cone(base + 2.2 * r * down, base + 340.0 * down, 1.05 * rs, 0.95 * rs),
    ]
    canal = cone(base + 1.6 * r * down, base + 340.0 * down, 0.25 * rs, 0.55 * rs)
    return prims, canal, FemurFrame(c, to_head, base, down, float(lesser[2]), rs, float(r))


@dataclass
class WingFrame:
    """The iliac wing's middle surface: centre, in-plane axes u (back to front) and v (up), outward
    normal n, half-extents and bend; the gluteal muscles and iliacus lie on it."""

    centre: np.ndarray
    u: np.ndarray
    v: np.ndarray
    n: np.ndarray
    half: tuple
    bend: float


def wing_frame(anat, hab: Habitus, hip: HipTruth) -> WingFrame:
    c = anat.head_center_anatomy(hip)
    s, k, hx = hip.side_sign(), hab.scale, abs(c[0])
    flare = 8.0 if hab.sex == "F" else 0.0
    asis = np.array([s * (hx + 22 + flare), -48 * k, 68 * k])
    psis = np.array([s * 42.0, 78 * k, 78 * k])
    crest = np.array([s * (hx + 42 + flare), 15 * k, 118 * k])
    u = unit(asis - psis)
    up = crest - (c + np.array([0.0, 10.0 * k, 40.0 * k]))
    v = unit(up - (up @ u) * u)
    n = np.cross(u, v)
    if s * n[0] < 0:  # make n point outwards (lateral), the wing's gluteal surface
        n = -n
    centre = (asis + psis) / 2.0 + np.array([s * 16.0, 0.0, 8.0])
    # ends (ASIS, PSIS) curl medially, so the wing is convex outwards: the bend turns them towards -n
    return WingFrame(centre, u, v, n, (0.5 * float(np.linalg.norm(asis - psis)) + 6.0, 50.0 * k), 1.0 / 140.0)


def wing_plate(w: WingFrame, offset: float, thickness: float, shrink=(1.0, 1.0), shift_v: float = 0.0,
               thick_low: float | None = None) -> Primitive:
    """A plate parallel to the iliac wing, `offset` mm along its outward normal (negative: inside)."""
    half = (w.half[0] * shrink[0], w.half[1] * shrink[1])
    return plate(w.centre + offset * w.n + shift_v * w.v, w.u, w.v, half, thickness, w.bend,
                 normal=w.n, thick_low=thick_low)


def hemipelvis(anat, hab: Habitus, hip: HipTruth) -> list[Primitive]:
    """Acetabulum with a roof to the sampled LCE angle and its columns, iliac wing, ischium, pubis."""
    c = anat.head_center_anatomy(hip)
    s, r, k = hip.side_sign(), hip.head_radius_mm, hab.scale
    f = 1.0 if hab.sex == "F" else 0.0  # female pelvis: wider flare, wider subpubic arch
    inner = r + hab.joint_space_mm
    incl, av = np.radians(hab.acetabular_inclination_deg), np.radians(hab.acetabular_anteversion_deg)
    opening = np.array([s * np.sin(incl) * np.cos(av), -np.sin(av), -np.cos(incl) * np.cos(av)])
    shell = 7.0
    cut = -(inner + shell / 2.0) * np.cos(np.radians(hab.lce_deg) + incl)
    hx = abs(c[0])

    def p(x, y, z):  # a point of this side, x measured outwards from the midline
        return np.array([s * x, y * k, z * k])

    w = wing_frame(anat, hab, hip)
    sij = p(50, 62, 62)
    tuber = p(hx - 40, 30, -62)
    pubic = p(14 + 3 * f, -56, -30)
    return [
        cup(c, inner, inner + shell, opening, cut),
        ellipsoid(c + np.array([-s * 8.0, 8.0, r + 14.0]), np.eye(3), (20.0, 22.0, 20.0)),  # supra-acetabular body
        ellipsoid(c + np.array([-s * (inner + 6.0), 4.0, 0.0]), np.eye(3), (7.0, 24.0, 26.0)),  # quadrilateral plate
        capsule(c + np.array([-s * 6.0, 24.0, 20.0]), c + np.array([-s * 14.0, 24.0, -24.0]), 13.0),  # posterior column
        capsule(c + np.array([s * 4.0, -22.0, 24.0]), c + np.array([-s * 16.0, -22.0, -10.0]), 10.0),  # anterior column
        wing_plate(w, 0.0, 5.0, thick_low=24.0),
        capsule(w.centre - w.half[0] * w.u, w.centre + 0.4 * w.half[0] * w.u + 0.5 * w.half[1] * w.v, 5.5),
        capsule(c + np.array([-s * 10.0, 14.0, r + 4.0]), sij, 13.0),
        capsule(p(58, 52, 38), p(62, 78, 92), 10.0),  # auricular part of the ilium (sacroiliac joint)
        sphere(p(hx + 10, -36, 36), 7.0),  # anterior inferior iliac spine
        capsule(c + np.array([-s * 14.0, -16.0, -8.0]), pubic + p(2, 0, 6), 8.5),  # superior pubic ramus
        ellipsoid(pubic, np.eye(3), (9.0, 10.0, 19.0)),  # pubic body
        capsule(pubic + p(2, 6, -16), tuber + p(6 * f, -8, -6), 6.5),  # inferior pubic and ischial rami
        capsule(c + np.array([-s * 12.0, 18.0, -12.0]), tuber, 12.0),  # ischium
        ellipsoid(tuber, np.eye(3), (13.0, 15.0, 18.0)),  # ischial tuberosity
    ]


def sacrum(hab: Habitus) -> list[Primitive]:
    """Sacrum as a curved, tapering wedge (wide alae at S1) and a three-piece coccyx."""
    k = hab.scale
    wide = 1.06 if hab.sex == "F" else 1.0
    pts = np.array([[0, 32, 96], [0, 50, 66], [0, 68, 36], [0, 80, 12], [0, 84, -2]]) * k
    widths = np.array([98, 80, 52, 34, 24]) * k * wide
    depths = np.array([40, 26, 18, 13, 10]) * k
    prims = [segment_ellipsoid(pts[i], pts[i + 1], (widths[i] + widths[i + 1]) / 2, (depths[i] + depths[i + 1]) / 2)
             for i in range(len(pts) - 1)]
    coccyx = np.array([[0, 84, -2], [0, 83, -14], [0, 78, -24], [0, 72, -31]]) * k
    prims += [capsule(coccyx[i], coccyx[i + 1], 5.0 - i) for i in range(3)]
    return prims


def lumbar(hab: Habitus) -> tuple[list[Primitive], list[Primitive]]:
    """L5 and L4 (bodies and posterior arches) and the discs L4/5 and L5/S1: (bone, discs)."""
    k = hab.scale
    bones, discs = [], []
    for z0, y0 in ((128.0, 22.0), (163.0, 14.0)):
        z, y = z0 * k, y0 * k
        bones.append(ellipsoid([0, y, z], np.eye(3), (25.0, 18.0, 13.0)))
        discs.append(ellipsoid([0, y + 4, z - 17.0], np.eye(3), (23.0, 16.0, 5.0)))
        for s in (-1.0, 1.0):
            bones.append(capsule([s * 12, y + 14, z + 2], [s * 11, y + 34, z], 5.0))  # pedicle and lamina
            bones.append(capsule([s * 11, y + 34, z], [s * 30, y + 30, z + 2], 4.5))  # transverse process
        bones.append(capsule([0, y + 34, z], [0, y + 58, z - 8], 5.5))  # spinous process
    return bones, discs
