"""Segment one hip: crop around the head, sliding-window DynUNet, clean-up, measures, back to the input grid."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch
from monai.inferers import sliding_window_inference
from scipy import ndimage

from ..imaging import io
from ..imaging.crops import CropSpec, hip_crop, in_view, normalise, uncrop
from .ct_bone import recover_bone
from .measure import HeadSphere, HipMeasures, distance_map, fit_head_sphere, largest_component, measure_head
from .ood import bottleneck_features, crop_features

INFER_SPEC = CropSpec(box_mm=96.0, spacing_mm=1.5)
PATCH = 48
NECROSIS_MARGIN_MM = 1.5
# Necrosis components below this are dropped: no lesion anyone would stage is that small (the phantom's
# smallest is 1.3 ml, ≈ 2 % of a head), while noise specks on a healthy CT head reach ≈ 0.6 ml.
MIN_NECROSIS_ML = 0.8
# A lesion shows as one (rim, interior, rim) only when it spans about three of the scan's own voxels each
# way; anything smaller is partial volume that any bright or dark blob under the cortex produces alike. So a
# component must hold RESOLVABLE_VOXELS of the input's voxels: 3.4 ml at 5 mm, 1.7 ml at 4 mm, and under
# MIN_NECROSIS_ML at every clinical protocol the phantom draws (≤ 13 mm³ voxels) and at 3 mm.
RESOLVABLE_VOXELS = 27
# A lesion component lying against the pelvis label is not in the head: ONFH is subchondral, and cartilage
# plus joint space keep it ≥ 3 mm from the acetabulum (the phantom's truth: 3.1–4.0 mm). A few boundary
# voxels may touch through partial volume (≤ 1 % of a predicted phantom CT lesion, seed 9204), but a
# component with a tenth of its voxels within JOINT_CONTACT_MM of the pelvis is the acetabular roof seen
# through an unresolved joint space (20–26 % on the real CT's healthy right hip, which a first rule of
# "any voxel touching" also caught, at the cost of most phantom CT lesions).
JOINT_CONTACT_MM = 1.5
MAX_CONTACT_SHARE = 0.1
# Pelvis labelled inside the fitted head's surface becomes femur, and the head is fitted again, at most
# HEAD_REFITS times (each fit takes in more of the head the network gave to the pelvis). The acetabulum lies
# beyond cartilage and joint space, ≥ 3 mm outside the head (the phantom's truth: 3.1–4.0 mm), so the
# surface itself is the limit.
HEAD_REFITS = 3
# Nor does the femur reach above its head: within ROOF_CONE_DEG of straight up from the head centre, bone
# beyond the head's surface is the acetabular roof (the greater trochanter's tip, the femur's highest point
# outside the head, lies ≥ 40 mm lateral and at most about 25 mm above the centre even in a varus hip: ≥ 58°).
# ROOF_MARGIN_MM leaves the surface's partial-volume voxels to the head.
ROOF_CONE_DEG = 45.0
ROOF_MARGIN_MM = 1.5


@dataclass
class HipSegmentation:
    side: str
    crop: sitk.Image  # crop-space label map (right-hip view)
    crop_center: list[float]  # LPS centre the crop was taken around
    measures: HipMeasures | None
    center_lps: list[float] | None  # refined head centre in the patient's LPS mm
    dropped_lesion_ml: float = 0.0  # lesion the network drew outside the head or femur, on the pelvis, or too small
    min_lesion_ml: float = MIN_NECROSIS_ML  # smallest lesion component kept at this scan's resolution
    intensities: sitk.Image | None = None  # the input crop the network saw (before normalisation)
    features: np.ndarray | None = None  # the network's pooled bottleneck activations on this crop (`ood`)
    bone_added_ml: float = 0.0  # CT: bone the network left as background, added by the Hounsfield scale (`ct_bone`)


def predict_crop(network: torch.nn.Module, crop: np.ndarray, device: torch.device) -> np.ndarray:
    """Class probabilities (4, z, y, x) of a normalised crop by Gaussian-weighted sliding windows."""
    x = torch.from_numpy(crop)[None, None].to(device)
    with torch.no_grad():
        logits = sliding_window_inference(x, (PATCH,) * 3, sw_batch_size=4, predictor=network, overlap=0.5,
                                          mode="gaussian")
    return torch.softmax(logits, 1)[0].float().cpu().numpy()


def min_lesion_ml(source_spacing) -> float:
    """Smallest lesion component (ml) a scan with these voxel sizes (mm) resolves."""
    return max(MIN_NECROSIS_ML, RESOLVABLE_VOXELS * float(np.prod(source_spacing)) / 1000.0)


def postprocess(labels: np.ndarray, origin, spacing, start_xyz, in_view: np.ndarray | None = None,
                min_ml: float = MIN_NECROSIS_ML, hounsfield: np.ndarray | None = None
                ) -> tuple[np.ndarray, HeadSphere | None]:
    """Largest pelvis and femur component; necrosis only inside the fitted femoral head, components under
    `min_ml` dropped. Pelvis and femur never share a voxel: where both components claim one, the femur keeps
    it; pelvis inside the fitted head is head and femur above it is the acetabular roof (the sphere is then
    fitted again). `in_view` (crop voxels inside the scan) keeps the scan's edge out of the head sphere. With
    the crop's `hounsfield` units (CT), bone the network missed is recovered first (`ct_bone`)."""
    if hounsfield is not None:
        labels = recover_bone(labels, hounsfield, spacing)
    femur = largest_component(np.isin(labels, (2, 3)))
    pelvis = largest_component(labels == 1) & ~femur
    sphere = _fit_free_surface(femur, pelvis, origin, spacing, start_xyz, in_view)
    for _ in range(HEAD_REFITS):
        # No part of the pelvis lies inside the femoral head: what the network called pelvis there is head;
        # and no part of the femur lies above the head's surface: what it called femur there is the roof.
        if sphere is None:
            break
        distance = distance_map(labels.shape, origin, spacing, sphere.center_xyz)
        head_as_pelvis = (distance <= sphere.radius_mm) & (labels == 1)
        roof_as_femur = _above_head(sphere, distance, origin, spacing) & np.isin(labels, (2, 3))
        if not head_as_pelvis.any() and not roof_as_femur.any():
            break
        labels = np.where(head_as_pelvis, 2, np.where(roof_as_femur, 1, labels))
        femur = largest_component(np.isin(labels, (2, 3)))
        pelvis = largest_component(labels == 1) & ~femur
        sphere = _fit_free_surface(femur, pelvis, origin, spacing, sphere.center_xyz, in_view)
    out = np.zeros(labels.shape, np.uint8)
    out[pelvis] = 1
    out[femur] = 2
    if sphere is not None:
        head = distance_map(labels.shape, origin, spacing, sphere.center_xyz) <= sphere.radius_mm + NECROSIS_MARGIN_MM
        lesion = _drop_touching(femur & head & (labels == 3), pelvis, spacing)
        out[_drop_specks(lesion, min_ml * 1000.0 / float(np.prod(spacing)))] = 3
    return out, sphere


