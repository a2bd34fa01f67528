"""Independent reference for the real CT: the right femoral head centre from TotalSegmentator's femur label.

The femur label covers the whole proximal femur, so the head is taken as its most proximal 40 mm on
the medial side of the femur (away from the greater trochanter), and its centre is the least-squares
sphere through that part's outer surface (voxel centres of the label's boundary layer, so a bias of up to half a voxel inwards). Written separately from `measure.py` on purpose.
"""
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REAL = Path(__file__).resolve().parents[2] / "shared/data/real/totalsegmentator_example"
CT, SEG = REAL / "example_ct.nii.gz", REAL / "example_seg_fast_force_split.nii.gz"
FEMUR_RIGHT = 76


def right_head_centre_lps() -> np.ndarray:
    seg = sitk.ReadImage(str(SEG))
    femur = sitk.GetArrayFromImage(seg) == FEMUR_RIGHT
    idx = np.argwhere(femur)  # (z, y, x) voxel indices
    points = np.array([seg.TransformIndexToPhysicalPoint([int(i) for i in v[::-1]]) for v in idx])
    top = points[:, 2] > points[:, 2].max() - 40.0
    medial = points[:, 0] > np.median(points[top, 0])  # LPS x grows towards the patient's left: medial for a right femur
    eroded = sitk.GetArrayFromImage(sitk.BinaryErode(sitk.GetImageFromArray(femur.astype(np.uint8)), [1, 1, 1]))
    on_surface = eroded[tuple(idx.T)] == 0  # the femur's own outer surface, not the cuts made here
    pts = points[top & medial & on_surface]
    a = np.c_[2 * pts, np.ones(len(pts))]
    sol, *_ = np.linalg.lstsq(a, (pts ** 2).sum(1), rcond=None)
    return sol[:3]
