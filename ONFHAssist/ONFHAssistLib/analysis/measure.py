"""Per-hip measurements on a segmented crop: head sphere, volumes, necrotic ratio, Kerboul-style angle.

All work happens in crop space (axis-aligned, isotropic, left hips mirrored), where the neck always
leaves the head laterally and inferiorly, so the sphere fit can ignore the neck by direction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

NECK_EXCLUSION_DEG = 60.0
KERBOUL_INSET_MM = 2.5


@dataclass
class HeadSphere:
    center_xyz: np.ndarray  # crop physical mm
    radius_mm: float
    points: int


def boundary_points(mask: np.ndarray, origin_xyz, spacing_xyz, in_view: np.ndarray | None = None) -> np.ndarray:
    """Centres of the voxel faces between inside and outside, in mm (x, y, z): an unbiased surface sample.
    With `in_view`, faces touching a voxel outside the scan are skipped: where the scan ends, a bone is cut,
    and the cut is not its surface."""
    points = []
    for axis in range(3):
        a, b = [slice(None)] * 3, [slice(None)] * 3
        a[axis], b[axis] = slice(0, -1), slice(1, None)
        change = mask[tuple(a)] != mask[tuple(b)]
        if in_view is not None:
            change &= in_view[tuple(a)] & in_view[tuple(b)]
        idx = np.argwhere(change).astype(float)
        idx[:, axis] += 0.5
        points.append(idx)
    zyx = np.concatenate(points)
    return np.asarray(origin_xyz) + zyx[:, ::-1] * np.asarray(spacing_xyz)


def _algebraic_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    a = np.c_[2 * points, np.ones(len(points))]
    sol, *_ = np.linalg.lstsq(a, (points ** 2).sum(1), rcond=None)
    centre = sol[:3]
    return centre, float(np.sqrt(max(sol[3] + centre @ centre, 1e-6)))


def fit_head_sphere(femur: np.ndarray, origin_xyz, spacing_xyz, start_xyz, radius_guess: float = 24.0,
                    iterations: int = 5, in_view: np.ndarray | None = None) -> HeadSphere | None:
    """Sphere through the head surface, skipping the cone around the neck axis and, with `in_view`, the
    cut where the scan ends (`boundary_points`); None if too few points."""
    surface = boundary_points(femur, origin_xyz, spacing_xyz, in_view)
    voxels = np.asarray(origin_xyz) + np.argwhere(femur)[:, ::-1] * np.asarray(spacing_xyz)
    centre, radius = np.asarray(start_xyz, float), radius_guess
    for _ in range(iterations):
        far = voxels[np.linalg.norm(voxels - centre, axis=1) > radius + 10.0]
        neck = far.mean(0) - centre if len(far) else np.array([-1.0, 0.0, -1.0])
        neck /= np.linalg.norm(neck) + 1e-9
        rel = surface - centre
        dist = np.linalg.norm(rel, axis=1)
        away = (rel @ neck) / np.maximum(dist, 1e-9) < np.cos(np.radians(NECK_EXCLUSION_DEG))
        keep = away & (np.abs(dist - radius) < max(6.0, 0.25 * radius))
        if keep.sum() < 50:
            return None
        centre, radius = _algebraic_sphere(surface[keep])
    return HeadSphere(centre, radius, int(keep.sum()))


def largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    return labels == (1 + int(np.argmax(sizes)))


def distance_map(shape, origin_xyz, spacing_xyz, centre_xyz) -> np.ndarray:
    """Distance (mm) of every voxel centre of a (z, y, x) grid from a point."""
    axes = [np.asarray(origin_xyz)[k] + np.arange(shape[2 - k]) * np.asarray(spacing_xyz)[k] - centre_xyz[k]
            for k in range(3)]
    return np.sqrt(axes[2][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[0][None, None, :] ** 2)


def kerboul_angle(necrosis: np.ndarray, origin_xyz, spacing_xyz, centre_xyz, radius_mm: float,
                  step_deg: float = 1.0) -> float:
    """Arc of the lesion on the mid-coronal plus the mid-sagittal plane through the head centre (degrees)."""
    psi = np.radians(np.arange(-180.0, 180.0, step_deg))
    total = 0.0
    for dirs in (np.stack([np.sin(psi), 0 * psi, np.cos(psi)], 1), np.stack([0 * psi, np.sin(psi), np.cos(psi)], 1)):
        pts = np.asarray(centre_xyz) + dirs * (radius_mm - KERBOUL_INSET_MM)
        idx = (pts - np.asarray(origin_xyz)) / np.asarray(spacing_xyz)
        values = ndimage.map_coordinates(necrosis.astype(np.float32), idx[:, ::-1].T, order=1, cval=0.0)
        total += float(np.sum(values >= 0.5) * step_deg)
    return total


@dataclass
class HipMeasures:
    center_xyz: np.ndarray
    radius_mm: float
    head_volume_ml: float
    necrosis_volume_ml: float
    necrotic_ratio: float
    necrotic_angle_deg: float


def measure_head(labels: np.ndarray, sphere: HeadSphere, origin_xyz, spacing_xyz) -> HipMeasures:
    """Volumes inside the fitted head sphere and the lesion arc, from a post-processed crop label map."""
    dist = distance_map(labels.shape, origin_xyz, spacing_xyz, sphere.center_xyz)
    head = (dist <= sphere.radius_mm) & np.isin(labels, (2, 3))
    necrosis = head & (labels == 3)
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    ratio = float(necrosis.sum() / max(head.sum(), 1))
    angle = kerboul_angle(labels == 3, origin_xyz, spacing_xyz, sphere.center_xyz, sphere.radius_mm) if necrosis.any() else 0.0
    return HipMeasures(sphere.center_xyz, sphere.radius_mm, head.sum() * voxel_ml, necrosis.sum() * voxel_ml, ratio, angle)
