"""Per-hip crop maps (SRANet attention, Grad-CAM) put back on the input grid, left hips mirrored back."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch
from monai.visualize import GradCAM

from ..imaging.crops import uncrop
from .segment import covering_region


def gradcam_for(network: torch.nn.Module) -> GradCAM:
    """MONAI Grad-CAM on the network's `cam_layer`, each map scaled so that the strongest evidence reads 1.

    MONAI's default post-processing maps (min, max) to (1, 0): the map would show where the class has
    the least evidence.
    """
    return GradCAM(nn_module=network, target_layers=network.cam_layer, postprocessing=unit_range)


def unit_range(maps: torch.Tensor) -> torch.Tensor:
    """Each map of a batch scaled linearly to 0 (its minimum) … 1 (its maximum); a flat map becomes 0."""
    flat = maps.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - low) / (high - low).clamp(min=torch.finfo(flat.dtype).tiny)).view_as(maps)


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