def _fit_free_surface(femur, pelvis, origin, spacing, start_xyz, in_view) -> HeadSphere | None:
    """The head sphere fitted to the femur's surface where it faces soft tissue, not where it touches the
    pelvis: there the joint space was not resolved, and where the network split the two bones is a guess
    (the phantom's joint space is resolved, so its heads touch the pelvis nowhere)."""
    free = ~pelvis if in_view is None else in_view & ~pelvis
    return fit_head_sphere(femur, origin, spacing, start_xyz, in_view=free)


def _above_head(sphere: HeadSphere, distance: np.ndarray, origin, spacing) -> np.ndarray:
    """Voxels beyond the head's surface (plus ROOF_MARGIN_MM) within ROOF_CONE_DEG of straight up from its centre;
    `distance`: each voxel's distance from the centre (`distance_map`)."""
    height = (origin[2] + np.arange(distance.shape[0]) * spacing[2] - sphere.center_xyz[2])[:, None, None]
    return (distance > sphere.radius_mm + ROOF_MARGIN_MM) & (height >= distance * np.cos(np.radians(ROOF_CONE_DEG)))


def _drop_touching(lesion: np.ndarray, pelvis: np.ndarray, spacing) -> np.ndarray:
    """Lesion components with MAX_CONTACT_SHARE or more of their voxels within JOINT_CONTACT_MM of the pelvis
    removed."""
    if not pelvis.any() or not lesion.any():
        return lesion
    near = ndimage.distance_transform_edt(~pelvis, sampling=np.asarray(spacing, float)[::-1]) <= JOINT_CONTACT_MM
    components, n = ndimage.label(lesion)
    index = np.arange(1, n + 1)
    share = ndimage.mean(near, components, index)
    return np.isin(components, index[np.asarray(share) < MAX_CONTACT_SHARE])


