"""CT only: bone that the segmentation network left as background, recovered by the Hounsfield scale.

An elderly patient's proximal femur and pelvis hold much fatty marrow: on the real CT 46 % of
TotalSegmentator's femur voxels read under 150 HU, darker than any cancellous bone the phantoms draw, and the
network leaves that bone (the inferior head, the neck, the trochanters) as background, which also pulls the
head sphere upwards. The Hounsfield scale is absolute, so such voxels are told from soft tissue by their value:
bone grows from the network's own bone through voxels above BONE_HU, and each grown voxel joins the nearer of
pelvis and femur (the network still decides which bone is which). A grown voxel must also reach half way from
soft tissue to the brightest voxel near it (the half-maximum edge): the blur of dense cortex across a thick
slice reads above BONE_HU millimetres outside the bone (the phantom CT: up to 500 HU at 1.5–3 mm), and that
is partial volume, not bone. Then marrow that the femur's cortex encloses in an axial, coronal or
sagittal plane is femur too, once gaps that partial volume left in a thin cortex are bridged. MR has no such scale and is left as the network drew it."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

# Above soft tissue with a margin (muscle 35–60 HU, blood ≈ 40, urine 0–20: issue 19's published ranges)
# and below cancellous bone (150–450 HU).
BONE_HU = 100.0
SOFT_TISSUE_HU = 50.0  # muscle's middle: the half-maximum edge lies half way from here to the bone beside it
# The brightest voxel within two crop voxels (3 mm) decides that half way: a voxel's own blur reaches half a
# slice (≤ 2.5 mm at the thickest protocol the phantom draws, 5 mm) plus about a voxel in plane.
EDGE_VOXELS = 5
# How far bone may grow from the network's, along bright voxels: a femoral head's radius, since the largest
# piece of hip bone the network leaves out is about the inferior half of a head. Growth follows bright
# voxels only, so it stops where bone meets soft tissue.
GROW_MM = 24.0
# Before the threshold, a 3 × 3 × 3 median: CT noise (σ 30 HU on a noisy scan) would put single muscle voxels
# above BONE_HU; unlike a Gaussian, a median does not spread dense cortex outwards.
MEDIAN_VOXELS = 3
# The femur's cortex is 1–3 mm thick at the neck and trochanters; on a thick-slice CT partial volume leaves
# gaps of about a slice in its ring, so the femur is closed across CORTEX_GAP_MM before its marrow is filled.
CORTEX_GAP_MM = 3.0
PELVIS, FEMUR, NECROSIS = 1, 2, 3


def recover_bone(labels: np.ndarray, hounsfield: np.ndarray, spacing) -> np.ndarray:
    """`labels` (z, y, x: 0 background, 1 pelvis, 2 femur, 3 necrosis) with background voxels that the
    Hounsfield scale calls bone given to the nearer bone, and the femur's enclosed marrow filled."""
    bone = labels > 0
    femur, pelvis = np.isin(labels, (FEMUR, NECROSIS)), labels == PELVIS
    if not femur.any() and not pelvis.any():
        return labels
    sampling = np.asarray(spacing, float)[::-1]
    hounsfield = hounsfield.astype(np.float32)
    half_maximum = (ndimage.maximum_filter(hounsfield, size=EDGE_VOXELS) + SOFT_TISSUE_HU) / 2.0
    bone_like = (ndimage.median_filter(hounsfield, size=MEDIAN_VOXELS) >= BONE_HU) & (hounsfield >= half_maximum)
    steps = max(1, int(round(GROW_MM / float(sampling.max()))))
    added = ndimage.binary_dilation(bone, iterations=steps, mask=bone_like | bone) & ~bone
    out = labels.copy()
    if added.any():  # each grown voxel joins the nearer bone
        nearer_femur = _distance(femur, sampling) <= _distance(pelvis, sampling)
        out[added & nearer_femur] = FEMUR
        out[added & ~nearer_femur] = PELVIS
    enclosed = _filled_in_planes(_closed(np.isin(out, (FEMUR, NECROSIS)), sampling)) & (out == 0)
    out[enclosed] = FEMUR
    return out


def _distance(mask: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(~mask, sampling=sampling)


def _closed(mask: np.ndarray, sampling: np.ndarray) -> np.ndarray:
    """The mask closed by a ball of CORTEX_GAP_MM: gaps that partial volume left in a thin cortex bridged. The
    crop's faces are padded with their own voxels, since a bone the crop cuts goes on beyond it."""
    radius = np.maximum(1, np.round(CORTEX_GAP_MM / sampling)).astype(int)
    grid = np.indices(2 * radius + 1) - radius[:, None, None, None]
    ball = ((grid * sampling[:, None, None, None]) ** 2).sum(0) <= CORTEX_GAP_MM ** 2
    return ndimage.binary_closing(np.pad(mask, radius[:, None], mode="edge"), structure=ball)[
        tuple(slice(r, r + n) for r, n in zip(radius, mask.shape))]


def _filled_in_planes(mask: np.ndarray) -> np.ndarray:
    """The mask with every hole filled that a slice along any of the three axes encloses."""
    out = mask.copy()
    for axis in range(3):
        planes = np.moveaxis(mask, axis, 0)
        out |= np.moveaxis(np.stack([ndimage.binary_fill_holes(p) for p in planes]), 0, axis)
    return out
