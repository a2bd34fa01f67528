"""Random texture fields on the scan grid: trabecular bone pattern and smooth tissue inhomogeneity.

Both are filtered white noise, normalised to unit standard deviation. Trabeculae (0.1-0.3 mm) are far
below clinical voxel size, so what a scanner shows is a mottled band-pass pattern; a soft tissue's
slow drift in density or signal is a low-frequency field, computed on a coarse grid and zoomed up.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def band_pass(shape, spacing_zyx, rng: np.random.Generator, fine_mm: float = 0.8, coarse_mm: float = 2.5,
              stretch_zyx=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Difference-of-Gaussians noise with features between fine_mm and coarse_mm (float32, sd 1).

    `stretch_zyx` elongates features along an axis (trabeculae run along the load)."""
    spacing = np.asarray(spacing_zyx, float)
    noise = rng.standard_normal(shape, dtype=np.float32)
    fine = np.asarray(stretch_zyx) * fine_mm / spacing
    coarse = np.asarray(stretch_zyx) * coarse_mm / spacing
    field = ndimage.gaussian_filter(noise, np.maximum(fine, 0.3)) - ndimage.gaussian_filter(noise, coarse)
    return (field / max(float(field.std()), 1e-6)).astype(np.float32)


def smooth_field(shape, spacing_zyx, rng: np.random.Generator, scale_mm: float = 40.0) -> np.ndarray:
    """Low-frequency noise (features about scale_mm) with sd 1, made on a coarse grid for speed."""
    spacing = np.asarray(spacing_zyx, float)
    step = np.maximum(1, np.round(scale_mm / 4.0 / spacing)).astype(int)
    coarse_shape = tuple(int(np.ceil(n / s)) + 1 for n, s in zip(shape, step))
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape), 2.0)
    field = ndimage.zoom(coarse, [(n + s) / c for n, s, c in zip(shape, step, coarse_shape)], order=1)
    field = field[: shape[0], : shape[1], : shape[2]]
    return ((field - field.mean()) / max(float(field.std()), 1e-6)).astype(np.float32)
