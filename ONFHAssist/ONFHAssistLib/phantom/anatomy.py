"""Hip anatomy as signed distance fields (mm, negative inside), evaluated on a voxel grid.

The anatomy frame has its origin midway between the femoral heads, axes along LPS (x to the
patient's left, y posterior, z superior). A scan places this frame in the world with a small rotation
and a shift; `Grid` maps voxel indices straight into the anatomy frame so every primitive is
evaluated only inside its own bounding box.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

FAR = 1.0e4  # distance used for "nowhere near this structure"

Sdf = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Primitive:
    """A shape: its SDF and the anatomy-frame box outside which it is at least `margin` away."""

    lo: np.ndarray
    hi: np.ndarray
    sdf: Sdf


class Grid:
    """Voxel grid (index order x, y, z; arrays z, y, x) seen from the anatomy frame."""

    def __init__(self, size_xyz, spacing, origin, direction, rotation, translation):
        self.size = np.asarray(size_xyz, int)
        d = np.asarray(direction, float).reshape(3, 3)
        r = np.asarray(rotation, float)
        self.a = (r.T @ d @ np.diag(np.asarray(spacing, float))).astype(np.float64)
        self.b = r.T @ (np.asarray(origin, float) - np.asarray(translation, float))
        self.a_inv = np.linalg.inv(self.a)

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.size[::-1])

    def coordinates(self) -> list[np.ndarray]:
        """Anatomy-frame x, y, z of every voxel (float32 arrays in z, y, x order), computed once."""
        if not hasattr(self, "_q"):
            ix, iy, iz = (np.arange(n, dtype=np.float32) for n in self.size)
            zz, yy, xx = np.meshgrid(iz, iy, ix, indexing="ij", sparse=True)
            self._q = [self.a[k, 0] * xx + self.a[k, 1] * yy + self.a[k, 2] * zz + np.float32(self.b[k])
                       for k in range(3)]
            self._q = [q.astype(np.float32) for q in self._q]
        return self._q

    def block(self, lo: np.ndarray, hi: np.ndarray):
        """Array slices and anatomy coordinates of the voxels whose positions may fall in [lo, hi]."""
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        idx = (self.a_inv @ (corners - self.b).T).T
        start = np.clip(np.floor(idx.min(0)).astype(int), 0, self.size)
        stop = np.clip(np.ceil(idx.max(0)).astype(int) + 1, 0, self.size)
        if np.any(stop <= start):
            return None
        slices = (slice(start[2], stop[2]), slice(start[1], stop[1]), slice(start[0], stop[0]))
        return slices, [q[slices] for q in self.coordinates()]


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth union: blends shapes over a width k so joints look anatomical, not creased."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(k - np.abs(a - b), 0.0, None) / k
    return np.minimum(a, b) - h * h * k * 0.25


def union_into(grid: Grid, field: np.ndarray, prims: list[Primitive], k: float, margin: float = 8.0) -> None:
    """Smooth-union primitives into a full-grid SDF in place, touching only their boxes."""
    for prim in prims:
        found = grid.block(prim.lo - margin, prim.hi + margin)
        if found is None:
            continue
        sl, (x, y, z) = found
        field[sl] = smooth_min(field[sl], prim.sdf(x, y, z).astype(np.float32), k)


def sphere(c, radius) -> Primitive:
    c = np.asarray(c, float)
    return Primitive(c - radius, c + radius,
                     lambda x, y, z: np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) - radius)


def cone(a, b, ra, rb) -> Primitive:
    """Capsule whose radius runs linearly from ra at a to rb at b (a tapering tube)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ba = b - a
    inv_len2 = 1.0 / float(ba @ ba)

    def sdf(x, y, z):
        px, py, pz = x - a[0], y - a[1], z - a[2]
        h = np.clip((px * ba[0] + py * ba[1] + pz * ba[2]) * inv_len2, 0.0, 1.0)
        d = np.sqrt((px - h * ba[0]) ** 2 + (py - h * ba[1]) ** 2 + (pz - h * ba[2]) ** 2)
        return d - (ra + (rb - ra) * h)

    big = max(ra, rb)
    return Primitive(np.minimum(a, b) - big, np.maximum(a, b) + big, sdf)


def capsule(a, b, radius) -> Primitive:
    return cone(a, b, radius, radius)


def ellipsoid(c, axes, semi) -> Primitive:
    """Ellipsoid with orthonormal `axes` (rows) and semi-axis lengths; SDF is the usual scaled bound."""
    c, axes, semi = np.asarray(c, float), np.asarray(axes, float), np.asarray(semi, float)
    reach = np.abs(axes.T) @ semi

    def sdf(x, y, z):
        px, py, pz = x - c[0], y - c[1], z - c[2]
        k = sum(((axes[i, 0] * px + axes[i, 1] * py + axes[i, 2] * pz) / semi[i]) ** 2 for i in range(3))
        return (np.sqrt(k) - 1.0) * semi.min()

    return Primitive(c - reach, c + reach, sdf)


def cup(c, r_in, r_out, opening, cut) -> Primitive:
    """Spherical shell around c with the part facing `opening` removed (the acetabulum)."""
    c, o = np.asarray(c, float), np.asarray(opening, float)

    def sdf(x, y, z):
        px, py, pz = x - c[0], y - c[1], z - c[2]
        d = np.sqrt(px * px + py * py + pz * pz)
        shell = np.maximum(d - r_out, r_in - d)
        plane = (px * o[0] + py * o[1] + pz * o[2]) - cut
        return np.maximum(shell, plane)

    return Primitive(c - r_out, c + r_out, sdf)


def unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def rotation_matrix(angles_deg) -> np.ndarray:
    """Rotation from small angles about x, y, z (applied in that order)."""
    ax, ay, az = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx
