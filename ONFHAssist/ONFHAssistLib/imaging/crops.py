"""Per-hip crops: a fixed physical box around a femoral head, left hips mirrored onto the right.

Every per-hip model (segmentation, staging, SRANet, survival) sees the same kind of input: an
axis-aligned LPS box centred on the head, with the patient's left hip reflected about the sagittal
plane through its own centre so that it looks like a right hip. `uncrop` undoes both steps exactly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from . import io
from .modality import ct_evidence

CT_WINDOW = (-200.0, 1600.0)


@dataclass(frozen=True)
class CropSpec:
    """Box edge (mm) and voxel spacing (mm); size in voxels follows."""

    box_mm: float = 96.0
    spacing_mm: float = 1.5

    @property
    def size(self) -> int:
        return int(round(self.box_mm / self.spacing_mm))

    def to_json(self) -> dict:
        return asdict(self)


def hip_crop(image: sitk.Image, center_lps: Sequence[float], side: str, spec: CropSpec,
             label: bool = False) -> sitk.Image:
    """Crop the box around a head; for side 'L' the image is seen mirrored (about x = centre x)."""
    return io.crop_box(image, center_lps, spec.box_mm, spec.spacing_mm, label=label,
                       mirror_x=float(center_lps[0]) if side == "L" else None)


def in_view(image: sitk.Image, center_lps: Sequence[float], side: str, spec: CropSpec) -> np.ndarray:
    """(z, y, x) mask of the crop voxels inside the scanned volume (the crop pads beyond it), from the
    geometry alone: each voxel's point, mirrored back for a left hip, by `io.points_inside`."""
    ref = io.grid_reference(center_lps, spec.box_mm, spec.spacing_mm)
    zyx = np.indices(ref.GetSize()[::-1]).reshape(3, -1).T
    points = np.asarray(ref.GetOrigin()) + zyx[:, ::-1] * np.asarray(ref.GetSpacing())
    if side == "L":
        points[:, 0] = 2.0 * float(center_lps[0]) - points[:, 0]
    return io.points_inside(image, points).reshape(ref.GetSize()[::-1])


def uncrop(crop: sitk.Image, side: str, center_lps: Sequence[float], reference: sitk.Image,
           label: bool = False, default: float = 0.0) -> sitk.Image:
    """Put a crop-space map back on the input grid (mirrored back for a left hip)."""
    placed = io.mirror(crop, float(center_lps[0])) if side == "L" else crop
    return io.resample_to(placed, reference, label=label, default=default)


def guess_modality(image: sitk.Image) -> str:
    """The model input scale: "ct" on the Hounsfield scale, otherwise "mr_t1" (whether the MR sequence is
    really T1 is `modality.decide_modality`'s question, asked by the analysis before it trusts the scan)."""
    return "ct" if ct_evidence(image)[0] else "mr_t1"


def normalise(array: np.ndarray, modality: str) -> np.ndarray:
    """Model input scale: CT by a fixed bone window, MR by robust percentiles of the crop itself."""
    array = array.astype(np.float32)
    if modality == "ct":
        lo, hi = CT_WINDOW
    else:
        lo, hi = np.percentile(array, (1.0, 99.5))
        hi = max(hi, lo + 1e-3)
    return np.clip((array - lo) / (hi - lo), -0.2, 1.2).astype(np.float32)


def crop_arrays(image: sitk.Image, center_lps, side: str, spec: CropSpec, modality: str,
                label: sitk.Image | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Normalised image crop (z, y, x) and optional label crop, ready for a network."""
    img = normalise(sitk.GetArrayFromImage(hip_crop(image, center_lps, side, spec)), modality)
    lab = None
    if label is not None:
        lab = sitk.GetArrayFromImage(hip_crop(label, center_lps, side, spec, label=True)).astype(np.int64)
    return img, lab
