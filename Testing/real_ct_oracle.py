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


def _voxel_lps(image: sitk.Image, zyx: np.ndarray) -> np.ndarray:
    """LPS millimetres of voxel indices given as (z, y, x) rows, from the image's own origin, spacing and direction."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return (zyx[:, ::-1] * np.array(image.GetSpacing())) @ direction.T + np.array(image.GetOrigin())


def _head_centre(seg: sitk.Image) -> np.ndarray:
    femur = sitk.GetArrayFromImage(seg) == FEMUR_RIGHT
    idx = np.argwhere(femur)  # (z, y, x) voxel indices
    points = _voxel_lps(seg, idx)
    top = points[:, 2] > points[:, 2].max() - 40.0
    medial = points[:, 0] > np.median(points[top, 0])  # LPS x grows towards the patient's left: medial for a right femur
    eroded = sitk.GetArrayFromImage(sitk.BinaryErode(sitk.GetImageFromArray(femur.astype(np.uint8)), [1, 1, 1]))
    on_surface = eroded[tuple(idx.T)] == 0  # the femur's own outer surface, not the cuts made here
    pts = points[top & medial & on_surface]
    a = np.c_[2 * pts, np.ones(len(pts))]
    sol, *_ = np.linalg.lstsq(a, (pts ** 2).sum(1), rcond=None)
    return sol[:3]


def right_head_centre_lps() -> np.ndarray:
    return _head_centre(sitk.ReadImage(str(SEG)))


FEMUR_LABELS, PELVIS_LABELS = (76,), (78, 25)  # femur_right; hip_right + sacrum
BOX_MM = 96.0


def right_hip_dice(labels: sitk.Image) -> dict[str, float]:
    """Dice of a label map on the CT's grid (1 pelvis, 2 femur, 3 necrosis) against TotalSegmentator's right
    femur and right hip bone + sacrum, inside the 96 mm box around the oracle's right head centre; also the
    number of necrosis voxels in that box."""
    seg_image = sitk.ReadImage(str(SEG))
    grid = ("GetSize", "GetOrigin", "GetSpacing", "GetDirection")
    if any(not np.allclose(getattr(labels, g)(), getattr(seg_image, g)()) for g in grid):
        raise ValueError("right_hip_dice: the label map is not on the real CT's grid")
    seg = sitk.GetArrayFromImage(seg_image)
    pred = sitk.GetArrayFromImage(labels)
    lps = _voxel_lps(seg_image, np.indices(seg.shape).reshape(3, -1).T)
    box = (np.abs(lps - _head_centre(seg_image)) <= BOX_MM / 2).all(1).reshape(seg.shape)

    def dice(truth, predicted):
        t, p = truth & box, predicted & box
        return float(2 * (t & p).sum() / (t.sum() + p.sum()))

    return {"femur": dice(np.isin(seg, FEMUR_LABELS), np.isin(pred, (2, 3))),
            "pelvis": dice(np.isin(seg, PELVIS_LABELS), pred == 1),
            "necrosis_voxels": int(((pred == 3) & box).sum())}
