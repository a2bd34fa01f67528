"""A coarse bone mask of a head crop for SRANet's structure regulariser (training only, CT).

Otsu's threshold separates bone from soft tissue; an erosion removes speckle and thin noise, a
dilation restores the bone's extent. The regulariser only needs to know which of the 64 patches touch
bone, so coarse is enough.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .models.sranet import GRID, PATCH


def coarse_bone_mask(crop: np.ndarray, erode: int = 1, dilate: int = 2) -> np.ndarray:
    """Boolean (z, y, x) mask of the bright structure in a normalised crop."""
    image = sitk.GetImageFromArray(crop.astype(np.float32))
    mask = sitk.OtsuThreshold(image, 0, 1)  # above the threshold → 1
    mask = sitk.BinaryErode(mask, [erode] * 3)
    mask = sitk.BinaryDilate(mask, [dilate] * 3)
    return sitk.GetArrayFromImage(mask).astype(bool)


def bone_patches(mask: np.ndarray, min_fraction: float = 0.01) -> np.ndarray:
    """(64,) flags, patch p = 16i + 4j + k: does the patch hold at least `min_fraction` bone?"""
    blocks = mask.reshape(GRID, PATCH, GRID, PATCH, GRID, PATCH).transpose(0, 2, 4, 1, 3, 5)
    return blocks.reshape(GRID ** 3, -1).mean(1) >= min_fraction
