"""Is a localiser candidate a femoral head? Anatomical checks on its segmented crop, before any per-hip model.

The localiser and the segmentation were trained on phantoms; on a real scan the localiser also fires on
bowel gas, vertebrae and arms, and the segmentation then draws a "head" there. A femoral head is
reported only when the segmentation and the image agree on the anatomy: a ball of adult size (radius
18–32 mm; adult heads are 20–28 mm, the phantom draws 20–27 mm), mostly femur label, with acetabular
bone (pelvis label) over its dome, on CT with bone density inside, and away from the body's midline
(the heads sit 65–130 mm from it). Thresholds come from the phantom's hips (genuine heads: fill ≥ 0.99,
dome cover ≥ 0.71, 83–109 mm from the midline) and first principles (a majority of the ball is femur,
a quarter of its dome is covered), not from the real scans, which are test cases only. The femoral
neck is measured and reported but not required: the phantom-trained segmentation misses most of a real
neck (1.6 ml on the real CT against 26–31 ml on phantoms).

When the scan cuts the body at both lateral edges, though, the midline is unknown (`localization.midline_x`;
a one-hip view cut at one edge has that edge for a midline), and then a neck leaving the head laterally is
required: it is the only thing left that tells a right hip from a left one, and bone leaving a "head"
towards the midline says it is the other hip seen from the wrong side, or not a femur. It is a weak
check, as the segmentation draws a neck where it expects one (`MAX_MEDIAL_SHARE`). Where the midline is
known it is not asked: on the real CT the segmentation labels some bone medial of the head femur (5 ml
on its 10°-tilted variant) and hardly any of the neck.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .measure import distance_map
from .segment import HipSegmentation

RADIUS_MM = (18.0, 32.0)
MIN_FEMUR_FILL = 0.5  # share of the sphere (inset 3 mm) labelled femur or necrosis
MIN_DOME_COVER = 0.25  # share of the dome shell (2–12 mm outside the sphere, above its centre) labelled pelvis
MIN_CT_HEAD_HU = 100.0  # median HU inside the head: cancellous bone is 150–450 HU, soft tissue < 80, gas −1000
MIN_MIDLINE_MM = 40.0
# A neck to tell the side by: an adult neck (≈ 30 mm across) gives far more than this beyond the head
# (phantom: 26–31 ml); a few millilitres are segmentation fringe.
MIN_NECK_ML = 5.0
# With the midline unknown, most of the bone leaving the head downwards must leave it laterally. A head seen
# from its own side: none medial (phantom); seen mirrored, as the other side (development seed 4250): 54 %
# medial from its true centre, but only 5 % from the localiser's point 9 mm off.
MAX_MEDIAL_SHARE = 1.0 / 3.0
INSET_MM = 3.0
DOME_SHELL_MM = (2.0, 12.0)


@dataclass
class HeadEvidence:
    """What the segmented crop says about a candidate, each value a number a reader can check."""

    radius_mm: float
    femur_fill: float
    dome_cover: float
    neck_ml: float  # femur leaving the head laterally and downwards, as a neck does
    medial_ml: float  # femur leaving the head medially and downwards, where no neck goes
    head_median_hu: float | None
    midline_mm: float | None  # None: the scan cuts the body at both lateral edges, midline unknown
    bone_added_ml: float | None = None  # CT: bone the network left out, added by the Hounsfield scale (`ct_bone`)

    def to_json(self) -> dict:
        return {k: (None if v is None else round(float(v), 3)) for k, v in self.__dict__.items()}


def gather(seg: HipSegmentation, midline_x: float | None, hounsfield: bool) -> HeadEvidence | None:
    """Measure a segmented candidate in its right-hip-view crop; None when no head sphere could be fitted.
    `hounsfield`: the crop's intensities are HU (CT), so the bone-density check applies; `midline_x` None:
    the midline is unknown (`localization.midline_x`)."""
    if seg.measures is None:
        return None
    labels = sitk.GetArrayViewFromImage(seg.crop)
    origin, spacing = np.array(seg.crop.GetOrigin()), np.array(seg.crop.GetSpacing())
    centre, radius = np.asarray(seg.measures.center_xyz), float(seg.measures.radius_mm)
    dist = distance_map(labels.shape, origin, spacing, centre)
    inner = dist <= radius - INSET_MM
    bone = np.isin(labels, (2, 3))
    zz = origin[2] + np.arange(labels.shape[0]) * spacing[2] - centre[2]
    xx = origin[0] + np.arange(labels.shape[2]) * spacing[0] - centre[0]
    above = (zz > 0)[:, None, None]
    dome = (dist >= radius + DOME_SHELL_MM[0]) & (dist <= radius + DOME_SHELL_MM[1]) & above
    # crop space is a right-hip view: lateral is −x, so the neck leaves the head at x < 0 and z < 0
    below = bone & (dist > radius + 5.0) & (zz < 0)[:, None, None]
    lateral = (xx < 0)[None, None, :]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    hu = None
    if hounsfield and seg.intensities is not None:
        values = sitk.GetArrayViewFromImage(seg.intensities)[inner]
        hu = float(np.median(values)) if values.size else None
    return HeadEvidence(radius_mm=radius, femur_fill=float(bone[inner].mean()) if inner.any() else 0.0,
                        dome_cover=float((labels[dome] == 1).mean()) if dome.any() else 0.0,
                        neck_ml=float((below & lateral).sum() * voxel_ml),
                        medial_ml=float((below & ~lateral).sum() * voxel_ml), head_median_hu=hu,
                        midline_mm=None if midline_x is None else abs(float(seg.center_lps[0]) - midline_x),
                        bone_added_ml=seg.bone_added_ml if hounsfield else None)


def verdict(evidence: HeadEvidence | None) -> str:
    """'' when the candidate is a plausible femoral head, else the reason in words a clinician reads."""
    if evidence is None:
        return "no femoral head surface in the segmentation around the detected point"
    e = evidence
    if e.midline_mm is not None and e.midline_mm < MIN_MIDLINE_MM:
        return f"candidate {e.midline_mm:.0f} mm from the body's midline: not a hip"
    if not RADIUS_MM[0] <= e.radius_mm <= RADIUS_MM[1]:
        return (f"the structure found is a ball of radius {e.radius_mm:.0f} mm, outside the femoral head's "
                f"{RADIUS_MM[0]:.0f}–{RADIUS_MM[1]:.0f} mm")
    if e.head_median_hu is not None and e.head_median_hu < MIN_CT_HEAD_HU:
        return f"no bone at the candidate (median {e.head_median_hu:.0f} HU; a femoral head is above {MIN_CT_HEAD_HU:.0f} HU)"
    if e.femur_fill < MIN_FEMUR_FILL:
        return f"no femoral head: only {e.femur_fill:.0%} of the fitted sphere is femur"
    if e.dome_cover < MIN_DOME_COVER:
        return f"no acetabulum over the candidate head ({e.dome_cover:.0%} of its dome covered by pelvis)"
    midline_unknown = e.midline_mm is None  # the scan cuts the body at both lateral edges
    if midline_unknown and e.medial_ml >= MIN_NECK_ML and e.medial_ml > MAX_MEDIAL_SHARE * (e.neck_ml + e.medial_ml):
        return (f"the scan shows no midline and the bone below the candidate leaves it inwards ({e.medial_ml:.0f} ml), "
                f"not outwards as this side's femoral neck would: the other hip or not a femur")
    if midline_unknown and e.neck_ml < MIN_NECK_ML:
        return "the scan shows no midline and no femoral neck, so which hip this is cannot be told"
    return ""
