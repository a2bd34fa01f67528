"""Per-hip crop maps (SRANet attention, Grad-CAM) put back on the input grid, left hips mirrored back."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .crops import uncrop
from .segment import covering_region


def crop_map(values: np.ndarray, crop_geometry: sitk.Image) -> sitk.Image:
    """A (z, y, x) float map with the geometry of the crop it was computed on."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(values, dtype=np.float32))
    image.CopyInformation(crop_geometry)
    return image


def paste(out: np.ndarray, crop: sitk.Image, side: str, center_lps, reference: sitk.Image) -> None:
    """Resample a crop map onto the part of `reference` it covers and keep the larger value per voxel."""
    start, size = covering_region(reference, crop)
    if min(size) <= 0:
        return
    region = sitk.RegionOfInterest(reference, [int(s) for s in size], [int(s) for s in start])
    placed = sitk.GetArrayFromImage(uncrop(crop, side, center_lps, region))
    z, y, x = (slice(s, s + n) for s, n in zip(start[::-1], size[::-1]))
    np.maximum(out[z, y, x], placed, out=out[z, y, x])


def on_grid(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image