def _drop_specks(mask: np.ndarray, min_voxels: float) -> np.ndarray:
    components, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum_labels(mask, components, index=np.arange(1, n + 1))
    return np.isin(components, 1 + np.flatnonzero(sizes >= min_voxels))


def segment_hip(network, image: sitk.Image, center_lps, side: str, modality: str, device) -> HipSegmentation:
    crop_image = hip_crop(image, center_lps, side, INFER_SPEC)
    intensities = sitk.GetArrayFromImage(crop_image)
    with bottleneck_features(network) as pooled:
        probs = predict_crop(network, normalise(intensities, modality), device)
    features = crop_features(pooled)
    origin, spacing = np.array(crop_image.GetOrigin()), np.array(crop_image.GetSpacing())
    # The crop is mirrored about the head's own sagittal plane, so the head centre is the same point in both.
    raw = np.argmax(probs, 0).astype(np.uint8)
    min_ml = min_lesion_ml(image.GetSpacing())
    labels, sphere = postprocess(raw, origin, spacing, np.asarray(center_lps, float),
                                 in_view(image, center_lps, side, INFER_SPEC), min_ml,
                                 intensities if modality == "ct" else None)
    crop = sitk.GetImageFromArray(labels)
    crop.CopyInformation(crop_image)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    dropped_ml = float(((raw == 3) & (labels != 3)).sum() * voxel_ml)
    added_ml = float(((raw == 0) & (labels > 0)).sum() * voxel_ml)
    if sphere is None:
        return HipSegmentation(side, crop, list(center_lps), None, None, dropped_ml, min_ml, crop_image, features,
                               added_ml)
    measures = measure_head(labels, sphere, origin, spacing)
    centre = io.mirror_point(sphere.center_xyz, center_lps[0]) if side == "L" else sphere.center_xyz
    return HipSegmentation(side, crop, list(center_lps), measures, [float(v) for v in centre], dropped_ml,
                           min_ml, crop_image, features, added_ml)


def to_input_grid(hips: list[HipSegmentation], reference: sitk.Image) -> sitk.Image:
    """One label map on the input's own grid: each crop's classes resampled smoothly (one-hot, linear), then argmax."""
    out = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint8)
    for hip in hips:
        start, size = covering_region(reference, hip.crop)
        if min(size) <= 0:
            continue
        region = sitk.RegionOfInterest(reference, [int(s) for s in size], [int(s) for s in start])
        labels = sitk.GetArrayViewFromImage(hip.crop)
        channels = []
        for value in range(4):
            onehot = sitk.GetImageFromArray((labels == value).astype(np.float32))
            onehot.CopyInformation(hip.crop)
            channels.append(sitk.GetArrayFromImage(
                uncrop(onehot, hip.side, hip.crop_center, region, default=1.0 if value == 0 else 0.0)))
        placed = np.argmax(np.stack(channels), 0).astype(np.uint8)
        z, y, x = (slice(s, s + n) for s, n in zip(start[::-1], size[::-1]))
        out[z, y, x] = np.maximum(out[z, y, x], placed)
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(reference)
    return result


def covering_region(reference: sitk.Image, crop: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Index start and size of the part of `reference` that the (possibly mirrored) crop box touches."""
    size = np.array(crop.GetSize())
    corners = [io.index_to_physical(crop, np.array(c) * (size - 1)) for c in np.ndindex(2, 2, 2)]
    return io.index_box(reference, corners)
