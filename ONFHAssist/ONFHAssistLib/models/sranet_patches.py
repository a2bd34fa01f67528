"""Which SRANet patches hold bone (the structure regulariser, training only) or lesion (attention checks).

Otsu's threshold separates bone from soft tissue; an erosion removes speckle and thin noise, a
dilation restores the bone's extent. The regulariser only needs to know which of the 64 patches touch
bone, so coarse is enough.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .sranet import GRID, PATCH


def coarse_bone_mask(crop: np.ndarray, erode: int = 1, dilate: int = 2) -> np.ndarray:
    """Boolean (z, y, x) mask of the bright structure in a normalised crop."""
    image = sitk.GetImageFromArray(crop.astype(np.float32))
    mask = sitk.OtsuThreshold(image, 0, 1)  # above the threshold → 1
    mask = sitk.BinaryErode(mask, [erode] * 3)
    mask = sitk.BinaryDilate(mask, [dilate] * 3)
    return sitk.GetArrayFromImage(mask).astype(bool)


def bone_patches(mask: np.ndarray, min_fraction: float = 0.01) -> np.ndarray:
    """(64,) flags, patch p = 16i + 4j + k: does the patch hold at least `min_fraction` bone?"""
    return patch_blocks(mask).mean(1) >= min_fraction


def lesion_patches(label: np.ndarray, min_fraction: float = 0.0) -> np.ndarray:
    """(64,) flags in patch order p = 16i + 4j + k: does more than `min_fraction` of the patch hold necrosis (3)?"""
    return patch_blocks(label == 3).mean(1) > min_fraction


def femur_patches(label: np.ndarray, min_fraction: float = 0.02) -> np.ndarray:
    """(64,) flags: does at least `min_fraction` of the patch belong to the femur (label 2)?"""
    return patch_blocks(label == 2).mean(1) >= min_fraction


def patch_blocks(volume: np.ndarray) -> np.ndarray:
    """(64, 32³) voxels of each patch of a 128³ volume, patch p = 16i + 4j + k."""
    blocks = volume.reshape(GRID, PATCH, GRID, PATCH, GRID, PATCH).transpose(0, 2, 4, 1, 3, 5)
    return blocks.reshape(GRID ** 3, -1)
